"""Built-in weights: shipped files load safely and match their hashes, predict and load need no model, the
real-face presets start from the built-in representation, and `semifer fit` trains on a folder of faces."""

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

import semifer
from semifer import weights
from semifer.cli import main
from semifer.config import load_config
from semifer.data import load_dataset
from semifer.engine.run import build_model
from semifer.errors import CheckpointError, ConfigError, SemiferError
from semifer.labels import BASIC7
from semifer.tensorfile import load_safetensors


def test_every_builtin_loads_through_the_safe_loader_and_matches_its_hash():
    shown = weights.list_weights()
    assert {w.name for w in shown} >= {weights.REPRESENTATION, weights.CLASSIFIER}
    assert {w.kind for w in shown} <= set(weights.KINDS)
    for w in shown:
        assert w.files, w.name
        for name, digest in w.files.items():
            assert weights.sha256_file(w.folder / name) == digest
        tensors = load_safetensors(w.verify().weights_file)
        assert tensors and all(torch.isfinite(t).all() for t in tensors.values() if t.is_floating_point())
        assert w.card["licence"] and w.card["command"].startswith("semifer ") and w.card["data"]
    assert sum(w.size_bytes() for w in shown) < 20e6


@pytest.fixture
def copied_builtins(tmp_path, monkeypatch):
    """The built-in folders copied to a temporary root the registry reads instead of the package's."""
    root = tmp_path / "weights"
    shutil.copytree(weights.ROOT, root, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    monkeypatch.setattr(weights, "ROOT", root)
    return root


def test_an_altered_builtin_file_is_refused_with_its_name(copied_builtins):
    path = copied_builtins / weights.REPRESENTATION / "backbone.safetensors"
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x10  # one bit of one weight
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"backbone\.safetensors.*sha256.*reinstall"):
        weights.get_weights(weights.REPRESENTATION)
    with pytest.raises(CheckpointError, match="sha256"):
        build_model(load_config("fer2013_ssl", ["data.train=synthetic:?n=70"]), 7)
    (copied_builtins / weights.CLASSIFIER / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="model.safetensors: missing"):
        semifer.load()


def test_unknown_builtin_and_wrong_kind_are_clear_errors():
    with pytest.raises(SemiferError, match="face-simclr-small"):
        weights.get_weights("no-such-model")
    with pytest.raises(SemiferError, match="representation, not a classifier"):
        semifer.load(weights.REPRESENTATION)


def write_faces(folder, n=4):
    """`n` FER2013-like grey 48 px faces (synthetic) as PNG files."""
    faces = load_dataset(f"synthetic:?split=test&n={n}")
    folder.mkdir(parents=True, exist_ok=True)
    for i, pixels in enumerate(faces.pixels):
        Image.fromarray(pixels).save(folder / f"face{i}.png")
    return sorted(folder.iterdir())


def test_predict_without_a_model_uses_the_builtin_classifier(tmp_path, monkeypatch, capsys):
    files = write_faces(tmp_path / "crops")
    monkeypatch.chdir(tmp_path)
    assert main(["predict", str(files[0]), str(files[1]), "--detect", "none", "--out", "rows.json"]) == 0
    rows = json.loads((tmp_path / "rows.json").read_text())
    assert [r["source"] for r in rows] == [str(files[0]), str(files[1])]
    assert all(r["label"] in BASIC7 for r in rows)
    named = tmp_path / "named.json"
    assert (
        main(["predict", weights.CLASSIFIER, str(files[0]), str(files[1]), "--detect", "none", "--out", str(named)])
        == 0
    )
    assert json.loads(named.read_text()) == rows
    model = semifer.load()
    assert model.classes == list(BASIC7)
    predicted = model.predict([str(f) for f in files[:2]])
    assert [p.label for p in predicted] == [r["label"] for r in rows]
    assert semifer.load(weights.CLASSIFIER).classes == model.classes


def test_a_model_named_alone_is_an_error_naming_the_inputs(capsys):
    assert main(["predict", weights.CLASSIFIER]) == 2
    assert "no input images" in capsys.readouterr().err


def test_export_a_builtin_by_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["export", weights.CLASSIFIER, "--format", "safetensors"]) == 0
    out = tmp_path / f"{weights.CLASSIFIER}-export"
    info = json.loads((out / "model.json").read_text())
    assert info["files"] == {"model.safetensors": weights.sha256_file(out / "model.safetensors")}
    card = (out / "MODEL_CARD.md").read_text()
    assert "licence" in card and "semifer train" in card
    face = write_faces(tmp_path / "crops", 1)[0]
    assert semifer.load(out).predict([str(face)])[0].label == semifer.load().predict([str(face)])[0].label


def test_the_classifier_card_holds_accuracy_per_class_and_confusion():
    folder = weights.get_weights(weights.CLASSIFIER).folder
    card = (folder / "MODEL_CARD.md").read_text()
    for needle in ("per-class", "Confusion matrix", "Intended use", "research", "semifer train"):
        assert needle.lower() in card.lower(), needle
    blob = json.loads((folder / "model.json").read_text())
    assert blob["metrics"]["accuracy"] >= 0.68 and set(blob["metrics"]["per_class_accuracy"]) == set(BASIC7)


@pytest.mark.parametrize(
    "preset", ["fer2013_small", "fer2013_ssl", "adacm_fer2013", "bridging_stage1", "ferplus_roy_fixmatch"]
)
def test_real_face_presets_start_from_the_builtin_representation(preset):
    assert load_config(preset).model.pretrained == weights.REPRESENTATION


def test_the_builtin_start_loads_and_none_turns_it_off():
    shipped = load_safetensors(weights.get_weights(weights.REPRESENTATION).weights_file)
    started = build_model(load_config("fer2013_ssl"), 7).backbone.state_dict()
    assert all(torch.equal(started[k], v) for k, v in shipped.items())
    cfg = load_config("fer2013_ssl", ["model.pretrained=none"])
    assert cfg.model.pretrained is None
    scratch = build_model(cfg, 7).backbone.state_dict()
    assert not torch.equal(scratch["stages.0.0.weight"], shipped["stages.0.0.weight"])


def test_a_builtin_backbone_of_another_arch_is_a_config_error():
    with pytest.raises(ConfigError, match="small_cnn backbone but model.arch=resnet18.*model.pretrained=none"):
        build_model(load_config("fer2013_ssl", ["model.arch=resnet18"]), 7)


def test_weights_command_lists_size_data_accuracy_and_licence(capsys):
    assert main(["weights"]) == 0
    out = capsys.readouterr().out
    for needle in (weights.REPRESENTATION, weights.CLASSIFIER, "MB", "data:", "accuracy:", "licence:", "rebuild:"):
        assert needle in out
    assert main(["weights", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {w["name"] for w in listed} >= {weights.REPRESENTATION, weights.CLASSIFIER}


def test_fit_trains_on_a_class_folder_tree_and_unlabeled_faces(tmp_path, capsys):
    faces = load_dataset("synthetic:?n=60&size=48")
    for i, (pixels, label) in enumerate(zip(faces.pixels, faces.labels, strict=True)):
        folder = tmp_path / "labeled" / BASIC7[label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.asarray(pixels)).save(folder / f"{i}.png")
    write_faces(tmp_path / "unlabeled", 8)
    short = ["train.epochs=1", "train.iters_per_epoch=2", "train.batch_size=4", "data.workers=0"]
    assert (
        main(
            [
                "fit",
                str(tmp_path / "labeled"),
                "--unlabeled",
                str(tmp_path / "unlabeled"),
                "--out-dir",
                str(tmp_path / "runs"),
                *short,
            ]
        )
        == 0
    )
    run = tmp_path / "runs" / "my-faces"
    assert f"model: {run}" in capsys.readouterr().out
    stage1 = load_config(str(tmp_path / "runs" / "my-faces-stage1" / "config.yaml"))
    assert stage1.model.pretrained == weights.REPRESENTATION and stage1.method["name"] == "bridging_stage1"
    stage2 = load_config(str(run / "config.yaml"))
    assert stage2.method["name"] == "bridging_stage2" and stage2.data.extra_unlabeled
    split = json.loads((run / "split.json").read_text())
    assert split["validation"] and not set(split["validation"]) & set(split["labeled"])
    face = next((tmp_path / "unlabeled").iterdir())
    assert semifer.load(run).predict([str(face)])[0].label in BASIC7


def test_builtin_classifier_on_real_faces_in_a_group_photo(real_data, tmp_path, monkeypatch):
    from test_predict import iou, photo_canvas

    faces = load_dataset(f"fer2013:{real_data}/fer2013/fer2013.csv.gz?split=PublicTest")
    rng = np.random.default_rng(0)
    photo, pasted = photo_canvas(rng, 720, 1000), []
    for k, side in enumerate([120, 140, 160, 180, 200, 130, 150, 170]):
        face = Image.fromarray(faces.pixels[k]).convert("RGB").resize((side, side), Image.BICUBIC)
        x, y = 20 + (k % 4) * 240, 20 + (k // 4) * 340
        photo[y : y + side, x : x + side] = np.asarray(face)
        pasted.append(((x, y, side, side), BASIC7[faces.labels[k]]))
    Image.fromarray(photo).save(tmp_path / "group.jpg", quality=95)
    monkeypatch.chdir(tmp_path)
    assert main(["predict", "group.jpg", "--out", "rows.json"]) == 0
    rows = json.loads((tmp_path / "rows.json").read_text())
    matched = [
        (label, r["label"]) for box, label in pasted for r in rows if iou(box, tuple(int(r[k]) for k in "xywh")) > 0.6
    ]
    assert len(matched) >= 6 and len(rows) <= len(pasted) + 1
    assert sum(truth == got for truth, got in matched) >= len(matched) // 2  # a trained model, not chance


def test_builtin_classifier_accuracy_on_publictest(real_data):
    metrics = semifer.evaluate(
        weights.CLASSIFIER, f"fer2013:{real_data}/fer2013/fer2013.csv.gz?split=PublicTest", progress=False
    )
    card = weights.get_weights(weights.CLASSIFIER).description["metrics"]
    assert metrics.accuracy >= 0.68 and abs(metrics.accuracy - card["accuracy"]) < 1e-3


def test_the_wheel_holds_the_builtin_weights(tmp_path):
    import subprocess
    import sys
    import zipfile
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(root),
        ],
        check=True,
        capture_output=True,
    )
    wheel = next(tmp_path.glob("semifer-*.whl"))
    assert wheel.stat().st_size < 25e6
    names = set(zipfile.ZipFile(wheel).namelist())
    for w in weights.list_weights():
        for name in [*w.files, "model.json"]:
            assert f"semifer/weights/{w.name}/{name}" in names
    assert f"semifer/weights/{weights.CLASSIFIER}/MODEL_CARD.md" in names


def test_probe_takes_the_builtin_representation_by_name():
    from semifer.models import backbone_arch, frozen_model

    assert backbone_arch(weights.REPRESENTATION) == "small_cnn"
    shipped = load_safetensors(weights.get_weights(weights.REPRESENTATION).weights_file)
    probed = frozen_model(weights.REPRESENTATION).backbone.state_dict()
    assert all(torch.equal(probed[k], v) for k, v in shipped.items())


def test_exported_files_are_readable_as_a_plain_open_would_make_them(tmp_path):
    import os

    old = os.umask(0o022)
    try:
        export_dir = tmp_path / "export"
        assert main(["export", weights.CLASSIFIER, "--format", "safetensors", "--out", str(export_dir)]) == 0
    finally:
        os.umask(old)
    for name in ("model.safetensors", "model.json", "MODEL_CARD.md"):
        assert (export_dir / name).stat().st_mode & 0o777 == 0o644, name
