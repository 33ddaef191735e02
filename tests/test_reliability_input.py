"""Every bad input is one clear error naming the key or file, and data that trains
but not as asked (a reordered copy, a short split, an empty class) is refused or warned about."""

from __future__ import annotations

import numpy as np
import pytest

from fixture_layouts import make_class_tree, write_fer2013, write_image
from semifer.cli import main
from semifer.config import load_config, read_preset
from semifer.data.loaders import ViewDataset, endless_loader, eval_loader
from semifer.data.registry import load_dataset
from semifer.data.splits import Split, apply_split, make_split
from semifer.data.views import build_view
from semifer.engine.run import train
from semifer.errors import ConfigError, DataError, DataWarning
from semifer.methods import build_method, resolve_method
from tiny_runs import tiny_config


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return train(tiny_config(tmp_path_factory.mktemp("runs"), "name=tiny"), progress=False).run_dir


# ---------------------------------------------------------------------------------- config values
@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("train.lr=abc", "train.lr must be a number; got 'abc'"),
        ("train.epochs=two", "train.epochs must be an integer"),
        ("train.batch_size=0", "train.batch_size must be >= 1; got 0"),
        ("train.iters_per_epoch=0", "train.iters_per_epoch must be >= 1"),
        ("data.img_size=47.5", "data.img_size must be an integer; got 47.5"),
        ("train.amp=maybe", "train.amp must be one of auto|bf16|fp16|off"),
        ("train.epochs=-1", "train.epochs must be >= 1; got -1"),
        ("train.lr=-0.1", "train.lr must be >= 0"),
        ("train.ema=1.5", "train.ema must be >= 0 and < 1"),
        ("data.extra_unlabeled=3", "data.extra_unlabeled must be a list of strings"),
        ("train.on_nonfinite=ignore", "train.on_nonfinite must be one of stop, skip"),
        ("model.arch=resnet7", "model.arch must be one of"),
        ("method=1", "method must be a section of settings (e.g. method.name=supervised), not 1"),
        ("data=1", "config section data must be a mapping"),
    ],
)
def test_bad_config_values_are_one_line_naming_the_key(override, needle, capsys):
    with pytest.raises(ConfigError) as info:
        load_config("demo", [override])
    assert needle in str(info.value) and "\n" not in str(info.value)
    assert main(["train", "-c", "demo", override]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


def test_good_values_pass_and_amp_takes_a_bool_or_a_mode():
    cfg = load_config("demo", ["train.lr=5e-4", "train.amp=false", "train.ema=0", "data.crop_padding=null"])
    assert cfg.train.lr == 0.0005 and cfg.train.amp == "off" and isinstance(cfg.train.ema, float)
    assert load_config("demo", ["train.amp=bf16"]).train.amp == "bf16"


def test_method_options_are_checked_when_the_method_resolves():
    with pytest.raises(ConfigError, match=r"method\.tau must be >= 0 and <= 1; got 1\.5"):
        resolve_method(load_config("demo", ["method.name=fixmatch", "method.tau=1.5"]).method)
    with pytest.raises(ConfigError, match="method.threshold must be one of fixed"):
        resolve_method(load_config("demo", ["method.name=fixmatch", "method.threshold=sometimes"]).method)
    with pytest.raises(ConfigError, match="method remixmatch: .*lambda_rot must be 0"):
        build_method({"name": "remixmatch", "lambda_rot": 0.5}, 7)


def test_malformed_yaml_names_the_file_and_line(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("base: demo\ntrain:\n  lr: 0.1\n  epochs: [3\n")
    with pytest.raises(ConfigError, match=rf"{path}, line \d: not valid YAML"):
        load_config(str(path))


def test_a_base_cycle_is_named_not_a_recursion_error(tmp_path):
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text(f"base: {b}\n")
    b.write_text(f"base: {a}\ntrain:\n  epochs: 3\n")
    with pytest.raises(ConfigError, match="base: chain loops"):
        read_preset(str(a))


# ---------------------------------------------------------------------------------- data and files
@pytest.mark.parametrize("workers", [0, 1])
def test_a_corrupt_image_in_a_loader_worker_is_the_original_data_error(tmp_path, workers):
    root = make_class_tree(tmp_path / "faces", {"happy": 2, "sad": 2})
    (root / "sad" / "001.png").write_bytes(b"\x89PNG not really")
    faces = load_dataset(f"folder:{root}")
    dataset = ViewDataset(faces, [build_view("weak", 16)])
    with pytest.raises(DataError, match=r"sad/001\.png: cannot read image") as info:
        batches = endless_loader(dataset, 4, seed=0, workers=workers)
        next(batches)
    assert "Traceback" not in str(info.value) and "worker" not in str(info.value)
    with pytest.raises(DataError, match="cannot read image"):
        list(eval_loader(ViewDataset(faces, [build_view("test", 16)]), 2, workers))


@pytest.mark.parametrize(
    "spec", ["synthetic:?n=-5", "synthetic:?n=abc", "synthetic:?split=val", "synthetic:?size=2", "synthetic:?seed=-1"]
)
def test_bad_synthetic_options_are_data_errors(spec):
    with pytest.raises(DataError):
        load_dataset(spec)


@pytest.mark.parametrize("protocol", ["counts:happy=-3", "per_class:-1", "total:-5"])
def test_negative_split_counts_are_refused(protocol):
    with pytest.raises(DataError, match="negative|bad split"):
        make_split(load_dataset("synthetic:?n=70"), protocol)


def test_eval_on_data_without_any_of_the_models_classes_is_an_error(trained, tmp_path, capsys):
    tree = make_class_tree(tmp_path / "contempt-only", {"contempt": 3})
    assert main(["eval", str(trained), "--data", f"folder:{tree}"]) == 2
    err = capsys.readouterr().err
    assert "none of its classes (contempt)" in err and "Traceback" not in err


def test_batch_size_zero_is_a_clear_error(trained, capsys):
    with pytest.raises(SystemExit) as info:
        main(["eval", str(trained), "--data", "synthetic:?n=7", "--batch-size", "0"])
    assert info.value.code == 2 and "--batch-size: must be 1 or more" in capsys.readouterr().err


# ---------------------------------------------------------------------------------- defect 7
def test_a_split_file_on_a_reordered_copy_of_its_data_is_refused(tmp_path):
    rows = [(e % 7, "Training") for e in range(28)]
    original = load_dataset(f"fer2013:{write_fer2013(tmp_path / 'a.csv', rows)}")
    split = make_split(original, "per_class:2", seed=0)
    split.save(tmp_path / "split.json")
    reordered = load_dataset(f"fer2013:{write_fer2013(tmp_path / 'b.csv', rows[::-1])}")
    assert reordered.ids == original.ids  # row-number ids: the old split would silently pick other faces
    with pytest.raises(DataError, match="drawn from other data"):
        apply_split(reordered, Split.load(tmp_path / "split.json"), str(tmp_path / "split.json"))
    labeled, _ = apply_split(original, Split.load(tmp_path / "split.json"))
    assert len(labeled) == 14


def test_a_split_larger_than_the_data_warns(tmp_path):
    with pytest.warns(DataWarning, match=r"fewer images than asked in neutral \(10 of 40\)"):
        split = make_split(load_dataset("synthetic:?n=70"), "per_class:40")
    assert split.counts["neutral"] == 10


def test_an_empty_class_folder_warns(tmp_path):
    root = make_class_tree(tmp_path / "faces", {"happy": 2, "sad": 2})
    (root / "fear").mkdir()
    write_image(root / "sad" / "extra.png")
    with pytest.warns(DataWarning, match="'fear' holds no images"):
        faces = load_dataset(f"folder:{root}")
    assert np.bincount(faces.labels).sum() == 5


def test_the_command_line_shows_data_warnings_as_one_line(tmp_path, capsys):
    out = tmp_path / "split.json"
    assert main(["splits", "--data", "synthetic:?n=70", "--protocol", "per_class:40", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "semifer: warning: split per_class:40" in err and "warnings.warn" not in err
