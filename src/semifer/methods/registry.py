"""Methods by name, and the one step that turns a config's `method:` section into a `MethodSpec`."""

from __future__ import annotations

import copy
import importlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from ..config import Config, build_dataclass, parse_override, preset_names, read_preset
from ..errors import ConfigError
from .base import Method, MethodOptions

METHODS: dict[str, str] = {
    "supervised": "semifer.methods.supervised:Supervised",
    "pseudolabel": "semifer.methods.pseudolabel:PseudoLabel",
    "fixmatch": "semifer.methods.fixmatch:FixMatch",
    "flexmatch": "semifer.methods.flexmatch:FlexMatch",
    "adacm": "semifer.methods.adacm:AdaCM",
    "dta_snl": "semifer.methods.dta_snl:DTASNL",
    "dtm": "semifer.methods.dtm:DTM",
    "mixmatch": "semifer.methods.mixmatch:MixMatch",
    "remixmatch": "semifer.methods.remixmatch:ReMixMatch",
    "confidence_ssl": "semifer.methods.confidence_ssl:ConfidenceSSL",
    "bridging_stage1": "semifer.methods.bridging:BridgingStage1",
    "bridging_stage2": "semifer.methods.bridging:BridgingStage2",
    "distill": "semifer.methods.distill:Distill",
}


def method_class(name: str) -> type[Method]:
    if name not in METHODS:
        raise ConfigError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}")
    module, _, cls = METHODS[name].partition(":")
    return getattr(importlib.import_module(module), cls)


def _as_config_error(name: str, exc: ValueError) -> ConfigError:
    """A method's own ValueError as a ConfigError naming the method (a ConfigError stays as it is)."""
    return exc if isinstance(exc, ConfigError) else ConfigError(f"method {name}: {exc}")


@dataclass(frozen=True)
class MethodSpec:
    """A configured method before it is built: its class, its checked options and what it asks of the run
    (its head, its mu, its own training recipe).

    `resolve_method` makes it once from the config's `method:` section; the run, the CLI and the API read
    it instead of looking the method up again, and `fill` is the one place its values enter a config.
    """

    name: str
    cls: type[Method]
    options: MethodOptions

    @property
    def head(self) -> dict[str, Any]:
        """The head options (dropout, l2norm, attention, feature_dropout) the method trains with."""
        return {**Method.head, **self.cls.head}

    @property
    def unlabeled_ratio(self) -> float:
        """mu, unlabeled images per labeled one, when `train.unlabeled_ratio` is not set."""
        return self.cls.unlabeled_ratio

    @property
    def own_training(self) -> tuple[str, ...]:
        """The paper's training recipe as config overrides (`Method.own_training`)."""
        return self.cls.own_training

    def fill(self, cfg: Config) -> None:
        """Write into `cfg` what it leaves to the method -- the head options left unset, `train.unlabeled_ratio`
        -- so that config.yaml says what ran."""
        for key, default in self.head.items():
            if getattr(cfg.model, key) is None:
                setattr(cfg.model, key, default)
        if cfg.train.unlabeled_ratio is None:
            cfg.train.unlabeled_ratio = self.unlabeled_ratio

    def missing_own_training(self, cfg: Config) -> list[str]:
        """The method's own training settings that `cfg` (filled with the method's defaults) does not use,
        as 'key=this run's value (the method's: value)'."""
        filled = copy.deepcopy(cfg)
        self.fill(filled)
        values = filled.to_dict()
        missing = []
        for item in self.own_training:
            key, _, _ = item.partition("=")
            wanted: Any = parse_override(item)
            have: Any = values
            for part in key.split("."):
                wanted, have = wanted[part], have[part]
            same = have == wanted or (
                isinstance(have, (int, float)) and isinstance(wanted, (int, float)) and math.isclose(have, wanted)
            )
            if not same:
                missing.append(f"{key}={have} (the method's: {wanted})")
        return missing

    def own_training_notice(self, cfg: Config) -> str | None:
        """A notice when `cfg` trains this method without the training recipe it declares, else None."""
        missing = self.missing_own_training(cfg)
        if not missing:
            return None
        presets = [p for p in preset_names() if read_preset(p).get("method", {}).get("name") == self.name]
        where = f"the presets {', '.join(presets)} apply it" if presets else "override these keys to apply it"
        return (
            f"notice: {self.name} declares its own training recipe, which this run does not use: "
            f"{'; '.join(missing)}; {where}"
        )

    def build(self, num_classes: int, num_unlabeled: int = 0) -> Method:
        """The method for a run on `num_classes` classes and `num_unlabeled` unlabeled images."""
        try:
            return self.cls(self.options, num_classes, num_unlabeled)
        except ValueError as exc:
            raise _as_config_error(self.name, exc) from None


def resolve_method(section: Mapping[str, Any]) -> MethodSpec:
    """The config's `method:` section (`name` and the method's options) resolved: the class found by name
    and the options typed, defaulted and checked -- unknown keys, types, ranges, choices, then the options'
    own `check` -- each failure a one-line ConfigError naming the key and the method."""
    name = section.get("name")
    if not isinstance(name, str):
        raise ConfigError(f"method.name must be a method name; got {name!r}")
    cls = method_class(name)
    values = {k: v for k, v in section.items() if k != "name"}
    known = [f.name for f in fields(cls.Options)]
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(
            f"unknown config key method.{unknown[0]} for method {name}; valid keys: name, {', '.join(known)}"
        )
    options = build_dataclass(cls.Options, values, "method.")
    try:
        options.check()
    except ValueError as exc:
        raise _as_config_error(name, exc) from None
    return MethodSpec(name, cls, options)


def build_method(section: Mapping[str, Any], num_classes: int, num_unlabeled: int = 0) -> Method:
    """The method a `method:` section configures (`resolve_method`, then `MethodSpec.build`)."""
    return resolve_method(section).build(num_classes, num_unlabeled)


def plain_head(name: str) -> list[str]:
    """Config overrides that give method `name` the plain linear head where it declares a head of its own
    (Ada-CM's dropout 0.5 + unit feature), so methods compare on one network and one optimiser; modules
    that are part of a method (DTA+SNL's attention) stay."""
    head = method_class(name).head
    return [o for o in ("model.dropout=0", "model.l2norm=false") if o.split("=")[0].removeprefix("model.") in head]
