"""Reading and writing model files safely: only tensors and plain data, never pickled code, never half a file.

A full unpickling `torch.load` runs whatever a pickle names, so a doctored checkpoint or a downloaded
backbone could execute a shell command while printing normal results. Every model file semifer reads goes
through here: safetensors, or `torch.load(weights_only=True)`, with errors that say which of "needs code",
"corrupt or truncated", "empty" and "not a model file" went wrong; `check_finite` refuses weights holding
NaN or inf, which would otherwise predict one class for every face. `write_atomically` writes a file that
readers see whole or not at all, as exports need.
"""

from __future__ import annotations

import errno
import hashlib
import os
import pickle
import re
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import CheckpointError, SemiferError

_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")
_RESAVE = (
    "If you trust its source, load it once in your own session and save only its state dict "
    "(torch.save(model.state_dict(), OUT) or safetensors' save_file)"
)
_TORCH_MAGIC = (b"PK\x03\x04", b"\x80")  # a zip archive (torch.save since 1.6), a pickle (the legacy format)
PARTIAL_SUFFIX = ".partial"


def _require_file(path: Path, what: str) -> None:
    if not path.is_file():
        raise CheckpointError(f"{path}: {what} not found")
    if path.stat().st_size == 0:
        raise CheckpointError(
            f"{path}: the {what} is empty (0 bytes), so its write never finished; "
            "use an earlier copy or start the run again"
        )


def _not_torch_file(path: Path, what: str) -> CheckpointError | None:
    """The error for a file that cannot be a `torch.save` file at all (text, a CSV, an image), from its first
    bytes: the unpickler would otherwise fail on it with an unrelated KeyError or IndexError."""
    try:
        with path.open("rb") as handle:
            head = handle.read(64)
    except OSError as exc:
        return CheckpointError(f"{path}: cannot read the {what} ({exc.strerror or exc})")
    if head.startswith(_TORCH_MAGIC):
        return None
    if head[8:9] == b"{":
        kind = "a safetensors file, not a PyTorch file"
    else:
        try:
            text = head.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        if text is None or "\x00" in text:
            kind = "not a PyTorch file"
        else:
            kind = f"text (it starts {text.splitlines()[0][:40]!r})" if text.strip() else "text"
    return CheckpointError(
        f"{path}: not a model file: the {what} is {kind}, so it is corrupt or the wrong file; "
        "give a run directory, a checkpoint (.pt), a backbone (.safetensors) or an export"
    )


def _numpy_rng_globals() -> list[Any]:
    """What a numpy RNG state needs (checkpoints written before RNG states were saved as lists hold one):
    uint32 arrays, which carry data and run no code."""
    core = getattr(np, "_core", None) or np.core
    return [core.multiarray._reconstruct, np.ndarray, np.dtype, type(np.dtype(np.uint32))]


def load_torch_file(path: str | Path, what: str = "checkpoint") -> Any:
    """The contents of a `torch.save` file, refusing anything that needs pickled code to load."""
    path = Path(path)
    _require_file(path, what)
    if (wrong := _not_torch_file(path, what)) is not None:
        raise wrong
    try:
        with torch.serialization.safe_globals(_numpy_rng_globals()), warnings.catch_warnings():
            # a damaged legacy file names a pickle protocol of its own; the error below says what is wrong
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        named = _GLOBAL.search(str(exc))
        if named:
            raise CheckpointError(
                f"{path}: refused to load: the {what} needs pickled Python code ({named.group(1)}) and "
                f"loading it could run anything; semifer loads only tensors and plain data. {_RESAVE}"
            ) from None
        raise CheckpointError(f"{path}: the {what} is corrupt or not a PyTorch file") from None
    except Exception as exc:  # a damaged file fails with any of EOFError, KeyError, struct.error, zip errors...
        raise CheckpointError(
            f"{path}: the {what} is truncated or corrupt ({type(exc).__name__}: {exc}); "
            "use an earlier copy or start the run again"
        ) from None


def load_safetensors(path: str | Path, what: str = "weights file") -> dict[str, torch.Tensor]:
    """The tensors of a `.safetensors` file, with a clear error when it is truncated or corrupt."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    _require_file(path, what)
    try:
        return load_file(str(path))
    except (SafetensorError, ValueError, TypeError, RuntimeError) as exc:
        raise CheckpointError(
            f"{path}: the {what} is truncated or corrupt, or not a safetensors file ({str(exc)[:200]})"
        ) from None
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read the {what} ({exc.strerror or exc})") from None


def check_finite(tensors: Mapping[str, Any], path: str | Path, what: str = "weights file") -> None:
    """Refuse weights with a NaN or inf in any floating-point tensor: such a model answers one class (or NaN
    probabilities) for every face, silently; the error names the file and the first bad tensor."""
    for name, value in tensors.items():
        if isinstance(value, torch.Tensor):
            if not (value.is_floating_point() or value.is_complex()):
                continue
            try:
                bad = value.numel() - int(torch.isfinite(value).sum())
            except RuntimeError:  # float8 types have no isfinite kernel
                bad = value.numel() - int(torch.isfinite(value.float()).sum())
        else:
            array = np.asarray(value)
            if not np.issubdtype(array.dtype, np.inexact):
                continue
            bad = array.size - int(np.isfinite(array).sum())
        if bad:
            raise CheckpointError(
                f"{path}: the {what} holds {bad} NaN or inf value(s) in tensor {name!r} (the first "
                "such tensor); it is damaged or comes from a diverged training, so it is refused"
            )


def temp_beside(path: Path) -> tuple[int, str]:
    """A new temp file in `path`'s folder, named after it, with the permissions a plain `open` would give
    (mkstemp's 0600 would leave an exported model or a run unreadable to the other users of a machine)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=PARTIAL_SUFFIX)
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(fd, 0o666 & ~umask)
    return fd, tmp


def write_atomically(path: Path, data: bytes | str, what: str = "file") -> Path:
    """Write `data` through a temp file in the same folder, then rename: readers see the old file or the whole
    new one, never half of it. On any failure the temp file is removed and a SemiferError says what happened
    (a full disk, a folder that cannot be written)."""
    blob = data.encode() if isinstance(data, str) else data
    tmp: str | None = None
    try:
        fd, tmp = temp_beside(path)
        with os.fdopen(fd, "wb") as handle:
            handle.write(blob)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise write_error(path, exc, what) from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.remove(tmp)
    return path


def write_error(path: Path, exc: OSError, what: str) -> SemiferError:
    """One clear error for a write that failed: a full disk, or a folder that is not writable or not a folder."""
    if exc.errno == errno.ENOSPC:
        return SemiferError(
            f"{path}: disk full while writing the {what}; free space on that disk and run the "
            "command again (nothing was left half-written)"
        )
    return SemiferError(f"{path}: cannot write the {what} ({exc.strerror or exc}); choose a folder you can write to")


CHECKSUMS = "checksums"
# Parts whose plain data is left out of their checksum (their tensors are in): the Python and numpy RNG states
# decide only which random draws follow a resume, never a weight or a result, and checkpoints converted from
# older versions hold them in another form.
_TENSORS_ONLY = frozenset({"rng"})


def content_checksums(state: dict[str, Any]) -> dict[str, str]:
    """sha256 of each top-level part's content: tensors by dtype, shape and bytes, plain data by value."""
    sums = {}
    for key, value in state.items():
        if key == CHECKSUMS:
            continue
        digest = hashlib.sha256()
        _feed(digest, value, plain=key not in _TENSORS_ONLY)
        sums[str(key)] = digest.hexdigest()
    return sums


def _feed(digest: Any, value: Any, plain: bool, where: str = "") -> None:
    """Add `value` to `digest` in a form that a save and load round trip keeps (dict order aside); without
    `plain`, only its tensors and where they sit."""
    if isinstance(value, torch.Tensor):
        flat = value.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{where}:T{flat.dtype}{tuple(value.shape)}\0".encode())
        digest.update(flat.view(torch.uint8).numpy())
    elif isinstance(value, dict | list | tuple):
        items = sorted(value.items(), key=lambda kv: repr(kv[0])) if isinstance(value, dict) else enumerate(value)
        if plain:
            digest.update(f"{where}:{'{' if isinstance(value, dict) else '['}\0".encode())
        for key, item in items:
            _feed(digest, item, plain, f"{where}/{key!r}")
    elif not plain:
        return
    elif isinstance(value, np.ndarray):
        digest.update(f"{where}:A{value.dtype}{value.shape}\0".encode())
        digest.update(np.ascontiguousarray(value).tobytes())
    else:
        digest.update(f"{where}:{type(value).__name__}:{value!r}\0".encode())


def verify_checksums(state: dict[str, Any], path: Path) -> None:
    """Refuse a checkpoint whose content no longer matches the checksums written with it."""
    recorded = state.get(CHECKSUMS)
    if recorded is None:
        return  # written before semifer kept checksums
    now = content_checksums(state)
    changed = sorted(
        k
        for k in set(now) | set(recorded if isinstance(recorded, dict) else {})
        if not isinstance(recorded, dict) or recorded.get(k) != now.get(k)
    )
    if changed:
        parts = ", ".join(repr(k) for k in changed[:3]) + (f" and {len(changed) - 3} more" if len(changed) > 3 else "")
        raise CheckpointError(
            f"{path}: checksum mismatch in {parts}: the file changed after semifer wrote it (a "
            "failing disk or a bad copy), so its contents cannot be trusted; restore it from a "
            "backup or copy it again, or train the run again (--overwrite)"
        )
