"""Building and loading the expression classifier, in the manner of timm's `create_model` / `list_models`.

`create_model` builds a FERNet from a config or an architecture name, with the weights the config names;
`load_model` opens a trained one (a run directory, a checkpoint, an exported model or a built-in classifier's
name) with the `ModelInfo` a predictor needs; `list_models` names the architectures. Training, evaluation,
prediction, export, pretraining and the probes all get their networks here.
"""

from __future__ import annotations

import fnmatch
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from ..config import Config, build_dataclass
from ..errors import CheckpointError, ConfigError, SemiferError
from ..labels import BASIC7
from ..runtime import distributed as dist
from ..runtime.checkpoint import load_checkpoint
from ..tensorfile import check_finite, load_safetensors
from ..weights import CLASSIFIER, MODEL_JSON, get_weights, is_builtin, verify_files
from .backbones import BACKBONES
from .classifier import FERNet
from .model_info import HEAD_KEYS, ModelInfo
from .pretrained import backbone_arch, backbone_file, load_backbone_weights, load_model_weights, read_state_dict

WEIGHTS = "model.safetensors"
REEXPORT = "export the model again (or restore the file from a copy)"


def list_models(pattern: str = "*") -> list[str]:
    """The architectures `create_model` builds whose names match the shell-style `pattern` (`vit_*`)."""
    return [name for name in BACKBONES if fnmatch.fnmatchcase(name, pattern)]


def check_pretrained_arch(cfg: Config) -> None:
    """A built-in backbone named by `model.pretrained` fits one architecture; another one is a ConfigError."""
    name = cfg.model.pretrained
    if name and is_builtin(name) and (arch := get_weights(name).arch) != cfg.model.arch:
        raise ConfigError(
            f"model.pretrained={name} is a {arch} backbone but model.arch={cfg.model.arch}; set "
            f"model.pretrained=none to train {cfg.model.arch} from scratch, or give a backbone file "
            f"for {cfg.model.arch}"
        )


def _from_config(cfg: Config, num_classes: int, **kwargs: Any) -> FERNet:
    """A fresh FERNet of the config's `model` section at `data.img_size`, `kwargs` over its options."""
    img_size = kwargs.pop("img_size", cfg.data.img_size)
    model = replace(cfg.model, **kwargs)
    unset = [f"model.{key}" for key in HEAD_KEYS if getattr(model, key) is None]
    if unset:
        raise ConfigError(
            f"{', '.join(unset)} unset: a run fills a config's head from its method when it starts; set them "
            "to build the model from this config directly"
        )
    return FERNet(
        model.arch,
        num_classes,
        model.dropout,
        model.l2norm,
        model.attention,
        model.feature_dropout,
        img_size,
        model.patch_size,
        model.drop_path,
    )


def create_model(
    cfg_or_arch: Config | str,
    num_classes: int = len(BASIC7),
    pretrained: bool | str | Path | None = None,
    run_dir: Path | None = None,
    verbose: bool = False,
    **kwargs: Any,
) -> FERNet:
    """A FERNet from a config (its `model` section at `data.img_size`) or an architecture name (`list_models`).

    `pretrained` says where the weights come from: None or True (a config's own: the backbone of `model.pretrained`,
    then the whole net of `model.init_from`; nothing for an arch name), False (none: freshly initialised), or a
    backbone file or built-in backbone's name (in place of `model.pretrained`). Each load's key report is
    printed with `verbose` and kept in `run_dir` (`pretrained_load.txt`, `init_load.txt`), by the main process.
    `kwargs` are FERNet's options (`dropout`, `l2norm`, `attention`, `feature_dropout`, `img_size`,
    `patch_size`, `drop_path`), over a config's. A config's head options must be set: a training run fills
    them from its method (the models know nothing of methods).
    """
    if isinstance(cfg_or_arch, Config):
        cfg = cfg_or_arch
        if pretrained is None or pretrained is True:
            check_pretrained_arch(cfg)
        model = _from_config(cfg, num_classes, **kwargs)
        backbone, init, strict = cfg.model.pretrained, cfg.model.init_from, cfg.model.strict_load
    else:
        model = FERNet(cfg_or_arch, num_classes, **kwargs)
        backbone, init, strict = None, None, False
    if pretrained is False:
        backbone = init = None
    elif pretrained is not None and pretrained is not True:
        backbone = pretrained
    loads = [
        (backbone, model.backbone, load_backbone_weights, "pretrained_load.txt"),
        (init, model, load_model_weights, "init_load.txt"),
    ]
    for path, target, load, record in loads:
        if not path:
            continue
        report = load(target, path, strict=strict)
        if dist.is_main():
            if verbose:
                print(report)
            if run_dir is not None:
                (run_dir / record).write_text(str(report) + "\n")
    return model


def frozen_model(path: str | Path | None, arch: str | None = None) -> FERNet:
    """A FERNet whose plain head is never used: the backbone of `path` (or a random one when None), of the
    architecture its file records or `arch`."""
    if path is not None:
        backbone_file(path)
    arch = arch or (backbone_arch(path) if path else None)
    if arch is None:
        if path is not None:
            read_state_dict(path)  # a file that is no model at all says so rather than asking for --arch
        raise SemiferError(f"{path}: the file does not record its architecture; give it with --arch")
    if arch not in BACKBONES:
        raise SemiferError(f"unknown arch {arch!r}; choose one of {', '.join(BACKBONES)}")
    return create_model(arch, pretrained=path)


def model_path(path: str | Path | None) -> Path:
    """The path a model argument names: the built-in classifier for None, a built-in's verified folder for
    its name, else the path itself."""
    if path is None:
        path = CLASSIFIER
    if is_builtin(path):
        return get_weights(str(path), kind="classifier").folder
    return Path(path)


def export_folder(path: Path) -> Path | None:
    """The export folder `path` names (the folder itself, or the folder of its .safetensors/.onnx file), if any."""
    if path.is_dir():
        folder = path
    elif path.suffix in (".safetensors", ".onnx"):
        folder = path.parent
    else:
        return None
    return folder if (folder / MODEL_JSON).is_file() else None


def check_export_hashes(folder: Path, info: ModelInfo, weights: Path | None = None) -> None:
    """An export that lists its files' sha256 in model.json has them checked before any is read; the weight
    file about to be read must be one of them (an unlisted one is left from another export of the folder and
    may belong to another model)."""
    if not info.files:
        return
    if weights is not None and weights.name not in info.files:
        raise CheckpointError(
            f'{weights}: not listed under "files" in {folder / MODEL_JSON}, so it cannot be '
            f"checked and may belong to another model; {REEXPORT}"
        )
    verify_files(folder, info.files, REEXPORT)


def _check_head(weights: Path, info: ModelInfo, tensors: dict[str, torch.Tensor]) -> None:
    """The head's output size must be the number of classes model.json names (else the probability columns
    would be misnamed, or one would be missing)."""
    head = tensors.get("head.weight")
    if head is not None and (head.ndim != 2 or head.shape[0] != len(info.classes)):
        raise CheckpointError(
            f"{weights}: the head has {head.shape[0] if head.ndim else 0} outputs but "
            f'{weights.parent / MODEL_JSON} lists {len(info.classes)} classes ("classes"); '
            f"{REEXPORT}"
        )


def _run_model(path: Path, use_ema: bool, device: str) -> tuple[FERNet, ModelInfo]:
    """The model of a run directory or checkpoint on `device`; a checkpoint whose tensors do not rebuild its
    model (damaged, or edited) is one CheckpointError."""
    try:
        state = load_checkpoint(path)
        cfg = build_dataclass(Config, state["config"])
        classes = list(state["classes"])
        model = create_model(cfg, len(classes), pretrained=False)
        model.load_state_dict(state["ema"] if use_ema and state.get("ema") else state["model"])
        model = model.to(dist.local_device(device))
    except SemiferError:
        raise
    except (RuntimeError, KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(
            f"{path}: the checkpoint does not rebuild its model ({type(exc).__name__}: "
            f"{str(exc)[:300]}); use an earlier copy or train again"
        ) from None
    run_dir = path if path.is_dir() else path.parent.parent if path.parent.name == "checkpoints" else None
    return model, ModelInfo.from_run(cfg, classes, run_dir)


def _exported_model(path: Path, folder: Path, device: str) -> tuple[FERNet, ModelInfo]:
    """The model of an export folder (or its .safetensors file) on `device`, its files checked against
    model.json."""
    info = ModelInfo.load(folder / MODEL_JSON)
    weights = path if path.suffix == ".safetensors" else folder / WEIGHTS
    if not weights.is_file():
        raise SemiferError(f"{folder}: no {WEIGHTS} here; export with --format safetensors for PyTorch use")
    check_export_hashes(folder, info, weights)
    tensors = load_safetensors(weights, "exported weights file")
    check_finite(tensors, weights, "exported weights file")
    _check_head(weights, info, tensors)
    model = create_model(
        info.arch, len(info.classes), img_size=info.img_size, **{k: v for k, v in info.head.items() if v is not None}
    )
    try:
        model.load_state_dict(tensors)
    except (RuntimeError, ValueError, TypeError) as exc:
        raise CheckpointError(
            f"{weights}: the weights do not fit the model in {folder / MODEL_JSON} ({str(exc)[:300]}); {REEXPORT}"
        ) from None
    return model.to(dist.local_device(device)), info


def load_model(path: str | Path | None = None, use_ema: bool = True, device: str = "auto") -> tuple[FERNet, ModelInfo]:
    """A trained model in eval mode on `device`, and the `ModelInfo` that says how to feed it and name its
    outputs: from a run directory or checkpoint (its EMA weights unless `use_ema=False`), an exported model
    (its folder or .safetensors file) or a built-in classifier's name (None: the built-in classifier)."""
    path = model_path(path)
    if not path.exists():
        raise SemiferError(f"{path}: no such model; give a run directory, a checkpoint or an exported model")
    if path.suffix == ".onnx":
        raise SemiferError(
            f"{path}: an ONNX graph cannot be opened as a PyTorch model; use the run or its safetensors export"
        )
    folder = export_folder(path)
    if folder is None:
        if path.suffix == ".safetensors":
            raise SemiferError(
                f"{path}: safetensors weights need the {MODEL_JSON} of their export beside them "
                "(architecture, classes); give the folder `semifer export` wrote (a backbone from "
                "`semifer pretrain` is not a classifier: train from it with model.pretrained=FILE)"
            )
        model, info = _run_model(path, use_ema, device)
    else:
        model, info = _exported_model(path, folder, device)
    return model.eval(), info
