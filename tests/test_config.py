import pytest

from semifer.config import load_config, parse_override, preset_names
from semifer.errors import ConfigError
from semifer.methods import build_method


def test_presets_load_and_overrides_win():
    assert {"demo", "fer2013_small"} <= set(preset_names())
    cfg = load_config("demo", ["train.lr=0.5", "data.split=adacm:400", "model.arch=resnet18"])
    assert cfg.train.lr == 0.5 and cfg.data.split == "adacm:400" and cfg.model.arch == "resnet18"
    assert cfg.train.epochs == 15  # from the preset


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


def test_every_preset_loads_and_says_what_it_is(capsys):
    from semifer.cli import main
    from semifer.config import preset_description
    from semifer.methods import resolve_method

    for name in preset_names():
        resolve_method(load_config(name).method)  # the preset's method options are the method's own
        assert len(preset_description(name)) > 20, name
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    assert "fixmatch_fer2013" in out and "mu 7" in out and "dta_snl_rafdb" in out


def test_each_method_recipe_has_a_preset_and_a_run_without_it_says_so():
    from semifer.config import read_preset
    from semifer.methods import METHODS, method_class, resolve_method

    def own_training_notice(cfg):
        return resolve_method(cfg.method).own_training_notice(cfg)

    for method in METHODS:
        if not method_class(method).own_training:
            continue
        presets = [p for p in preset_names() if read_preset(p).get("method", {}).get("name") == method]
        assert presets and all(own_training_notice(load_config(p)) is None for p in presets), method
    notice = own_training_notice(load_config("fer2013_small", ["method.name=adacm"]))
    assert "train.optimizer=sgd (the method's: adam)" in notice and "adacm_fer2013" in notice
    mu = own_training_notice(load_config("fer2013_ssl", ["method.name=fixmatch"]))
    assert "train.unlabeled_ratio=1.0 (the method's: 7)" in mu
    assert own_training_notice(load_config("fer2013_ssl", ["method.name=supervised"])) is None
    assert load_config("fixmatch_fer2013").train.unlabeled_ratio == 7


def test_unlabeled_ratio_left_unset_takes_the_methods_mu():
    from semifer.methods import resolve_method

    for method, mu in [("fixmatch", 7.0), ("flexmatch", 7.0), ("adacm", 1.0), ("mixmatch", 1.0)]:
        cfg = load_config("fer2013_small", [f"method.name={method}"])
        assert cfg.train.unlabeled_ratio is None
        resolve_method(cfg.method).fill(cfg)
        assert cfg.train.unlabeled_ratio == mu, method
    explicit = load_config("fer2013_small", ["method.name=fixmatch", "train.unlabeled_ratio=2"])
    resolve_method(explicit.method).fill(explicit)
    assert explicit.train.unlabeled_ratio == 2


def test_a_method_takes_only_its_own_options(capsys):
    from semifer.cli import main
    from semifer.methods import resolve_method

    with pytest.raises(
        ConfigError, match=r"unknown config key method\.margin_B for method fixmatch; valid keys: .*tau"
    ):
        resolve_method({"name": "fixmatch", "margin_B": 0.9})
    assert resolve_method({"name": "adacm", "margin_B": 0.9}).options.margin_B == 0.9
    assert resolve_method({"name": "confidence_ssl", "margin_B": 0.9}).options.margin_B == 0.9
    with pytest.raises(ConfigError, match="method.threshold must be one of dynamic, fixed; got 'flexmatch'"):
        resolve_method({"name": "dta_snl", "threshold": "flexmatch"})
    assert main(["train", "-c", "demo", "method.name=fixmatch", "method.margin_B=0.9"]) == 2
    assert "unknown config key method.margin_B for method fixmatch" in capsys.readouterr().err


def test_every_threshold_a_method_offers_is_built_from_its_options():
    from semifer.config_checks import declared_rules
    from semifer.methods import METHODS, method_class
    from semifer.methods.thresholds import POLICIES

    offered = {}
    for name in METHODS:
        choices = declared_rules(method_class(name).Options, "threshold")[1]
        for kind in choices or ():
            assert isinstance(build_method({"name": name, "threshold": kind}, 7, 10).policy, POLICIES[kind]), name
        offered[name] = choices
    assert offered["fixmatch"] == ("fixed",) and offered["confidence_ssl"] == tuple(POLICIES)
    assert offered["supervised"] is None
