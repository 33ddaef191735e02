"""`semifer.load(path)`: the one door to a trained model, for `semifer predict`, the Python API and export.

A path may be a run directory, a checkpoint (`checkpoints/last.pt`), an exported folder (`model.json` with
`model.safetensors` and/or `model.onnx`), an exported `.onnx` / `.safetensors` file, or the name of a built-in
classifier; no path at all opens the built-in expression classifier (`semifer.weights.CLASSIFIER`).
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..engine.predictor import load_model
from ..errors import CheckpointError, SemiferError
from ..models import FERNet
from ..runtime.distributed import local_device
from ..tensorfile import check_finite, load_safetensors
from ..weights import CLASSIFIER, get_weights, is_builtin, verify_files
from .backends import OnnxBackend, TorchBackend, check_onnx_initializers, onnx_model_info
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


_REEXPORT = "export the model again (or restore the file from a copy)"


def _check_hashes(folder: Path, info: ModelInfo, weights: Path | None = None) -> None:
    """An export that lists its files' sha256 in model.json has them checked before any is read; the weight
    file about to be read must be one of them (an unlisted one is left from another export of the folder and
    may belong to another model)."""
    if not info.files:
        return
    if weights is not None and weights.name not in info.files:
        raise CheckpointError(
            f'{weights}: not listed under "files" in {folder / MODEL_JSON}, so it cannot be '
            f"checked and may belong to another model; {_REEXPORT}"
        )
    verify_files(folder, info.files, _REEXPORT)


def _exported_folder(path: Path) -> Path | None:
    """The export folder `path` names (the folder itself, or the folder of its .safetensors/.onnx file), if any."""
    if path.is_dir():
        folder = path
    elif path.suffix in (".safetensors", ".onnx"):
        folder = path.parent
    else:
        return None
    return folder if (folder / MODEL_JSON).is_file() else None


def _check_head(weights: Path, info: ModelInfo, tensors: dict[str, torch.Tensor]) -> None:
    """The head's output size must be the number of classes model.json names (else the probability columns
    would be misnamed, or one would be missing)."""
    head = tensors.get("head.weight")
    if head is not None and (head.ndim != 2 or head.shape[0] != len(info.classes)):
        raise CheckpointError(
            f"{weights}: the head has {head.shape[0] if head.ndim else 0} outputs but "
            f'{weights.parent / MODEL_JSON} lists {len(info.classes)} classes ("classes"); '
            f"{_REEXPORT}"
        )


def _run_model(path: Path, use_ema: bool, device: str) -> tuple[FERNet, ModelInfo]:
    """The model of a run directory or checkpoint; a checkpoint whose tensors do not rebuild its model
    (damaged, or edited) is one CheckpointError."""
    try:
        model, cfg, classes = load_model(path, use_ema=use_ema, device=device)
    except SemiferError:
        raise
    except (RuntimeError, KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(
            f"{path}: the checkpoint does not rebuild its model ({type(exc).__name__}: "
            f"{str(exc)[:300]}); use an earlier copy or train again"
        ) from None
    run_dir = path if path.is_dir() else path.parent.parent if path.parent.name == "checkpoints" else None
    return model, ModelInfo.from_run(cfg, classes, run_dir)


def open_torch_model(path: str | Path | None, use_ema: bool = True, device: str = "auto") -> tuple[FERNet, ModelInfo]:
    """The PyTorch model (eval mode) and its ModelInfo from a run, a checkpoint, exported safetensors or a
    built-in name (None: the built-in classifier)."""
    path = model_path(path)
    if not path.exists():
        raise SemiferError(f"{path}: no such model; give a run directory, a checkpoint or an exported model")
    if path.suffix == ".onnx":
        raise SemiferError(
            f"{path}: an ONNX graph cannot be opened as a PyTorch model; use the run or its safetensors export"
        )
    folder = _exported_folder(path)
    if folder is None:
        if path.suffix == ".safetensors":
            raise SemiferError(
                f"{path}: safetensors weights need the {MODEL_JSON} of their export beside them "
                "(architecture, classes); give the folder `semifer export` wrote (a backbone from "
                "`semifer pretrain` is not a classifier: train from it with model.pretrained=FILE)"
            )
        return _run_model(path, use_ema, device)
    info = ModelInfo.load(folder / MODEL_JSON)
    weights = path if path.suffix == ".safetensors" else folder / WEIGHTS
    if not weights.is_file():
        raise SemiferError(f"{folder}: no {WEIGHTS} here; export with --format safetensors for PyTorch use")
    _check_hashes(folder, info, weights)
    tensors = load_safetensors(weights, "exported weights file")
    check_finite(tensors, weights, "exported weights file")
    _check_head(weights, info, tensors)
    model = FERNet(
        info.arch, len(info.classes), img_size=info.img_size, **{k: v for k, v in info.head.items() if v is not None}
    )
    try:
        model.load_state_dict(tensors)
    except (RuntimeError, ValueError, TypeError) as exc:
        raise CheckpointError(
            f"{weights}: the weights do not fit the model in {folder / MODEL_JSON} ({str(exc)[:300]}); {_REEXPORT}"
        ) from None
    return model.to(local_device(device)).eval(), info


def load(
    path: str | Path | None = None,
    backend: str = "auto",
    device: str = "auto",
    threads: int = 0,
    use_ema: bool = True,
    precision: str = "fp32",
) -> Predictor:
    """A Predictor for the model at `path`, a built-in classifier's name, or (None) the built-in expression
    classifier. `backend='onnx'` runs an exported graph with onnxruntime
    (`threads` intra-op threads, 0 = its default); 'auto' uses ONNX only when no PyTorch weights are there.
    `precision` (PyTorch only): fp32, bf16 or auto (bf16 where the hardware computes it natively)."""
    path = model_path(path)
    if backend not in BACKENDS:
        raise SemiferError(f"unknown backend {backend!r}; use one of {', '.join(BACKENDS)}")
    folder = _exported_folder(path) if path.exists() else None
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
            _check_hashes(folder, info, onnx)
        check_onnx_initializers(onnx)
        graph = OnnxBackend(onnx, threads)
        info = onnx_model_info(onnx, graph.session)
        if graph.num_outputs not in (None, len(info.classes)):
            raise CheckpointError(
                f"{onnx}: the graph has {graph.num_outputs} outputs but its description lists "
                f'{len(info.classes)} classes ("classes"); {_REEXPORT}'
            )
        return Predictor(graph, info)
    model, info = open_torch_model(path, use_ema, device)
    return Predictor(TorchBackend(model, info, precision), info, model)
