"""Packaged presets find their datasets under a data root (SEMIFER_DATA or data.root=), from any folder, and a
missing dataset is one error naming the dataset, its layout, where it is published and the setting."""

import pytest

from fixture_layouts import write_fer2013
from semifer.cli import main
from semifer.config import preset_names, read_preset
from semifer.data import load_dataset
from semifer.errors import DataError

SHORT = [
    "train.epochs=1",
    "train.iters_per_epoch=1",
    "train.batch_size=4",
    "data.split=per_class:1",
    "data.workers=0",
    "train.eval_batch_size=16",
]


@pytest.fixture
def data_root(tmp_path):
    """A data root in FER2013's real layout: DIR/fer2013/fer2013.csv.gz with Training and PublicTest rows."""
    root = tmp_path / "datasets"
    rows = [(e, "Training") for e in range(7) for _ in range(2)] + [(e, "PublicTest") for e in range(7)]
    write_fer2013(root / "fer2013" / "fer2013.csv.gz", rows)
    return root


def test_no_packaged_preset_names_a_path_of_this_repository():
    for name in preset_names():
        text = str(read_preset(name))
        assert "shared/" not in text and "../" not in text, name


@pytest.mark.parametrize("how", ["env", "setting"])
def test_a_fer2013_preset_trains_from_an_empty_folder(data_root, tmp_path, monkeypatch, capsys, how):
    work = tmp_path / "empty"
    work.mkdir()
    monkeypatch.chdir(work)
    overrides = [*SHORT, "out_dir=runs"]
    if how == "env":
        monkeypatch.setenv("SEMIFER_DATA", str(data_root))
    else:
        monkeypatch.delenv("SEMIFER_DATA", raising=False)
        overrides.append(f"data.root={data_root}")
    assert main(["train", "-c", "fer2013_small", *overrides]) == 0
    assert (work / "runs" / "fer2013-small" / "final.json").is_file()
    assert "fer2013" in capsys.readouterr().out


def test_without_the_data_the_error_names_dataset_layout_publisher_and_setting(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SEMIFER_DATA", str(tmp_path / "nowhere"))
    assert main(["train", "-c", "adacm_fer2013", *SHORT]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") <= 3 and "Traceback" not in err
    for needle in (
        "fer2013",
        "emotion,pixels,Usage",
        "Kaggle",
        "data.root=",
        "SEMIFER_DATA",
        str(tmp_path / "nowhere" / "fer2013" / "fer2013.csv.gz"),
    ):
        assert needle in err, needle


def test_a_path_here_wins_over_the_data_root_and_absolute_paths_stay(data_root, tmp_path, monkeypatch):
    monkeypatch.chdir(data_root)
    monkeypatch.setenv("SEMIFER_DATA", str(tmp_path / "nowhere"))
    assert len(load_dataset("fer2013:fer2013/fer2013.csv.gz?split=Training")) == 14
    csv = data_root / "fer2013" / "fer2013.csv.gz"
    assert len(load_dataset(f"fer2013:{csv}?split=PublicTest", root=tmp_path / "nowhere")) == 7
    with pytest.raises(DataError, match="rafdb dataset does not exist.*list_patition_label.txt.*on request"):
        load_dataset("rafdb:RAF-DB/basic?split=train")
