"""The command line: help, train, eval in-domain and cross-dataset, splits, clear errors."""

import json
import subprocess
import sys

import numpy as np
import pytest

from fixture_layouts import make_class_tree, write_fer2013
from semifer.cli import main

TINY = [
    "data.train=synthetic:?n=140",
    "data.test=synthetic:?split=test&n=35",
    "data.split=per_class:3",
    "data.workers=0",
    "train.batch_size=8",
    "train.iters_per_epoch=2",
    "train.epochs=1",
]


def test_help_lists_the_commands():
    out = subprocess.run([sys.executable, "-m", "semifer", "--help"], capture_output=True, text=True, check=True)
    for command in ("train", "eval", "splits", "demo", "presets"):
        assert command in out.stdout


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    assert main(["train", "-c", "demo", *TINY, f"out_dir={out}", "name=tiny"]) == 0
    return out / "tiny"


def test_eval_on_a_privatetest_only_fer2013_csv(trained_run, tmp_path, capsys):
    csv = write_fer2013(tmp_path / "private.csv", [(e % 7, "PrivateTest") for e in range(21)])
    assert (
        main(["eval", str(trained_run), "--data", f"fer2013:{csv}?split=PrivateTest", "--out", str(tmp_path / "ev")])
        == 0
    )
    text = capsys.readouterr().out
    assert "accuracy" in text and "macro-F1" in text and "per class" in text
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert metrics["n"] == 21 and len(metrics["confusion"]) == 7
    assert (tmp_path / "ev" / "confusion.png").is_file()


def test_cross_dataset_eval_on_ckplus48_reports_unmapped_contempt(trained_run, tmp_path, capsys):
    tree = make_class_tree(
        tmp_path / "CK+48",
        {"anger": 2, "contempt": 3, "disgust": 2, "fear": 1, "happy": 2, "sadness": 1, "surprise": 2},
        suffix=".png",
    )
    assert main(["eval", str(trained_run / "checkpoints" / "last.pt"), "--data", f"folder:{tree}"]) == 0
    text = capsys.readouterr().out
    assert "(n=10)" in text and "contempt 3" in text


def test_splits_command(tmp_path, capsys):
    out = tmp_path / "split.json"
    assert main(["splits", "--data", "synthetic:?n=700", "--protocol", "adacm:100", "--out", str(out)]) == 0
    blob = json.loads(out.read_text())
    assert len(blob["labeled"]) == 100 and blob["counts"]["fear"] == 10
    assert "100 labeled" in capsys.readouterr().out
    assert (
        main(
            [
                "splits",
                "--data",
                "synthetic:?n=700",
                "--protocol",
                "per_class:5",
                "--val",
                "per_class:2",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    blob = json.loads(out.read_text())
    assert len(blob["validation"]) == 14 and not set(blob["validation"]) & set(blob["unlabeled"])
    assert "14 validation" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("fer2013:{missing}", "does not exist"),
        ("fer2013:{bad}?split=PrivateTest", "line 3"),
        ("nosuch:/x", "unknown dataset spec"),
    ],
)
def test_bad_input_is_one_clear_error(trained_run, tmp_path, capsys, spec, needle):
    bad = write_fer2013(tmp_path / "bad.csv", [(0, "PrivateTest"), (1, "PrivateTest")], pixels={1: "1 2 3"})
    spec = spec.format(missing=tmp_path / "missing.csv", bad=bad)
    assert main(["eval", str(trained_run), "--data", spec]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


def test_train_with_unknown_key_fails_cleanly(capsys):
    assert main(["train", "-c", "demo", "train.nonsense=1"]) == 2
    assert "nonsense" in capsys.readouterr().err


def test_pixels_are_what_the_model_sees(tmp_path):
    from semifer.data import load_dataset

    csv = write_fer2013(tmp_path / "f.csv", [(3, "Training")])
    faces = load_dataset(f"fer2013:{csv}")
    image = faces.load(0).numpy()
    assert image.shape == (3, 48, 48) and np.array_equal(image[0], image[2])
    assert faces.classes[faces.labels[0]] == "happy"


def test_version(capsys):
    from semifer import __version__

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0 and capsys.readouterr().out.strip() == f"semifer {__version__}"


def test_eval_on_unlabeled_images_points_to_predict(trained_run, tmp_path, capsys):
    from fixture_layouts import write_image

    write_image(tmp_path / "faces" / "a.png", (48, 48))
    assert main(["eval", str(trained_run), "--data", f"unlabeled:{tmp_path / 'faces'}"]) == 2
    err = capsys.readouterr().err
    assert "no labels" in err and "semifer predict" in err and "Traceback" not in err
    assert main(["eval", str(trained_run), "--data", str(tmp_path / "faces" / "a.png")]) == 2
    err = capsys.readouterr().err
    assert "not a dataset spec" in err and "semifer predict" in err and "folder:" in err


def test_compare_draws_the_runs(tiny_run, trained_run, tmp_path, capsys):
    out = tmp_path / "fig" / "compare.png"
    assert main(["compare", str(tiny_run), str(trained_run), "--out", str(out), "--title", "two runs"]) == 0
    assert out.stat().st_size > 10_000 and str(out) in capsys.readouterr().out
    assert main(["compare", str(tmp_path)]) == 2
    assert "metrics.jsonl" in capsys.readouterr().err
