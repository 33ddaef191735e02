"""Loading a backbone checkpoint, a local file or a built-in by name (nothing is ever downloaded), with a clear
key report."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..errors import CheckpointError, SemiferError
from ..tensorfile import CHECKSUMS, check_finite, load_safetensors, load_torch_file, verify_checksums
from ..weights import get_weights, is_builtin

_PREFIXES = ("module.", "backbone.", "encoder.", "model.", "base.", "features.")


@dataclass
class LoadReport:
    """Which checkpoint keys were used, missing, unexpected, skipped because of a shape mismatch, or
    resampled to the backbone's geometry (a ViT's position embedding and patch projection)."""

    path: str
    loaded: int
    missing: list[str]
    unexpected: list[str]
    mismatched: list[str]
    resampled: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"loaded {self.loaded} tensors from {self.path}"]
        for label, keys in (
            ("missing (kept at init)", self.missing),
            ("unexpected (ignored)", self.unexpected),
            ("shape mismatch (kept at init)", self.mismatched),
            ("resampled", self.resampled),
        ):
            if keys:
                shown = ", ".join(keys[:8]) + (f", ... (+{len(keys) - 8})" if len(keys) > 8 else "")
                lines.append(f"  {len(keys)} {label}: {shown}")
        return "\n".join(lines)


def weights_path(path_or_name: str | Path) -> Path:
    """The file a `model.pretrained` value names: a built-in's verified weights file, or the path itself."""
    if is_builtin(path_or_name):
        return get_weights(str(path_or_name)).weights_file
    return Path(path_or_name)


def weights_file(path: str | Path, what: str, folder_hint: str, missing_hint: str) -> Path:
    """The existing file a weights argument names (a built-in name or a path); a folder or a missing file is
    one SemiferError ending in the hint that fits the caller."""
    file = weights_path(path)
    if file.is_dir():
        raise SemiferError(f"{file}: a folder, not a {what}; {folder_hint}")
    if not file.is_file():
        raise SemiferError(f"{file}: {what} not found; {missing_hint}")
    return file


def backbone_file(path: str | Path) -> Path:
    """The backbone file `path` names (a built-in name or a file), refused with one clear error when it is
    missing or a folder: a run or export folder is a classifier, not a backbone file."""
    return weights_file(
        path,
        "backbone file",
        "give the backbone.safetensors a `semifer pretrain` run wrote (or a .pt/.safetensors backbone), not a run "
        "or export folder",
        "give runs/NAME/backbone.safetensors, a built-in name (`semifer weights`) or 'random'",
    )


def backbone_arch(path: str | Path) -> str | None:
    """The `arch` a `semifer pretrain` backbone file (or a built-in) records in its safetensors metadata, if any."""
    path = backbone_file(path)
    if path.suffix != ".safetensors":
        return None
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            arch = (handle.metadata() or {}).get("arch")
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(
            f"{path}: not a backbone file: the safetensors file is truncated or corrupt ({str(exc)[:200]})"
        ) from None
    return arch if isinstance(arch, str) else None


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a `.pth`/`.pt` (plain, or under 'state_dict'/'model') or `.safetensors` checkpoint, or of a
    built-in named by its name (`face-simclr-small`)."""
    path = weights_file(
        path,
        "weights file",
        "give the backbone or checkpoint file itself (runs/NAME/backbone.safetensors, runs/NAME/checkpoints/last.pt)",
        "give the local path of the file you downloaded, or a built-in name (`semifer weights` lists them)",
    )
    if path.suffix == ".safetensors":
        tensors = load_safetensors(path, "pretrained weights file")
    else:
        blob = load_torch_file(path, "pretrained weights file")
        if isinstance(blob, dict) and CHECKSUMS in blob:  # a semifer checkpoint (`model.init_from=RUN/...pt`)
            verify_checksums(blob, path)
        for key in ("state_dict", "model", "ema"):
            if isinstance(blob, dict) and isinstance(blob.get(key), dict):
                blob = blob[key]
                break
        if not isinstance(blob, dict):
            raise SemiferError(f"{path}: expected a state dict (or {{'state_dict': ...}}), found {type(blob).__name__}")
        tensors = {k: v for k, v in blob.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointError(f"{path}: the pretrained weights file holds no tensors; give a backbone or checkpoint")
    check_finite(tensors, path, "pretrained weights file")  # NaN weights would train a model that predicts nothing
    return tensors


_WRAPPERS = ("module.", "model.")


def _strip(key: str, prefixes: tuple[str, ...] = _PREFIXES) -> str:
    changed = True
    while changed:
        changed = False
        for prefix in prefixes:
            if key.startswith(prefix):
                key, changed = key[len(prefix) :], True
    return key


def _load_matching(
    module: nn.Module,
    source: dict[str, torch.Tensor],
    path: str | Path,
    strict: bool,
    resampled: list[str] | None = None,
) -> LoadReport:
    """Load the tensors of `source` whose names and shapes match `module`'s, and report the rest."""
    target = module.state_dict()
    usable, mismatched = {}, []
    for key, value in source.items():
        if key in target:
            if target[key].shape == value.shape:
                usable[key] = value
            else:
                mismatched.append(f"{key} {tuple(value.shape)}->{tuple(target[key].shape)}")
    report = LoadReport(
        str(path),
        len(usable),
        sorted(set(target) - set(usable) - {m.split()[0] for m in mismatched}),
        sorted(set(source) - set(target)),
        mismatched,
        resampled or [],
    )
    if strict and (report.missing or report.mismatched):
        raise SemiferError(f"strict load failed:\n{report}")
    if not usable:
        raise SemiferError(f"{path}: no tensor matches the {type(module).__name__}\n{report}")
    module.load_state_dict(usable, strict=False)
    return report


def load_backbone_weights(backbone: nn.Module, path: str | Path, strict: bool = False) -> LoadReport:
    """Load matching tensors into `backbone` by name, ignoring wrapper prefixes such as `module.`.

    Classifier weights of the source task (`fc.*`, `head.*`) and an MAE decoder (`decoder_*`, `mask_token`)
    are reported as unexpected, never loaded. A backbone with an `adapt_checkpoint(state)` hook first fits the
    checkpoint to its geometry (a ViT resamples `pos_embed` to its patch grid with timm's
    `resample_abs_pos_embed`, and the patch projection to its patch size). With `strict=True` anything
    missing or mismatched is an error (Ada-CM's code loads strictly).
    """
    source = {_strip(k): v for k, v in read_state_dict(path).items()}
    resampled: list[str] = []
    if hasattr(backbone, "adapt_checkpoint"):
        source, resampled = backbone.adapt_checkpoint(source)
    return _load_matching(backbone, source, path, strict, resampled)


def load_model_weights(model: nn.Module, path: str | Path, strict: bool = False) -> LoadReport:
    """Load a whole classifier, head included (`model.init_from`): a semifer run's checkpoint (its student
    weights, the `model` entry) or any state dict with the same names, less wrapper prefixes (`module.`)."""
    return _load_matching(model, {_strip(k, _WRAPPERS): v for k, v in read_state_dict(path).items()}, path, strict)
