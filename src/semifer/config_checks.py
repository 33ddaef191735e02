"""Checking every config value and method option against its declared type and range.

Types come from the dataclasses' own annotations (`TrainConfig`, a method's `Options`...). Ranges and
choices of the config's sections come from the tables below, keyed by the dotted key; a method's options
declare theirs beside each field (`option`), in the method's own module. A bad value is one line that names
the key, what it must be and what it was, instead of a traceback deep in training.
"""

from __future__ import annotations

import math
import re
import types
import typing
from dataclasses import MISSING, dataclass, field
from typing import Any

from .errors import ConfigError

_EXPONENT = re.compile(r"[-+]?\d+(\.\d*)?[eE][-+]?\d+")


@dataclass(frozen=True)
class Range:
    """low <= value <= high, with either end open or absent, and `limit`: an upper bound of sanity where the
    meaning sets none (a batch size, a learning rate), so a typo or an overflow is an error naming the key
    instead of a traceback or an absurd allocation deep in training."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    limit: float | None = None

    @property
    def highest(self) -> float | None:
        return self.high if self.high is not None else self.limit

    def within_meaning(self, value: float) -> bool:
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return not (self.high is not None and (value >= self.high if self.high_open else value > self.high))

    def holds(self, value: float) -> bool:
        return self.within_meaning(value) and (self.limit is None or value <= self.limit)

    def __str__(self) -> str:
        low = "" if self.low is None else f"{'>' if self.low_open else '>='} {_number(self.low)}"
        high = "" if self.high is None else f"{'<' if self.high_open else '<='} {_number(self.high)}"
        return " and ".join(p for p in (low, high) if p)

    def interval(self) -> str:
        """'[1, 65536]', '(0, 1000000]': the allowed values in interval notation."""
        low = "(-inf" if self.low is None else f"{'(' if self.low_open else '['}{_number(self.low)}"
        top = self.highest
        high = "inf)" if top is None else f"{_number(top)}{')' if self.high is not None and self.high_open else ']'}"
        return f"{low}, {high}"

    def error(self, key: str, value: Any, number: float) -> str | None:
        """The message for `number` (one of `value`'s numbers) outside the range, or None when inside."""
        whole = f" (allowed range {self.interval()})" if self.limit is not None else ""
        if not self.within_meaning(number):
            return f"{key} must be {self}; got {value!r}{whole}"
        if self.limit is not None and number > self.limit:
            return f"{key} must be <= {_number(self.limit)}; got {value!r}{whole}"
        return None


def _number(x: float) -> str:
    """A bound as written: 65536 and 1000000 in full, 0.5 and 1e-06 short."""
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else f"{x:g}"


UNIT = Range(0, 1)
UNIT_OPEN_TOP = Range(0, 1, high_open=True)
UNIT_OPEN_BOTTOM = Range(0, 1, low_open=True)
STEPS = 10**7  # epochs, iterations per epoch, milestones: far beyond any run, far below an overflow
BATCH = 65536
PIXELS = 1024  # image sides and patches
WEIGHT = 1000.0  # loss weights (MixMatch's lambda_u is 75)
SHAPE = 100.0  # temperatures, Beta distribution parameters, the margin's gamma


def up_to(low: float, limit: float) -> Range:
    return Range(low, limit=limit)


def positive(limit: float) -> Range:
    return Range(0, low_open=True, limit=limit)


RANGES: dict[str, Range] = {
    "seed": up_to(0, 2**31 - 1),  # numpy seeds stop at 2**32 - 1, and a run adds its rank
    "data.extra_ratio": UNIT,
    "data.img_size": up_to(16, PIXELS),
    "data.crop_padding": up_to(0, PIXELS),
    "data.workers": up_to(0, 256),
    "model.patch_size": up_to(1, PIXELS),
    "model.drop_path": UNIT_OPEN_TOP,
    "model.dropout": UNIT_OPEN_TOP,
    "model.feature_dropout": UNIT_OPEN_TOP,
    "train.epochs": up_to(1, STEPS),
    "train.iters_per_epoch": up_to(1, STEPS),
    "train.batch_size": up_to(1, BATCH),
    "train.unlabeled_ratio": up_to(0, 64),
    # 0 freezes the weights (a probe of what a pretrained backbone holds); a rate far beyond any useful one
    # still runs, so that the run stops at its first NaN loss (train.on_nonfinite) rather than here
    "train.lr": up_to(0, 1e6),
    "train.momentum": UNIT_OPEN_TOP,
    "train.weight_decay": up_to(0, 1),
    "train.layer_decay": UNIT_OPEN_BOTTOM,
    "train.warmup_iters": up_to(0, STEPS * 100),
    "train.milestones": up_to(0, STEPS),
    "train.gamma": positive(10),
    "train.ema": UNIT_OPEN_TOP,
    "train.ema_weight_decay": up_to(0, 1),
    "train.eval_every": up_to(1, STEPS),
    "train.eval_batch_size": up_to(1, BATCH),
    "train.minutes": positive(STEPS),
    "pretrain.patch_size": up_to(1, PIXELS),
    "pretrain.mask_ratio": Range(0, 1, low_open=True, high_open=True),
    "pretrain.base_lr": positive(1e6),
    "pretrain.betas": UNIT_OPEN_TOP,
    "pretrain.crop_scale": UNIT_OPEN_BOTTOM,
    "pretrain.decoder_dim": up_to(1, 8192),
    "pretrain.decoder_depth": up_to(1, 64),
    "pretrain.decoder_heads": up_to(1, 64),
    "pretrain.preview": up_to(0, 64),
    "pretrain.minutes": positive(STEPS),
    "pretrain.temperature": positive(SHAPE),
    "pretrain.proj_hidden": up_to(1, BATCH),
    "pretrain.proj_dim": up_to(1, BATCH),
    "pretrain.jitter": UNIT,
    "pretrain.jitter_p": UNIT,
    "pretrain.grayscale_p": UNIT,
    "pretrain.low_res": up_to(1, PIXELS),
    "pretrain.low_res_fraction": UNIT,
    "pretrain.momentum": UNIT,
    "pretrain.pred_hidden": up_to(1, BATCH),
    "pretrain.local_views": up_to(0, 64),
    "pretrain.local_size": up_to(1, PIXELS),
    "pretrain.local_scale": UNIT_OPEN_BOTTOM,
}

# Keys with a closed set of values; the set replaces the type check (train.amp is checked by config.amp_mode).
CHOICES: dict[str, tuple[Any, ...]] = {
    "train.optimizer": ("sgd", "adam", "adamw"),
    "train.schedule": ("none", "cosine", "fixmatch_cosine", "step"),
    "train.on_nonfinite": ("stop", "skip"),
}

_DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


def bounds(key: str) -> Range | None:
    """The range of a dotted config key (`train.lr`, `pretrain.mask_ratio`), or None for a key without one."""
    return RANGES.get(key)


def option(
    default: Any = MISSING,
    allowed: Range | None = None,
    *,
    choices: tuple[Any, ...] | None = None,
    default_factory: Any = MISSING,
) -> Any:
    """A dataclass field that declares its range (`allowed`) or closed set of values (`choices`) beside it:
    how a method's options carry their own checks."""
    return field(default=default, default_factory=default_factory, metadata={"range": allowed, "choices": choices})


def declared_rules(cls: type, name: str) -> tuple[Range | None, tuple[Any, ...] | None]:
    """(range, choices) that field `name` of dataclass `cls` declares with `option`; a subclass that only
    changes a default (`tau: float = 0.7`) keeps the rules of the base class that declared the field."""
    for klass in cls.__mro__:
        spec = getattr(klass, "__dataclass_fields__", {}).get(name)
        if spec is not None and spec.metadata:
            return spec.metadata.get("range"), spec.metadata.get("choices")
    return None, None


def describe(hint: Any) -> str:
    """A type annotation in words: 'an integer', 'a number or null', 'a list of strings'."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(describe(a) for a in args)
    if origin in (list, tuple):
        return f"a list of {describe(args[0]).split(' ', 1)[-1]}s" if args else "a list"
    if origin is dict:
        return "a mapping"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string", type(None): "null"}.get(
        hint, getattr(hint, "__name__", str(hint))
    )


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
        try:
            number = float(value) if isinstance(value, int | float) and not isinstance(value, bool) else math.nan
        except OverflowError:  # an int beyond any float
            number = math.nan
        return (True, number) if math.isfinite(number) else (False, value)
    if hint is str:
        return isinstance(value, str), value
    return True, value


def check_value(
    key: str, value: Any, hint: Any, allowed: Range | None = None, choices: tuple[Any, ...] | None = None
) -> Any:
    """`value` checked against `hint` and its range or choices (given, else the tables' for `key`); returns
    it (ints widened to floats)."""
    choices = CHOICES.get(key) if choices is None else choices
    if choices is not None:
        if not any(value == c and type(value) is type(c) for c in choices):
            raise ConfigError(f"{key} must be one of {', '.join(str(c).lower() for c in choices)}; got {value!r}")
        return value
    ok, value = _conform(value, hint)
    if not ok:
        raise ConfigError(f"{key} must be {describe(hint)}; got {value!r}")
    allowed = bounds(key) if allowed is None else allowed
    numbers = value if isinstance(value, list | tuple) else [value]
    for number in numbers:
        problem = allowed.error(key, value, number) if allowed is not None and isinstance(number, int | float) else None
        if problem:
            raise ConfigError(problem)
    if key == "train.device" and not _DEVICE.fullmatch(value):
        raise ConfigError(f"train.device must be auto, cpu, cuda, cuda:N or mps; got {value!r}")
    if key == "model.arch":
        from .models.backbones import BACKBONES

        if value not in BACKBONES:
            raise ConfigError(f"model.arch must be one of {', '.join(BACKBONES)}; got {value!r}")
    return value
