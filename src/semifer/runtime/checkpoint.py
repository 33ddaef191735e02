"""Atomic checkpoints (temp file + rename) holding everything needed to resume or evaluate a run.

A checkpoint holds only tensors and plain Python data (the RNG states included), so it loads with
`torch.load(weights_only=True)` and a doctored file cannot run code (`semifer.tensorfile`).

Its `checksums` entry holds a sha256 of the content of each top-level part ('model', 'optimizer', 'config'...),
checked at load: bytes that changed after the write (a failing disk, a bad copy) would otherwise load as
silently altered weights. The checksums live in the file itself, so a checkpoint stays one file written by one
rename; checkpoints written before semifer kept them load unchecked. Weights that hold NaN or inf are refused
at load too: such a model predicts nothing but NaN, and resuming it trains nothing.
"""

from __future__ import annotations

import errno
import os
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import CheckpointError
from ..tensorfile import (
    CHECKSUMS,
    PARTIAL_SUFFIX,
    check_finite,
    content_checksums,
    load_torch_file,
    temp_beside,
    verify_checksums,
)

# The parts that hold weights a model is built from, checked for NaN and inf.
_WEIGHTS = {"model": "checkpoint's model", "ema": "checkpoint's EMA model"}


def atomic_write(path: Path, write: Callable[[Any], None], what: str = "checkpoint") -> Path:
    """Write through a temp file in the same folder, then rename: readers see the old file or the new one.

    `write` gets a binary file object. The temp file is removed on any failure (one a killed process left is
    removed by `remove_partial_writes` when the run starts again); a full disk is reported as such.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = temp_beside(path)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise CheckpointError(
                f"disk full while writing the {what} {path}; free space on that disk and "
                f"continue with --resume (the previous {what}, if any, is intact)"
            ) from None
        raise
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def remove_partial_writes(folder: Path) -> list[Path]:
    """Delete the temp files of writes that never finished (a process killed mid-checkpoint)."""
    stale = [p for p in folder.rglob(f".*{PARTIAL_SUFFIX}") if p.is_file()] if folder.is_dir() else []
    for p in stale:
        p.unlink()
    return stale


def save_checkpoint(state: dict[str, Any], path: Path, *copies: Path) -> Path:
    """Write `state` with its checksums to `path`, and to each of `copies` (e.g. `best.pt`), each atomically."""
    content = {k: v for k, v in state.items() if k != CHECKSUMS}
    sealed = {**content, CHECKSUMS: content_checksums(content)}
    for target in (path, *copies):
        atomic_write(Path(target), lambda fh: _torch_save(sealed, fh))
    return Path(path)


def _torch_save(obj: Any, fh: Any) -> None:
    """`torch.save`, raising the OSError (a full disk) that its zip writer wraps in a RuntimeError as itself,
    so `atomic_write` reports it as one line instead of a traceback."""
    try:
        torch.save(obj, fh)
    except RuntimeError as exc:
        cause = _os_error_in(exc)
        if cause is None:
            raise
        raise cause from None


def _os_error_in(exc: BaseException) -> OSError | None:
    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen:
        if isinstance(link, OSError):
            return link
        seen.add(id(link))
        link = link.__cause__ or link.__context__
    return None


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """A checkpoint's state, its checksums verified (when it has them) and its weights finite."""
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoints" / "last.pt"
    if not path.is_file():
        raise CheckpointError(f"{path}: no checkpoint here; give a run directory or its checkpoints/last.pt")
    state = load_torch_file(path)
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        raise CheckpointError(f"{path}: not a semifer checkpoint (expected keys 'model' and 'config')")
    verify_checksums(state, path)
    state.pop(CHECKSUMS, None)
    for part, what in _WEIGHTS.items():
        if isinstance(state.get(part), dict):
            check_finite(state[part], path, what)
    return state


def rng_state() -> dict[str, Any]:
    """Python, numpy and torch RNG states as tensors and lists (numpy's own state object would need pickle)."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": [version, list(internal), gauss],
        "numpy": {
            "kind": kind,
            "keys": keys.tolist(),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    if isinstance(n, dict):
        n = (n["kind"], np.array(n["keys"], dtype=np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    np.random.set_state(n)  # a tuple in checkpoints written before the dict form
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
