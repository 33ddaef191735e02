"""Reading model files safely: only tensors and plain data, never pickled code.

A full unpickling `torch.load` runs whatever a pickle names, so a doctored checkpoint or a downloaded
backbone could execute a shell command while printing normal results. Every model file semifer reads goes
through here: safetensors, or `torch.load(weights_only=True)`, with errors that say which of "needs code",
"corrupt or truncated" and "empty" went wrong.
"""

from __future__ import annotations

import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import CheckpointError

_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")
_RESAVE = ("If you trust its source, load it once in your own session and save only its state dict "
           "(torch.save(model.state_dict(), OUT) or safetensors' save_file)")


def _require_file(path: Path, what: str) -> None:
    if not path.is_file():
        raise CheckpointError(f"{path}: {what} not found")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: the {what} is empty (0 bytes), so its write never finished; "
                              "use an earlier copy or start the run again")


def _numpy_rng_globals() -> list[Any]:
    """What a numpy RNG state needs (checkpoints written before RNG states were saved as lists hold one):
    uint32 arrays, which carry data and run no code."""
    core = getattr(np, "_core", None) or np.core
    return [core.multiarray._reconstruct, np.ndarray, np.dtype, type(np.dtype(np.uint32))]


def load_torch_file(path: str | Path, what: str = "checkpoint") -> Any:
    """The contents of a `torch.save` file, refusing anything that needs pickled code to load."""
    path = Path(path)
    _require_file(path, what)
    try:
        with torch.serialization.safe_globals(_numpy_rng_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        named = _GLOBAL.search(str(exc))
        if named:
            raise CheckpointError(
                f"{path}: refused to load: the {what} needs pickled Python code ({named.group(1)}) and "
                f"loading it could run anything; semifer loads only tensors and plain data. {_RESAVE}") from None
        raise CheckpointError(f"{path}: the {what} is corrupt or not a PyTorch file") from None
    except (EOFError, OSError, RuntimeError, zipfile.BadZipFile, ValueError) as exc:
        raise CheckpointError(f"{path}: the {what} is truncated or corrupt ({type(exc).__name__}: {exc}); "
                              "use an earlier copy or start the run again") from None


def load_safetensors(path: str | Path, what: str = "weights file") -> dict[str, torch.Tensor]:
    """The tensors of a `.safetensors` file, with a clear error when it is truncated or corrupt."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    _require_file(path, what)
    try:
        return load_file(str(path))
    except SafetensorError as exc:
        raise CheckpointError(f"{path}: the {what} is truncated or corrupt ({exc})") from None
