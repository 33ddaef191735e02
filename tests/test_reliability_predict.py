"""`semifer predict` as an unattended batch tool: no hang, loop or crash on odd inputs (symlink loops, FIFOs,
huge or 16-bit images), every bad option or output path refused up front in one line, rows streamed to the
output as computed and memory flat on long videos, and no face reported inside another."""

import contextlib
import os
import struct
import threading
import time
import tracemalloc
import zlib

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from semifer.cli import main
from semifer.data import load_dataset
from semifer.inference.detect import drop_nested
from semifer.inference.files import predict_files
from semifer.inference.loading import load
from semifer.inference.predictor import Predictor
from semifer.inference.sources import frames_of, to_rgb
from semifer.labels import CANONICAL
from test_predict import read_rows, write_crops


def error_lines(err):
    return [line for line in err.splitlines() if line.startswith("semifer: error:")]


# ---------------------------------------------------------------------------------- 1: symlink loops
@pytest.mark.parametrize("loop", ["itself", "parent"])
def test_a_symlink_loop_is_walked_once_and_each_real_file_predicted_once(tiny_run, tmp_path, loop):
    tree = write_crops(tmp_path / "crops", n=3)
    first = sorted(tree.rglob("*.png"))[0]
    if loop == "itself":
        (tree / "loop").symlink_to(tree)
    else:
        (first.parent / "up").symlink_to(tree)
    (tree / "again.png").symlink_to(first)  # a file already there
    outside = tmp_path / "outside"
    outside.mkdir()
    Image.fromarray(np.full((48, 48), 90, dtype=np.uint8)).save(outside / "x.png")
    (tree / "more").symlink_to(outside)  # no loop: followed
    out = tmp_path / "p.csv"
    assert main(["predict", str(tiny_run), str(tree), str(outside), "--detect", "none", "--out", str(out)]) == 0
    sources = [row["source"] for row in read_rows(out)]
    assert len(sources) == 4 and len({os.path.realpath(s) for s in sources}) == 4, sources
    assert sum(s.endswith("x.png") for s in sources) == 1


# ---------------------------------------------------------------------------------- 2: FIFOs
@pytest.mark.parametrize("where", ["folder", "direct"])
def test_fifos_are_skipped_and_counted_instead_of_hanging(tiny_run, tmp_path, capsys, where):
    tree = write_crops(tmp_path / "crops", n=3)
    fifos = [tree / "pipe.png", tree / "stream.mp4"] if where == "folder" else [tmp_path / "direct.jpg"]
    for fifo in fifos:
        os.mkfifo(fifo)
    out = tmp_path / "p.csv"
    result = {}
    argv = [
        "predict",
        str(tiny_run),
        str(tree),
        *(str(f) for f in fifos if f.parent != tree),
        "--detect",
        "none",
        "--out",
        str(out),
    ]
    thread = threading.Thread(target=lambda: result.update(rc=main(argv)), daemon=True)
    thread.start()
    thread.join(120)
    if thread.is_alive():
        for fifo in fifos:  # let the blocked reader go, then fail
            with contextlib.suppress(OSError):
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(30)
        pytest.fail("predict blocked on a FIFO")
    captured = capsys.readouterr()
    assert result["rc"] == 0 and len(read_rows(out)) == 3
    assert f"{len(fifos)} skipped: not regular files" in captured.out and not error_lines(captured.err)


# ---------------------------------------------------------------------------------- 3: huge images
def bomb_png(path, side=20_000):
    """A valid 1-bit PNG of side x side pixels (all black) in ~60 kB, without holding its pixels."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    pack = zlib.compressobj(9)
    rows = b"\x00" * (1 + side // 8) * 1000
    idat = b"".join(pack.compress(rows) for _ in range(side // 1000)) + pack.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


def test_an_image_above_the_pixel_limit_is_one_error_and_the_rest_are_predicted(tiny_run, tmp_path, capsys):
    tree = write_crops(tmp_path / "crops", n=3)
    bomb_png(tree / "huge.png")
    out = tmp_path / "p.csv"
    assert main(["predict", str(tiny_run), str(tree), "--detect", "none", "--out", str(out)]) == 1
    errors = error_lines(capsys.readouterr().err)
    assert len(errors) == 1 and "huge.png" in errors[0] and "too large" in errors[0]
    assert len(read_rows(out)) == 3


# ---------------------------------------------------------------------------------- 4: image modes
RAMP16 = np.linspace(0, 65535, 48 * 48).round().astype(np.uint16).reshape(48, 48)


def _grey(values):
    return np.repeat(np.asarray(values, dtype=np.uint8)[:, :, None], 3, axis=2)


def _la(path):
    grey = np.tile(np.arange(0, 240, 5, dtype=np.uint8), (48, 1))
    alpha = np.full((48, 48), 255, dtype=np.uint8)
    alpha[:, :24] = 0  # the left half transparent: shown over white
    Image.fromarray(np.stack([grey, alpha], axis=2), "LA").save(path)
    expected = grey.copy()
    expected[:, :24] = 255
    return _grey(expected), 0


def _palette(path):
    image = Image.new("P", (48, 48), 1)
    image.putpalette([0, 0, 0, 200, 30, 60] + [0] * 762)
    image.save(path)
    return np.broadcast_to(np.array([200, 30, 60], dtype=np.uint8), (48, 48, 3)), 0


def _cmyk(path):
    Image.new("CMYK", (48, 48), (0, 255, 255, 0)).save(path.with_suffix(".jpg"), quality=100)
    return np.broadcast_to(np.array([255, 0, 0], dtype=np.uint8), (48, 48, 3)), 3


def _one_bit(path):
    bits = np.zeros((48, 48), dtype=bool)
    bits[::2] = True
    Image.fromarray(bits).save(path)
    return _grey(bits * 255), 0


def _sixteen_bit(path):
    Image.fromarray(RAMP16).save(path)
    assert Image.open(path).mode in ("I;16", "I")
    return _grey(np.round(RAMP16 / 257)), 0


@pytest.mark.parametrize("make", [_sixteen_bit, _la, _palette, _cmyk, _one_bit])
def test_image_modes_decode_the_same_for_predict_and_training(tmp_path, make):
    path = tmp_path / "faces" / "happy" / "face.png"
    path.parent.mkdir(parents=True)
    expected, tolerance = make(path)
    path = next(path.parent.iterdir())
    by_predict = next(frames_of(path)).image
    assert by_predict.shape == (48, 48, 3) and by_predict.dtype == np.uint8
    assert np.abs(by_predict.astype(int) - expected).max() <= tolerance
    faces = load_dataset(f"folder:{tmp_path / 'faces'}")
    by_training = faces.load(0)
    assert isinstance(by_training, torch.Tensor) and by_training.dtype == torch.uint8
    np.testing.assert_array_equal(by_training.permute(1, 2, 0).numpy(), by_predict)


def test_sixteen_bit_grey_spans_the_range_and_in_memory_modes_are_scaled(tmp_path):
    Image.fromarray(RAMP16).save(tmp_path / "deep.png")
    pixels = to_rgb(tmp_path / "deep.png")[:, :, 0]
    assert pixels.min() == 0 and pixels.max() == 255 and (pixels == 255).mean() < 0.01
    ramp = np.linspace(0, 1, 48 * 48, dtype=np.float32).reshape(48, 48)
    np.testing.assert_array_equal(to_rgb(Image.fromarray(ramp))[:, :, 0], np.round(ramp * 255))  # mode F
    wide = Image.fromarray(RAMP16.astype(np.int32))  # mode I
    assert wide.mode == "I"
    np.testing.assert_array_equal(to_rgb(wide)[:, :, 0], np.round(RAMP16 / 257))
    np.testing.assert_array_equal(to_rgb(RAMP16)[:, :, 0], np.round(RAMP16 / 257))  # a uint16 array


# ---------------------------------------------------------------------------------- 5: numeric options
@pytest.mark.parametrize(
    "args",
    [
        ["--batch-size", "0"],
        ["--batch-size", "-4"],
        ["--batch-size", "many"],
        ["--margin", "nan"],
        ["--margin", "inf"],
        ["--margin", "-0.1"],
        ["--margin", "1e6"],
        ["--margin", "wide"],
        ["--threads", "-1"],
        ["--threads", "1e9"],
        ["--every", "0"],
        ["--every", "-3"],
        ["--every", "nan"],
        ["--every", "nans"],
        ["--every", "inf"],
        ["--every", "1e999s"],
        ["--every", "garbage"],
    ],
)
def test_bad_numbers_are_one_line_errors_before_the_model_loads(tmp_path, capsys, args):
    image = tmp_path / "face.png"
    Image.fromarray(np.full((48, 48), 128, dtype=np.uint8)).save(image)
    assert main(["predict", "--model", str(tmp_path / "no-model"), str(image), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"semifer: error: {args[0]} "), err


# ---------------------------------------------------------------------------------- 6: output paths and streaming
@pytest.mark.parametrize("option", ["--out", "--annotate"])
def test_an_output_under_a_file_is_refused_before_the_model_loads(tmp_path, capsys, option):
    image = tmp_path / "face.png"
    Image.fromarray(np.full((48, 48), 128, dtype=np.uint8)).save(image)
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    target = blocker / ("out.csv" if option == "--out" else "annotated")
    assert main(["predict", "--model", str(tmp_path / "no-model"), str(image), option, str(target)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"semifer: error: {option} ") and "file.txt is a file" in err[0]


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes in read-only folders")
@pytest.mark.parametrize("option", ["--out", "--annotate"])
def test_an_output_in_a_read_only_folder_is_refused_before_the_model_loads(tmp_path, capsys, option):
    image = tmp_path / "face.png"
    Image.fromarray(np.full((48, 48), 128, dtype=np.uint8)).save(image)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        target = locked / ("out.csv" if option == "--out" else "annotated")
        assert main(["predict", "--model", str(tmp_path / "no-model"), str(image), option, str(target)]) == 2
    finally:
        locked.chmod(0o700)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"semifer: error: {option} ") and "no permission" in err[0]


@pytest.mark.parametrize("suffix", [".csv", ".json"])
def test_rows_computed_before_a_crash_are_in_the_output(tiny_run, tmp_path, monkeypatch, suffix):
    tree = write_crops(tmp_path / "crops", n=12)
    classify, calls = Predictor._classify, []

    def crash_on_the_second_batch(self, prepared, batch_size):
        calls.append(len(prepared))
        if len(calls) > 1:
            raise RuntimeError("the machine went away")
        return classify(self, prepared, batch_size)

    monkeypatch.setattr(Predictor, "_classify", crash_on_the_second_batch)
    out = tmp_path / f"p{suffix}"
    with pytest.raises(RuntimeError, match="went away"):
        main(["predict", str(tiny_run), str(tree), "--detect", "none", "--batch-size", "4", "--out", str(out)])
    rows = read_rows(out)  # a JSON file is still a valid array
    assert len(rows) == 4 and all(row["label"] in CANONICAL for row in rows)


def test_the_python_api_still_returns_the_rows(tiny_run, tmp_path):
    tree = write_crops(tmp_path / "crops", n=5)
    report = predict_files(load(tiny_run), [str(tree)], "none", progress=False)
    assert len(report.rows) == report.faces == report.frames == 5 and report.not_regular == 0


# ---------------------------------------------------------------------------------- 7: long videos
def write_video(path, n, size=(48, 48)):
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, size)
    assert writer.isOpened()
    y, x = np.mgrid[0 : size[1], 0 : size[0]]
    frames = [np.repeat(((x * 5 + y * 3 + 7 * k) % 256).astype(np.uint8)[:, :, None], 3, axis=2) for k in range(37)]
    for k in range(n):
        writer.write(frames[k % len(frames)])
    writer.release()
    return path


def _run(tiny_run, video, out):
    tracemalloc.start()
    start = time.perf_counter()
    assert (
        main(
            [
                "predict",
                str(tiny_run),
                str(video),
                "--every",
                "1",
                "--detect",
                "none",
                "--batch-size",
                "512",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak, seconds


def test_memory_stays_flat_and_speed_steady_on_a_long_video(tiny_run, tmp_path):
    short, long = write_video(tmp_path / "short.avi", 1_000), write_video(tmp_path / "long.avi", 20_000)
    short_peak, short_seconds = _run(tiny_run, short, tmp_path / "short.csv")
    long_peak, long_seconds = _run(tiny_run, long, tmp_path / "long.csv")
    with open(tmp_path / "long.csv") as handle:
        assert sum(1 for _ in handle) == 20_001
    growth = (long_peak - short_peak) / 2**20
    assert growth < 4, f"peak Python memory grew {growth:.1f} MiB from 1,000 to 20,000 frames"
    short_speed, long_speed = 1_000 / short_seconds, 20_000 / long_seconds
    assert long_speed >= 0.5 * short_speed, f"{long_speed:.0f} frames/s on 20,000 frames, {short_speed:.0f} on 1,000"


# ---------------------------------------------------------------------------------- 8: nested detections
def test_a_box_inside_a_larger_box_is_dropped():
    face, mouth, other = (100, 100, 120, 120), (130, 180, 50, 30), (300, 90, 110, 110)
    half_out = (200, 120, 40, 40)  # half inside the face: a separate (partly hidden) face
    assert drop_nested([mouth, face, other]) == [face, other]
    assert drop_nested([face, half_out]) == [face, half_out]
    assert drop_nested([face, face]) == [face]  # a duplicate
    edge = (100, 100, 50, 60)  # 80 % or more inside counts as inside
    assert drop_nested([face, (edge[0] - 10, *edge[1:])]) == [face]
    assert drop_nested([face, (edge[0] - 11, *edge[1:])]) == [face, (89, 100, 50, 60)]
    assert drop_nested([]) == []


def test_a_symlink_loop_in_a_training_folder_is_walked_once(tmp_path):
    from semifer.data import load_dataset

    happy = tmp_path / "data" / "happy"
    happy.mkdir(parents=True)
    Image.fromarray(np.full((8, 8, 3), 120, dtype=np.uint8)).save(happy / "a.png")
    (happy / "loop").symlink_to(happy, target_is_directory=True)
    (happy / "up").symlink_to(tmp_path / "data", target_is_directory=True)
    assert len(load_dataset(f"folder:{tmp_path / 'data'}")) == 1
    assert len(load_dataset(f"unlabeled:{tmp_path / 'data'}")) == 1


_OPTION_TEXT = st.one_of(
    st.integers(-(10**12), 10**12).map(str),
    st.floats(allow_nan=True).map(str),
    st.text(max_size=12),
    st.sampled_from(["1", "0.5", "2s", "0s", "nan", "inf", "-1", "1e400"]),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(option=st.sampled_from(["--batch-size", "--margin", "--threads", "--every"]), value=_OPTION_TEXT)
def test_fuzzed_numeric_options_are_one_line_errors_or_run(tmp_path, capsys, option, value):
    image = tmp_path / "face.png"
    Image.fromarray(np.full((48, 48), 128, dtype=np.uint8)).save(image)
    code = main(["predict", str(image), "--detect", "none", "--out", str(tmp_path / "rows.csv"), f"{option}={value}"])
    err = capsys.readouterr().err.strip().splitlines()
    if code == 2:
        assert len(err) == 1 and err[0].startswith("semifer: error: "), err
    else:
        assert code == 0 and "Traceback" not in "\n".join(err)
