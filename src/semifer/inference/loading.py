"""`semifer.load(path)`: the one door to a trained model, for `semifer predict`, the Python API and export.

A path may be a run directory, a checkpoint (`checkpoints/last.pt`), an exported folder (`model.json` with
`model.safetensors` and/or `model.onnx`), an exported `.onnx` / `.safetensors` file, or the name of a built-in
classifier; no path at all opens the built-in expression classifier (`semifer.weights.CLASSIFIER`).
"""

from __future__ import annotations

from pathlib import Path

from safetensors.torch import load_file

from ..engine.distributed import local_device
from ..engine.predictor import load_model
from ..errors import SemiferError
from ..models import FERNet
from ..weights import CLASSIFIER, get_weights, is_builtin, verify_files
from .backends import OnnxBackend, TorchBackend, onnx_model_info
from .model_info import ModelInfo
from .predictor import Predictor

MODEL_JSON = "model.json"
WEIGHTS = "model.safetensors"
ONNX = "model.onnx"
BACKENDS = ("auto", "torch", "onnx")


def model_path(path: str | Path | None) -> Path:
    """The path a model argument names: the built-in classifier for None, a built-in's verified folder for
    its name, else the path itself."""
    if path is None:
        path = CLASSIFIER
    if is_builtin(path):
        return get_weights(str(path), kind="classifier").folder
    return Path(path)


MODEL_SUFFIXES = (".pt", ".pth", ".onnx", ".safetensors")


def looks_like_model(arg: str) -> bool:
    """Whether a command-line argument names a model rather than an input: a built-in name, a model file,
    an exported folder or a run directory."""
    path = Path(arg)
    if is_builtin(arg):
        return True
    if path.is_file():
        return path.suffix in MODEL_SUFFIXES
    return path.is_dir() and any((path / marker).exists() for marker in (MODEL_JSON, "checkpoints", "config.yaml"))


def _check_hashes(folder: Path, info: ModelInfo) -> None:
    """An export that lists its files' sha256 in model.json has them checked before any is read."""
    if info.files:
        verify_files(folder, info.files, "export the model again (or restore the file from a copy)")


def _exported_folder(path: Path) -> Path | None:
    """The export folder `path` names (the folder itself, or the folder of its model file), if any."""
    folder = path if path.is_dir() else path.parent
    return folder if (folder / MODEL_JSON).is_file() and path.suffix != ".pt" else None


def open_torch_model(path: str | Path | None, use_ema: bool = True,
                     device: str = "auto") -> tuple[FERNet, ModelInfo]:
    """The PyTorch model (eval mode) and its ModelInfo from a run, a checkpoint, exported safetensors or a
    built-in name (None: the built-in classifier)."""
    path = model_path(path)
    if not path.exists():
        raise SemiferError(f"{path}: no such model; give a run directory, a checkpoint or an exported model")
    if path.suffix == ".onnx":
        raise SemiferError(f"{path}: an ONNX graph cannot be opened as a PyTorch model; use the run or its "
                           "safetensors export")
    folder = _exported_folder(path)
    if folder is None:
        model, cfg, classes = load_model(path, use_ema=use_ema, device=device)
        run_dir = path if path.is_dir() else path.parent.parent if path.parent.name == "checkpoints" else None
        return model, ModelInfo.from_run(cfg, classes, run_dir)
    info = ModelInfo.load(folder / MODEL_JSON)
    _check_hashes(folder, info)
    weights = path if path.suffix == ".safetensors" else folder / WEIGHTS
    if not weights.is_file():
        raise SemiferError(f"{folder}: no {WEIGHTS} here; export with --format safetensors for PyTorch use")
    model = FERNet(info.arch, len(info.classes), **{k: v for k, v in info.head.items() if v is not None})
    try:
        model.load_state_dict(load_file(weights))
    except RuntimeError as exc:
        raise SemiferError(f"{weights}: the weights do not fit the model in {MODEL_JSON} ({exc})") from None
    return model.to(local_device(device)).eval(), info


def load(path: str | Path | None = None, backend: str = "auto", device: str = "auto", threads: int = 0,
         use_ema: bool = True, precision: str = "fp32") -> Predictor:
    """A Predictor for the model at `path`, a built-in classifier's name, or (None) the built-in expression
    classifier. `backend='onnx'` runs an exported graph with onnxruntime
    (`threads` intra-op threads, 0 = its default); 'auto' uses ONNX only when no PyTorch weights are there.
    `precision` (PyTorch only): fp32, bf16 or auto (bf16 where the hardware computes it natively)."""
    path = model_path(path)
    if backend not in BACKENDS:
        raise SemiferError(f"unknown backend {backend!r}; use one of {', '.join(BACKENDS)}")
    folder = _exported_folder(path) if path.exists() else None
    onnx = path if path.suffix == ".onnx" else folder / ONNX if folder is not None else None
    torch_weights = folder is not None and path.suffix != ".onnx" and (folder / WEIGHTS).is_file()
    if backend == "onnx" or (backend == "auto" and onnx is not None and not torch_weights):
        if onnx is None or not onnx.is_file():
            raise SemiferError(f"{path}: no ONNX graph here; make one with `semifer export RUN --format onnx`")
        if folder is not None:
            _check_hashes(folder, ModelInfo.load(folder / MODEL_JSON))
        return Predictor(OnnxBackend(onnx, threads), onnx_model_info(onnx))
    model, info = open_torch_model(path, use_ema, device)
    return Predictor(TorchBackend(model, info, precision), info, model)
