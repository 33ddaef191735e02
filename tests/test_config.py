import pytest

from semifer.config import load_config, parse_override, preset_names
from semifer.errors import ConfigError
from semifer.methods import build_method


def test_presets_load_and_overrides_win():
    assert {"demo", "fer2013_small"} <= set(preset_names())
    cfg = load_config("demo", ["train.lr=0.5", "data.split=adacm:400", "model.arch=resnet18"])
    assert cfg.train.lr == 0.5 and cfg.data.split == "adacm:400" and cfg.model.arch == "resnet18"
    assert cfg.train.epochs == 10  # from the preset


def test_override_values_are_typed():
    assert parse_override("train.milestones=[5, 8]") == {"train": {"milestones": [5, 8]}}
    assert parse_override("model.pretrained=null") == {"model": {"pretrained": None}}
    assert parse_override("train.lr=6e-3") == {"train": {"lr": 0.006}}
    assert parse_override("data.train=fer2013:x.csv") == {"data": {"train": "fer2013:x.csv"}}


@pytest.mark.parametrize("bad", ["train.lrr=1", "nonsense=2", "data=3", "train.lr"])
def test_bad_keys_are_named(bad):
    with pytest.raises(ConfigError):
        load_config(None, [bad])


def test_unknown_preset_and_method_option():
    with pytest.raises(ConfigError, match="presets"):
        load_config("no_such_preset")
    with pytest.raises(ConfigError, match="label_smoothing"):
        build_method({"name": "supervised", "smoothing": 0.1}, 7)
    with pytest.raises(ConfigError, match="unknown method"):
        build_method({"name": "nope"}, 7)


def test_yaml_file_with_base(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("base: demo\ntrain:\n  epochs: 3\n")
    cfg = load_config(str(path))
    assert cfg.train.epochs == 3 and cfg.data.split == "per_class:60"
