"""Training methods, one per file, found by name through `METHODS`."""

from __future__ import annotations

import importlib
from typing import Any

from ..errors import ConfigError
from .base import Batch, EpochContext, Method, StepOutput, TrainContext

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


def plain_head(name: str) -> list[str]:
    """Config overrides that give method `name` the plain linear head where it declares a head of its own
    (Ada-CM's dropout 0.5 + unit feature), so methods compare on one network and one optimiser; modules
    that are part of a method (DTA+SNL's attention) stay."""
    head = method_class(name).head
    return [o for o in ("model.dropout=0", "model.l2norm=false") if o.split("=")[0].removeprefix("model.") in head]


def build_method(options: dict[str, Any], num_classes: int, num_unlabeled: int = 0) -> Method:
    """The configured method; an invalid combination of its options is a ConfigError naming the method."""
    cls = method_class(options["name"])
    try:
        return cls(options, num_classes, num_unlabeled)
    except ConfigError:
        raise
    except ValueError as exc:
        raise ConfigError(f"method {options['name']}: {exc}") from None


__all__ = [
    "METHODS",
    "Batch",
    "EpochContext",
    "Method",
    "StepOutput",
    "TrainContext",
    "build_method",
    "method_class",
    "plain_head",
]
