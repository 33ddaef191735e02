"""The run configuration: typed sections, YAML presets, dotted command-line overrides, clear errors."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import asdict, dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError


@dataclass
class DataConfig:
    """Where the faces come from and how the labeled/unlabeled split is made.

    `extra_ratio` is the fraction of every unlabeled batch drawn from the `extra_unlabeled` pools (the rest
    from the training pool's unlabeled part); None draws from the joined pools in proportion to their sizes.
    `val` (a split protocol such as `per_class:5`, or None) holds out labeled images of the pool, disjoint
    from the training labels and the unlabeled set, evaluated every epoch to choose `checkpoints/best.pt`.
    """

    train: str = "synthetic:?n=4000"
    test: str = "synthetic:?split=test&n=1400"
    extra_unlabeled: list[str] = field(default_factory=list)
    extra_ratio: float | None = None
    split: str = "per_class:20"
    split_file: str | None = None
    val: str | None = None
    include_labeled_in_unlabeled: bool = False
    img_size: int = 48
    crop_padding: int | None = None
    bgr_quirk: bool = False
    augment: bool = True
    workers: int = 2


@dataclass
class ModelConfig:
    """`dropout`, `l2norm`, `attention` and `feature_dropout` left at None take the method's head (Ada-CM:
    dropout 0.5 + unit feature; DTA+SNL: local attention + feature-map dropout 0.1)."""

    arch: str = "small_cnn"
    pretrained: str | None = None
    strict_load: bool = False
    dropout: float | None = None
    l2norm: bool | None = None
    attention: bool | None = None
    feature_dropout: float | None = None
    channels_last: bool = True


@dataclass
class TrainConfig:
    """Iteration-based schedule: `epochs` x `iters_per_epoch` steps of `batch_size` labeled images
    (and `unlabeled_ratio` x `batch_size` unlabeled ones when the method uses them)."""

    epochs: int = 10
    iters_per_epoch: int = 100
    batch_size: int = 64
    unlabeled_ratio: float = 1.0
    optimizer: str = "sgd"
    lr: float = 0.03
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    warmup_iters: int = 0
    milestones: list[int] = field(default_factory=list)
    gamma: float = 0.1
    ema: float = 0.999
    ema_weight_decay: float = 0.0
    amp: bool = True
    eval_every: int = 1
    eval_batch_size: int = 256
    device: str = "auto"
    sync_bn: bool = False


@dataclass
class Config:
    name: str = "run"
    out_dir: str = "runs"
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    method: dict[str, Any] = field(default_factory=lambda: {"name": "supervised"})
    pretrain: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def build_dataclass(cls: type, values: dict[str, Any], where: str = "") -> Any:
    """Instantiate a (nested) config dataclass from a dict, rejecting unknown keys by name."""
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(f"unknown config key {where}{unknown[0]}; valid keys: {', '.join(known)}")
    kwargs = {}
    for name, value in values.items():
        spec = known[name]
        default = spec.default_factory() if spec.default_factory is not dataclasses.MISSING else spec.default
        if dataclasses.is_dataclass(default):
            if not isinstance(value, dict):
                raise ConfigError(f"config section {where}{name} must be a mapping, got {value!r}")
            value = build_dataclass(type(default), value, f"{where}{name}.")
        kwargs[name] = value
    return cls(**kwargs)


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def preset_names() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files("semifer.configs").iterdir() if p.name.endswith(".yaml"))


def read_preset(name_or_path: str) -> dict[str, Any]:
    """A preset by name (`semifer/configs/NAME.yaml`) or a YAML file path; `base:` chains presets."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        text = path.read_text()
    else:
        preset = resources.files("semifer.configs").joinpath(f"{name_or_path}.yaml")
        if not preset.is_file():
            raise ConfigError(f"no config file or preset {name_or_path!r}; presets: {', '.join(preset_names())}")
        text = preset.read_text()
    blob = yaml.safe_load(text) or {}
    if not isinstance(blob, dict):
        raise ConfigError(f"{name_or_path}: a config file must hold a mapping")
    base = blob.pop("base", None)
    return _merge(read_preset(base), blob) if base else blob


_EXPONENT = re.compile(r"[-+]?\d+(\.\d*)?[eE][-+]?\d+")


def parse_override(text: str) -> dict[str, Any]:
    """`train.lr=0.01` -> {'train': {'lr': 0.01}} (the value is read as YAML)."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise ConfigError(f"override {text!r} is not KEY=VALUE (e.g. train.lr=0.01)")
    try:
        value = yaml.safe_load(raw) if raw else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {text!r}: the value is not valid YAML ({exc.problem}); "
                          "quote it, e.g. data.extra_unlabeled='[\"fer2013:f.csv?split=Training\"]'") from None
    if isinstance(value, str) and _EXPONENT.fullmatch(value):
        value = float(value)  # YAML 1.1 reads "6e-3" (no dot) as a string
    for part in reversed(key.split(".")):
        value = {part: value}
    return value  # type: ignore[return-value]


def load_config(preset: str | None = None, overrides: list[str] | None = None) -> Config:
    blob: dict[str, Any] = read_preset(preset) if preset else {}
    for item in overrides or []:
        blob = _merge(blob, parse_override(item))
    blob = _merge(asdict(Config()), blob)
    if "name" not in blob.get("method", {}):
        raise ConfigError("method.name is required (e.g. method.name=supervised)")
    return build_dataclass(Config, blob)


def save_config(cfg: Config, path: Path) -> None:
    path.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))

