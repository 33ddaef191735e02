"""The built-in weights shipped inside the package, looked up by name; nothing is ever downloaded.

Each built-in is a folder beside this file holding `model.json` and its safetensors file. `model.json`
describes it under `builtin` (name, kind, data, method, accuracy, licence, the command that rebuilds it) and
lists the sha256 of every file under `files`; a file whose hash does not match is refused, so a damaged
install fails with one clear error instead of predicting with altered weights.

- `face-simclr-small`: the face representation, a small CNN backbone pretrained by SimCLR on FER2013 faces
  (labels unused); presets that train the small CNN on real faces start from it.
- `fer2013-small`: a ready expression classifier (7 FER2013 classes) on that backbone, fine-tuned on FER2013
  Training; `semifer predict PHOTO` and `semifer.load()` use it when no model is named.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import CheckpointError, SemiferError

ROOT = Path(__file__).resolve().parent
MODEL_JSON = "model.json"
REPRESENTATION = "face-simclr-small"
CLASSIFIER = "fer2013-small"
KINDS = ("representation", "classifier")
_REINSTALL = "reinstall semifer (pip install --force-reinstall semifer) to restore the shipped file"


def sha256_file(path: Path) -> str:
    """The hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def verify_files(folder: Path, files: dict[str, str], fix: str) -> None:
    """Check every `name: sha256` of `files` in `folder`; a missing or altered file is one CheckpointError."""
    for name, expected in files.items():
        path = folder / name
        if not path.is_file():
            raise CheckpointError(f"{path}: missing; {fix}")
        if sha256_file(path) != expected:
            raise CheckpointError(
                f"{path}: its sha256 does not match the one in {folder / MODEL_JSON}, so the "
                f"file was altered or damaged; {fix}"
            )


@dataclass(frozen=True)
class BuiltinWeights:
    """One built-in: its folder and its `model.json` contents."""

    name: str
    folder: Path
    description: dict[str, Any]

    @property
    def card(self) -> dict[str, Any]:
        """The `builtin` section: kind, data, method, accuracy, licence, command."""
        return self.description.get("builtin", {})

    @property
    def kind(self) -> str:
        return self.card.get("kind", "")

    @property
    def arch(self) -> str:
        return self.description.get("arch", "")

    @property
    def files(self) -> dict[str, str]:
        return dict(self.description.get("files", {}))

    @property
    def weights_file(self) -> Path:
        """The safetensors file of the weights (the one file listed that ends in .safetensors)."""
        return self.folder / next(n for n in self.files if n.endswith(".safetensors"))

    def size_bytes(self) -> int:
        return sum((self.folder / n).stat().st_size for n in self.files if (self.folder / n).is_file())

    def verify(self) -> BuiltinWeights:
        verify_files(self.folder, self.files, _REINSTALL)
        return self


def _read(folder: Path) -> BuiltinWeights:
    path = folder / MODEL_JSON
    try:
        blob = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: cannot read the built-in model description ({exc}); {_REINSTALL}") from None
    if not isinstance(blob, dict) or not isinstance(blob.get("files"), dict) or not blob["files"]:
        raise CheckpointError(f"{path}: no file hashes in the built-in model description; {_REINSTALL}")
    return BuiltinWeights(folder.name, folder, blob)


def builtin_names() -> list[str]:
    return sorted(p.name for p in ROOT.iterdir() if (p / MODEL_JSON).is_file())


def list_weights() -> list[BuiltinWeights]:
    """Every built-in, read from its model.json (not verified: `get_weights` verifies)."""
    return [_read(ROOT / name) for name in builtin_names()]


def is_builtin(name: str | Path) -> bool:
    """Whether `name` names a built-in (a bare name, not a path that exists)."""
    text = str(name)
    return "/" not in text and "\\" not in text and text in builtin_names() and not Path(text).exists()


def get_weights(name: str, kind: str | None = None) -> BuiltinWeights:
    """The built-in `name`, its files verified against their sha256; `kind` checks it is of that kind."""
    if name not in builtin_names():
        raise SemiferError(
            f"no built-in weights named {name!r}; the built-ins are {', '.join(builtin_names())} "
            "(`semifer weights` lists them)"
        )
    weights = _read(ROOT / name)
    if kind is not None and weights.kind != kind:
        others = [w.name for w in list_weights() if w.kind == kind]
        raise SemiferError(
            f"{name} is a built-in {weights.kind}, not a {kind}; the built-in {kind}s are {', '.join(others) or 'none'}"
        )
    return weights.verify()


__all__ = [
    "CLASSIFIER",
    "KINDS",
    "MODEL_JSON",
    "REPRESENTATION",
    "BuiltinWeights",
    "builtin_names",
    "get_weights",
    "is_builtin",
    "list_weights",
    "sha256_file",
    "verify_files",
]
