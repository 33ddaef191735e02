"""`semifer predict`: faces found in photos, crops predicted as `eval` does, videos sampled, bad files reported."""

import csv
import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

import semifer
from semifer.cli import main
from semifer.data import load_dataset
from semifer.engine.evaluate import predict as eval_predict
from semifer.errors import SemiferError
from semifer.inference.sources import to_rgb
from semifer.labels import CANONICAL
from semifer.models import load_model
from semifer.runtime.precision import cpu_has_native_bf16


def write_crops(root, n=21, split="test"):
    """Synthetic 48 px faces as PNGs in class folders (so `folder:` can evaluate them too)."""
    faces = load_dataset(f"synthetic:?split={split}&n={n}")
    for i, (pixels, label) in enumerate(zip(faces.pixels, faces.labels, strict=True)):
        path = root / CANONICAL[label] / f"{i:03d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(path)
    return root


def read_rows(path):
    if str(path).endswith(".json"):
        return json.loads(path.read_text())
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_detect_none_on_crops_equals_eval(tiny_run, tmp_path):
    tree = write_crops(tmp_path / "crops")
    out = tmp_path / "preds.json"
    assert main(["predict", str(tiny_run), str(tree), "--detect", "none", "--out", str(out)]) == 0
    rows = {row["source"]: row for row in read_rows(out)}
    faces = load_dataset(f"folder:{tree}")
    model, info = load_model(tiny_run, device="cpu")
    classes = info.classes
    probs = eval_predict(model, faces, info.img_size, torch.device("cpu"), progress=False)
    assert len(rows) == len(faces) == 21
    for path, expected in zip(faces.paths, probs, strict=True):
        row = rows[str(path)]
        assert row["label"] == classes[int(expected.argmax())]
        got = np.array([row[f"p_{c}"] for c in classes])
        np.testing.assert_allclose(got, expected, atol=1e-6)
        assert (row["x"], row["y"], row["w"], row["h"]) == (0, 0, 48, 48)
    # small images are taken as crops without being told
    auto = tmp_path / "auto.json"
    assert main(["predict", str(tiny_run), str(tree), "--out", str(auto)]) == 0
    assert [r["label"] for r in read_rows(auto)] == [r["label"] for r in read_rows(out)]


def photo_canvas(rng, height, width):
    """A photo-like background: colour gradients plus sensor-like noise."""
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([80 + 100 * x / width, 120 + 60 * y / height, 160 - 80 * x / width], -1)
    return np.clip(base + rng.normal(0, 12, (height, width, 3)), 0, 255).astype(np.uint8)


def iou(a, b):
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    w = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    h = max(0, min(ay + ah, by + bh) - max(ay, by))
    return w * h / (aw * ah + bw * bh - w * h)


def test_real_faces_pasted_into_a_photo_are_found(tiny_run, real_data, tmp_path):
    faces = load_dataset(f"fer2013:{real_data}/fer2013/fer2013.csv.gz?split=PublicTest")
    rng = np.random.default_rng(0)
    photo = photo_canvas(rng, 720, 1000)
    pasted = []
    for k, side in enumerate([96, 120, 140, 160, 180, 200, 110, 150]):
        face = Image.fromarray(faces.pixels[k]).convert("RGB").resize((side, side), Image.BICUBIC)
        x, y = 20 + (k % 4) * 240, 20 + (k // 4) * 340
        photo[y : y + side, x : x + side] = np.asarray(face)
        pasted.append((x, y, side, side))
    Image.fromarray(photo).save(tmp_path / "group.jpg", quality=95)
    out, annotated = tmp_path / "faces.csv", tmp_path / "annotated"
    assert (
        main(["predict", str(tiny_run), str(tmp_path / "group.jpg"), "--out", str(out), "--annotate", str(annotated)])
        == 0
    )
    rows = read_rows(out)
    boxes = [tuple(int(r[k]) for k in "xywh") for r in rows]
    found = [p for p in pasted if any(iou(p, b) > 0.6 for b in boxes)]
    assert len(found) >= 6, f"found {len(found)} of 8 pasted faces: {boxes}"
    assert len(rows) <= len(pasted) + 1  # at most one detection that is not a pasted face
    for row in rows:
        assert row["source"].endswith("group.jpg") and row["frame"] == ""
        probs = [float(row[f"p_{c}"]) for c in CANONICAL[:7]]
        assert abs(sum(probs) - 1) < 1e-4 and row["label"] == CANONICAL[int(np.argmax(probs))]
    drawn = np.asarray(Image.open(annotated / "group.png"))
    x, y, w, h = boxes[0]
    assert tuple(drawn[y + h // 2, x]) == (255, 40, 40)  # the box outline


def test_a_corrupt_image_is_one_error_line_and_the_rest_are_predicted(tiny_run, tmp_path, capsys):
    tree = write_crops(tmp_path / "crops", n=7)
    (tree / "happy" / "broken.png").write_bytes(b"\x89PNG not really")
    out = tmp_path / "p.csv"
    assert main(["predict", str(tiny_run), str(tree), "--out", str(out)]) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(err) == 1 and "broken.png" in err[0] and "cannot read image" in err[0]
    assert len(read_rows(out)) == 7


def write_video(path, frames, fps=10.0):
    import cv2

    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
    assert writer.isOpened()
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


@pytest.mark.parametrize(("every", "expected"), [("3", [0, 3, 6, 9]), ("0.5s", [0, 5]), ("1", list(range(10)))])
def test_video_is_sampled_every_n_frames_or_seconds(tiny_run, tmp_path, every, expected):
    faces = load_dataset("synthetic:?split=test&n=10")
    video = write_video(tmp_path / "clip.avi", [np.repeat(p[:, :, None], 3, axis=2) for p in faces.pixels])
    out = tmp_path / "v.json"
    assert main(["predict", str(tiny_run), str(video), "--every", every, "--out", str(out)]) == 0
    rows = read_rows(out)
    assert [r["frame"] for r in rows] == expected
    assert all(r["source"] == str(video) and r["w"] == 48 for r in rows)


def test_exif_orientation_is_applied(tmp_path):
    pixels = np.zeros((40, 60, 3), dtype=np.uint8)
    pixels[:, :10] = 255  # a white band on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: display needs a 90-degree clockwise turn
    Image.fromarray(pixels).save(tmp_path / "rotated.jpg", exif=exif, quality=100)
    shown = to_rgb(tmp_path / "rotated.jpg")
    assert shown.shape == (60, 40, 3)
    assert shown[:10].mean() > 200 and shown[-10:].mean() < 50  # the band is now on top


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--detect", "bogus"], "unknown detector"),
        (["--detect", "yunet:{tmp}/missing.onnx"], "YuNet model file not found"),
        (["--detect", "yunet:{tmp}/garbage.onnx"], "garbage.onnx"),
        (["--every", "1.5"], "--every"),
    ],
)
def test_bad_options_are_one_clear_error(tiny_run, tmp_path, capsys, args, needle):
    tree = write_crops(tmp_path / "crops", n=7)
    (tmp_path / "garbage.onnx").write_bytes(b"not a network")
    args = [a.format(tmp=tmp_path) for a in args]
    assert main(["predict", str(tiny_run), str(tree), *args]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


def test_missing_input_is_named(tiny_run, tmp_path, capsys):
    assert main(["predict", str(tiny_run), str(tmp_path / "nope.jpg")]) == 2
    assert "nope.jpg" in capsys.readouterr().err


def test_csv_on_stdout_without_out(tiny_run, tmp_path, capsys):
    tree = write_crops(tmp_path / "crops", n=7)
    assert main(["predict", str(tiny_run), str(tree)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("source,frame,x,y,w,h,label,p_neutral") and len(lines) == 8
    sources = [line.split(",")[0] for line in lines[1:]]
    assert sources == sorted(sources) and os.path.basename(sources[0]) == "005.png"  # anger/005.png first


def test_images_without_a_face_are_counted_with_a_hint(tiny_run, tmp_path, capsys):
    Image.fromarray(photo_canvas(np.random.default_rng(1), 200, 300)).save(tmp_path / "empty.png")
    assert main(["predict", str(tiny_run), str(tmp_path / "empty.png"), "--detect", "haar"]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip().count("\n") == 0  # the CSV header alone
    assert "no face found in 1 images/frames" in captured.err and "--detect none" in captured.err


def test_bf16_precision_runs_in_bf16_and_stays_close_to_fp32(tiny_run, tmp_path):
    tree = write_crops(tmp_path / "crops")
    rows = {}
    for precision in ("fp32", "bf16"):
        out = tmp_path / f"{precision}.json"
        assert (
            main(["predict", str(tiny_run), str(tree), "--detect", "none", "--precision", precision, "--out", str(out)])
            == 0
        )
        rows[precision] = read_rows(out)
    classes = [key[2:] for key in rows["fp32"][0] if key.startswith("p_")]
    fp32 = np.array([[r[f"p_{c}"] for c in classes] for r in rows["fp32"]])
    bf16 = np.array([[r[f"p_{c}"] for c in classes] for r in rows["bf16"]])
    assert not np.array_equal(fp32, bf16)  # the autocast really ran: bf16 rounds the activations
    np.testing.assert_allclose(bf16, fp32, atol=0.03)
    predictor = semifer.load(tiny_run, precision="auto")
    assert predictor.backend.dtype == (torch.bfloat16 if cpu_has_native_bf16() else None)
    with pytest.raises(SemiferError, match="unknown precision 'fp8'"):
        semifer.load(tiny_run, precision="fp8")


def test_faces_go_to_the_network_in_calls_of_faces_per_call_by_default(tiny_run, tmp_path, monkeypatch, capsys):
    from semifer.inference.predictor import FACES_PER_CALL

    predictor = semifer.load(tiny_run)
    sizes = []
    backend = predictor.backend

    def counted(pixels):
        sizes.append(len(pixels))
        return backend(pixels)

    monkeypatch.setattr(predictor, "backend", counted)
    crops = [np.full((48, 48, 3), i, dtype=np.uint8) for i in range(FACES_PER_CALL + 5)]
    predictor.probabilities(crops)
    assert sizes == [FACES_PER_CALL, 5]
    sizes.clear()
    predictor.predict(crops, batch_size=7)
    assert max(sizes) == 7 and sum(sizes) == len(crops)
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    assert f"(default {FACES_PER_CALL})" in " ".join(capsys.readouterr().out.split())
