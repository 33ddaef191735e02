"""The run configuration: typed sections, YAML presets, dotted command-line overrides, clear errors."""

from __future__ import annotations

import dataclasses
import re
import typing
from dataclasses import asdict, dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from .config_checks import check_value, declared_rules
from .errors import ConfigError


@dataclass
class DataConfig:
    """Where the faces come from and how the labeled/unlabeled split is made.

    Relative dataset paths are found in the current folder or else under `root` (None: $SEMIFER_DATA).

    `extra_ratio` is the fraction of every unlabeled batch drawn from the `extra_unlabeled` pools (the rest
    from the training pool's unlabeled part); None draws from the joined pools in proportion to their sizes.
    `balanced_labeled` draws labeled batches class-balanced; None takes the method's choice (DTA+SNL: on).
    `workers`: loader processes per stream; None (null) = `data.loaders.auto_workers` (0 on 2 cores).
    `val` (a split protocol such as `per_class:5`, or None) holds out labeled images of the pool, disjoint
    from the training labels and the unlabeled set, evaluated every epoch to choose `checkpoints/best.pt`.
    """

    root: str | None = None
    train: str = "synthetic:?n=4000"
    test: str | None = "synthetic:?split=test&n=1400"
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
    workers: int | None = None
    balanced_labeled: bool | None = None


@dataclass
class ModelConfig:
    """`dropout`, `l2norm`, `attention` and `feature_dropout` left at None take the method's head (Ada-CM:
    dropout 0.5 + unit feature; DTA+SNL: local attention + feature-map dropout 0.1). `pretrained` loads a
    backbone: a file, or a built-in by name (`face-simclr-small`, which the presets that train the small CNN
    on real faces start from; `none` = a random initialisation); `init_from` loads a whole FERNet, head
    included (e.g. a run's `checkpoints/last.pt`, to
    continue Bridging stage 1 into stage 2).

    ViT archs only (`vit_tiny|vit_small|vit_base`; the input size is `data.img_size`): `patch_size` (None:
    16 px from 128 px input, 6 px below) and `drop_path`, the stochastic depth rate (None: MAE's fine-tuning
    0.1; MAE pretraining uses none)."""

    arch: str = "small_cnn"
    patch_size: int | None = None
    drop_path: float | None = None
    pretrained: str | None = None
    init_from: str | None = None
    strict_load: bool = False
    dropout: float | None = None
    l2norm: bool | None = None
    attention: bool | None = None
    feature_dropout: float | None = None
    channels_last: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.pretrained, str) and self.pretrained.strip().lower() in ("none", ""):
            self.pretrained = None  # `model.pretrained=none`: train from a random initialisation


AMP_MODES = ("auto", "bf16", "fp16", "off")


def amp_mode(value: str | bool) -> str:
    """`train.amp` as one of AMP_MODES; the boolean of older configs reads true = auto, false = off."""
    if isinstance(value, bool):
        return "auto" if value else "off"
    if isinstance(value, str) and value.lower() in AMP_MODES:
        return value.lower()
    raise ConfigError(f"train.amp must be one of {'|'.join(AMP_MODES)} (true = auto, false = off), got {value!r}")


@dataclass
class TrainConfig:
    """Iteration-based schedule: `epochs` x `iters_per_epoch` steps of `batch_size` labeled images
    (and `unlabeled_ratio` x `batch_size` unlabeled ones when the method uses them; None takes the
    method's mu: 7 for FixMatch and FlexMatch, as their papers, 1 otherwise).

    `layer_decay` < 1 is MAE's layer-wise lr decay (layer i of L gets lr * layer_decay^(L - i), the head 1):
    a ViT's layers are its blocks, a CNN's its stages. 1.0 = off.

    `amp`: the step's precision, auto|bf16|fp16|off (the rule is in `runtime/precision.py`); `compile`:
    `torch.compile` the network for training (pays only in long runs: see BENCHMARKS.md).

    `on_nonfinite`: `stop` ends the run at the first NaN/inf loss (naming the step and the last good
    checkpoint); `skip` drops that batch's update instead, at the cost of one host sync per step.

    `minutes` bounds the run's wall-clock time (`engine.time_budget`): the lr decay then follows the clock
    when it is further on than the steps, and the run ends when either is spent (pretraining's
    `pretrain.minutes`, the same for `semifer pretrain`).
    """

    epochs: int = 10
    iters_per_epoch: int = 100
    batch_size: int = 64
    unlabeled_ratio: float | None = None
    optimizer: str = "sgd"
    lr: float = 0.03
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    layer_decay: float = 1.0
    schedule: str = "cosine"
    warmup_iters: int = 0
    milestones: list[int] = field(default_factory=list)
    gamma: float = 0.1
    ema: float = 0.999
    ema_weight_decay: float = 0.0
    amp: str | bool = "auto"
    compile: bool = False
    eval_every: int = 1
    eval_batch_size: int = 256
    device: str = "auto"
    sync_bn: bool = False
    on_nonfinite: str = "stop"
    minutes: float | None = None

    def __post_init__(self) -> None:
        self.amp = amp_mode(self.amp)


@dataclass
class LogConfig:
    """Where the per-epoch scalars go besides metrics.jsonl: `tensorboard` adds RUN/tensorboard/ event files
    (needs the `tensorboard` extra)."""

    tensorboard: bool = False


@dataclass
class Config:
    name: str = "run"
    out_dir: str = "runs"
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    log: LogConfig = field(default_factory=LogConfig)
    method: dict[str, Any] = field(default_factory=lambda: {"name": "supervised"})
    pretrain: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def build_dataclass(cls: type, values: dict[str, Any], where: str = "") -> Any:
    """Instantiate a (nested) config dataclass from a dict, rejecting unknown keys and values of the wrong
    type or range by name (`config_checks`: the tables, or the rules a field declares with `option`)."""
    known = {f.name: f for f in fields(cls)}
    hints = typing.get_type_hints(cls)
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
        else:
            value = check_value(f"{where}{name}", value, hints[name], *declared_rules(cls, name))
        kwargs[name] = value
    return cls(**kwargs)


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def preset_names() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files("semifer.configs").iterdir() if p.name.endswith(".yaml"))


def preset_description(name: str) -> str:
    """A preset's first comment line: what it is, in one line."""
    text = resources.files("semifer.configs").joinpath(f"{name}.yaml").read_text()
    first = next((line for line in text.splitlines() if line.strip()), "")
    return first.lstrip("#").strip() if first.startswith("#") else ""


def read_preset(name_or_path: str, _chain: tuple[str, ...] = ()) -> dict[str, Any]:
    """A preset by name (`semifer/configs/NAME.yaml`) or a YAML file path; `base:` chains presets."""
    if name_or_path in _chain:
        raise ConfigError(f"{_chain[0]}: the base: chain loops ({' -> '.join([*_chain, name_or_path])})")
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        text = path.read_text()
    else:
        preset = resources.files("semifer.configs").joinpath(f"{name_or_path}.yaml")
        if not preset.is_file():
            raise ConfigError(f"no config file or preset {name_or_path!r}; presets: {', '.join(preset_names())}")
        path, text = Path(str(preset)), preset.read_text()
    try:
        blob = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}, line {mark.line + 1}" if mark else str(path)
        raise ConfigError(f"{where}: not valid YAML ({_yaml_problem(exc)})") from None
    if not isinstance(blob, dict):
        raise ConfigError(f"{path}: a config file must hold a mapping")
    base = blob.pop("base", None)
    if base is not None and not isinstance(base, str):
        raise ConfigError(f"{path}: base must name a preset or a YAML file; got {base!r}")
    return _merge(read_preset(base, (*_chain, name_or_path)), blob) if base else blob


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """What PyYAML objects to, in one line (reader errors have no `problem`)."""
    return str(getattr(exc, "problem", None) or exc).splitlines()[0]


_EXPONENT = re.compile(r"[-+]?\d+(\.\d*)?[eE][-+]?\d+")


def parse_override(text: str) -> dict[str, Any]:
    """`train.lr=0.01` -> {'train': {'lr': 0.01}} (the value is read as YAML)."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise ConfigError(f"override {text!r} is not KEY=VALUE (e.g. train.lr=0.01)")
    try:
        value = yaml.safe_load(raw) if raw else None
    except yaml.YAMLError as exc:
        raise ConfigError(
            f"override {text!r}: the value is not valid YAML ({_yaml_problem(exc)}); "
            "quote it, e.g. data.extra_unlabeled='[\"fer2013:f.csv?split=Training\"]'"
        ) from None
    if isinstance(value, str) and _EXPONENT.fullmatch(value):
        value = float(value)  # YAML 1.1 reads "6e-3" (no dot) as a string
    return nest(key, value)


def nest(key: str, value: Any) -> dict[str, Any]:
    """`('train.lr', 0.01)` -> {'train': {'lr': 0.01}}."""
    for part in reversed(key.split(".")):
        value = {part: value}
    return value


def load_config(
    preset: str | dict[str, Any] | None = None, overrides: list[str] | None = None, values: dict[str, Any] | None = None
) -> Config:
    """A preset (name, YAML file or a config mapping) with `KEY=VALUE` overrides, then dotted-key `values`
    given as Python objects (the Python API's `semifer.train(preset, **values)`). The `method:` section's
    options belong to the method: `semifer.methods.resolve_method` checks them, which a run does first."""
    blob: dict[str, Any] = read_preset(preset) if isinstance(preset, str) else dict(preset or {})
    for item in overrides or []:
        blob = _merge(blob, parse_override(item))
    for key, value in (values or {}).items():
        blob = _merge(blob, nest(key, value))
    blob = _merge(asdict(Config()), blob)
    if not isinstance(blob["method"], dict):
        raise ConfigError(f"method must be a section of settings (e.g. method.name=supervised), not {blob['method']!r}")
    if "name" not in blob["method"]:
        raise ConfigError("method.name is required (e.g. method.name=supervised)")
    return build_dataclass(Config, blob)


def save_config(cfg: Config, path: Path) -> None:
    path.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
