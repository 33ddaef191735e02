"""`semifer.load(path)`: a Predictor for a trained model, for `semifer predict` and the Python API; its PyTorch
network comes from `models.load_model`, or an exported ONNX graph runs with onnxruntime.

A path may be a run directory, a checkpoint (`checkpoints/last.pt`), an exported folder (`model.json` with
`model.safetensors` and/or `model.onnx`), an exported `.onnx` / `.safetensors` file, or the name of a built-in
classifier; no path at all opens the built-in expression classifier (`semifer.weights.CLASSIFIER`).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import CheckpointError, SemiferError
from ..models import ModelInfo
from ..models.factory import REEXPORT, WEIGHTS, check_export_hashes, export_folder, load_model, model_path
from ..weights import MODEL_JSON, is_builtin
from .backends import OnnxBackend, TorchBackend, check_onnx_initializers, onnx_model_info
from .predictor import Predictor

ONNX = "model.onnx"
BACKENDS = ("auto", "torch", "onnx")
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


def load(
    path: str | Path | None = None,
    backend: str = "auto",
    device: str = "auto",
    threads: int = 0,
    use_ema: bool = True,
    precision: str | None = None,
) -> Predictor:
    """A Predictor for the model at `path`, a built-in classifier's name, or (None) the built-in expression
    classifier. `backend='onnx'` runs an exported graph with onnxruntime
    (`threads` intra-op threads, 0 = its default); 'auto' uses ONNX only when no PyTorch weights are there.
    `precision` (PyTorch only): fp32, bf16 or auto (bf16 where the hardware computes it natively); None: the
    model's own (`ModelInfo.precision`, fp32 unless its export says otherwise)."""
    path = model_path(path)
    if backend not in BACKENDS:
        raise SemiferError(f"unknown backend {backend!r}; use one of {', '.join(BACKENDS)}")
    folder = export_folder(path) if path.exists() else None
    info = ModelInfo.load(folder / MODEL_JSON) if folder is not None else None
    onnx = path if path.suffix == ".onnx" else folder / ONNX if folder is not None else None
    # an export folder's safetensors file counts only when model.json lists it (or lists no file at all)
    torch_weights = (
        folder is not None
        and path.suffix != ".onnx"
        and (
            path.suffix == ".safetensors"
            or ((folder / WEIGHTS).is_file() and (not info.files or WEIGHTS in info.files))
        )
    )
    if backend == "onnx" or (backend == "auto" and onnx is not None and not torch_weights):
        if onnx is None or not onnx.is_file():
            raise SemiferError(f"{path}: no ONNX graph here; make one with `semifer export RUN --format onnx`")
        if folder is not None:
            check_export_hashes(folder, info, onnx)
        check_onnx_initializers(onnx)
        graph = OnnxBackend(onnx, threads)
        info = onnx_model_info(onnx, graph.session)
        if graph.num_outputs not in (None, len(info.classes)):
            raise CheckpointError(
                f"{onnx}: the graph has {graph.num_outputs} outputs but its description lists "
                f'{len(info.classes)} classes ("classes"); {REEXPORT}'
            )
        return Predictor(graph, info)
    model, info = load_model(path, use_ema, device)
    return Predictor(TorchBackend(model, info, precision), info, model)
