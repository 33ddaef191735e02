"""Checking every config value and method option against its declared type and range when the config loads.

Types come from the dataclasses' own annotations (`TrainConfig`, a method's `Options`...), ranges and
choices from the tables below, keyed by the dotted key (`*` matches any option name). A bad value is one
line that names the key, what it must be and what it was, instead of a traceback deep in training.
"""

from __future__ import annotations

import math
import re
import types
import typing
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from .errors import ConfigError

_EXPONENT = re.compile(r"[-+]?\d+(\.\d*)?[eE][-+]?\d+")


@dataclass(frozen=True)
class Range:
    """low <= value <= high, with either end open or absent."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def holds(self, value: float) -> bool:
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return not (self.high is not None and (value >= self.high if self.high_open else value > self.high))

    def __str__(self) -> str:
        low = "" if self.low is None else f"{'>' if self.low_open else '>='} {self.low:g}"
        high = "" if self.high is None else f"{'<' if self.high_open else '<='} {self.high:g}"
        return " and ".join(p for p in (low, high) if p)


POSITIVE = Range(0, low_open=True)
NON_NEGATIVE = Range(0)
AT_LEAST_ONE = Range(1)
UNIT = Range(0, 1)
UNIT_OPEN_TOP = Range(0, 1, high_open=True)

RANGES: dict[str, Range] = {
    "seed": NON_NEGATIVE,
    "data.extra_ratio": UNIT,
    "data.img_size": Range(8),
    "data.crop_padding": NON_NEGATIVE,
    "data.workers": NON_NEGATIVE,
    "model.dropout": UNIT_OPEN_TOP,
    "model.feature_dropout": UNIT_OPEN_TOP,
    "train.epochs": AT_LEAST_ONE,
    "train.iters_per_epoch": AT_LEAST_ONE,
    "train.batch_size": AT_LEAST_ONE,
    "train.unlabeled_ratio": NON_NEGATIVE,
    "train.lr": NON_NEGATIVE,  # 0 freezes the weights (a probe of what a pretrained backbone holds)
    "train.momentum": UNIT_OPEN_TOP,
    "train.weight_decay": NON_NEGATIVE,
    "train.warmup_iters": NON_NEGATIVE,
    "train.milestones": NON_NEGATIVE,
    "train.gamma": POSITIVE,
    "train.ema": UNIT_OPEN_TOP,
    "train.ema_weight_decay": NON_NEGATIVE,
    "train.eval_every": AT_LEAST_ONE,
    "train.eval_batch_size": AT_LEAST_ONE,
    "method.tau": UNIT,
    "method.lambda_*": NON_NEGATIVE,
    "method.T": POSITIVE,
    "method.temperature": POSITIVE,
    "method.*alpha": NON_NEGATIVE,
    "method.*_weight": NON_NEGATIVE,
    "method.rampup": UNIT,
    "method.unsup_warmup": UNIT,
    "method.label_smoothing": UNIT_OPEN_TOP,
    "method.weak_views": AT_LEAST_ONE,
    "method.strong_views": NON_NEGATIVE,
    "method.margin_B": UNIT,
    "method.margin_gamma": POSITIVE,
    "method.margin_floor": UNIT,
    "method.margin_init": UNIT,
    "method.dyn_momentum": UNIT_OPEN_TOP,
    "method.dyn_floor": UNIT,
    "method.dyn_ceil": UNIT,
    "method.snl_threshold": UNIT,
    "method.snl_k": NON_NEGATIVE,
    "method.history": AT_LEAST_ONE,
    "pretrain.patch_size": AT_LEAST_ONE,
    "pretrain.mask_ratio": Range(0, 1, low_open=True, high_open=True),
    "pretrain.base_lr": POSITIVE,
    "pretrain.decoder_dim": AT_LEAST_ONE,
    "pretrain.decoder_depth": AT_LEAST_ONE,
    "pretrain.preview": NON_NEGATIVE,
}

# Keys with a closed set of values; the set replaces the type check (train.amp is checked by config.amp_mode).
CHOICES: dict[str, tuple[Any, ...]] = {
    "train.optimizer": ("sgd", "adam", "adamw"),
    "train.schedule": ("none", "cosine", "fixmatch_cosine", "step"),
    "train.on_nonfinite": ("stop", "skip"),
    "method.threshold": ("fixed", "flexmatch", "adaptive_margin", "dynamic"),
    "method.uncertain_loss": ("none", "infonce", "snl"),
    "method.target_view": ("strong", "weak"),
    "method.labeled_view": ("weak", "strong", "randaugment_m9"),
    "method.margin_schedule": ("paper", "linear", "half", "log2"),
    "method.flex_mapping": ("convex", "linear"),
    "method.dyn_class_state": ("confidence", "probability"),
    "method.p_target": ("labeled", "uniform"),
}

_DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


def _lookup(table: dict[str, Any], key: str) -> Any:
    return table.get(key) or next((v for pattern, v in table.items() if fnmatchcase(key, pattern)), None)


def describe(hint: Any) -> str:
    """A type annotation in words: 'an integer', 'a number or null', 'a list of strings'."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(describe(a) for a in args)
    if origin in (list, tuple):
        return f"a list of {describe(args[0]).split(' ', 1)[-1]}s" if args else "a list"
    if origin is dict:
        return "a mapping"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string",
            type(None): "null"}.get(hint, getattr(hint, "__name__", str(hint)))


def _conform(value: Any, hint: Any) -> tuple[bool, Any]:
    """(whether `value` has type `hint`, the value with ints widened to floats where a float is declared)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True, value
    if origin in (typing.Union, types.UnionType):
        for arm in args:
            ok, out = _conform(value, arm)
            if ok:
                return True, out
        return False, value
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            return False, value
        items = [_conform(v, args[0]) for v in value] if args and args[0] is not Ellipsis else []
        return all(ok for ok, _ in items), type(value)(v for _, v in items) if items else value
    if origin is dict:
        return isinstance(value, dict), value
    if hint is type(None):
        return value is None, value
    if hint is bool:
        return isinstance(value, bool), value
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if hint is float:
        if isinstance(value, str) and _EXPONENT.fullmatch(value.strip()):
            value = float(value)  # YAML 1.1 reads 5e-4 (no dot) as a string
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            return True, float(value)
        return False, value
    if hint is str:
        return isinstance(value, str), value
    return True, value


def check_value(key: str, value: Any, hint: Any) -> Any:
    """`value` checked against `hint` and the key's range or choices; returns it (ints widened to floats)."""
    choices = _lookup(CHOICES, key)
    if choices is not None:
        if not any(value == c and type(value) is type(c) for c in choices):
            raise ConfigError(f"{key} must be one of {', '.join(str(c).lower() for c in choices)}; got {value!r}")
        return value
    ok, value = _conform(value, hint)
    if not ok:
        raise ConfigError(f"{key} must be {describe(hint)}; got {value!r}")
    bounds = _lookup(RANGES, key)
    numbers = value if isinstance(value, list | tuple) else [value]
    for number in numbers:
        if bounds is not None and isinstance(number, int | float) and not bounds.holds(number):
            raise ConfigError(f"{key} must be {bounds}; got {value!r}")
    if key == "train.device" and not _DEVICE.fullmatch(value):
        raise ConfigError(f"train.device must be auto, cpu, cuda, cuda:N or mps; got {value!r}")
    if key == "model.arch":
        from .models.backbones import BACKBONES

        if value not in BACKBONES:
            raise ConfigError(f"model.arch must be one of {', '.join(BACKBONES)}; got {value!r}")
    return value
