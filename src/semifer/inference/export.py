"""`semifer export`: a trained run as safetensors weights or an ONNX graph (pixels in, logits out, dynamic
batch axis, checked against PyTorch with onnxruntime), each with `model.json` and `MODEL_CARD.md`."""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from ..errors import SemiferError
from ..weights import is_builtin, sha256_file
from .backends import ONNX_METADATA_KEY, OnnxBackend, PixelInputNet
from .loading import MODEL_JSON, ONNX, WEIGHTS, open_torch_model
from .model_card import write_model_card
from .model_info import ModelInfo

FORMATS = ("onnx", "safetensors")
ONNX_TOLERANCE = 1e-4


@dataclass
class ExportResult:
    out_dir: Path
    files: list[Path]
    max_abs_diff: float | None = None


def _default_out(path: Path) -> Path:
    """RUN/export for a run or checkpoint; NAME-export in the current folder for a built-in (never inside the
    installed package)."""
    if is_builtin(path):
        return Path(f"{path}-export")
    run_dir = path if path.is_dir() else path.parent.parent if path.parent.name == "checkpoints" else path.parent
    return run_dir / "export"


def export_onnx(model: torch.nn.Module, info: ModelInfo, path: Path, check_batch: int = 5) -> float:
    """Write the graph (uint8 pixels (B, 3, S, S) -> logits, B dynamic, model.json in its metadata) and
    return the largest |logit difference| to PyTorch on a random batch of `check_batch` images."""
    try:
        import onnx
    except ImportError:
        raise SemiferError("ONNX export needs onnx, onnxscript and onnxruntime: "
                           "pip install 'semifer[export]'") from None
    net = PixelInputNet(model, info.bgr_quirk).cpu().eval()
    size = info.img_size
    example = torch.randint(0, 256, (2, 3, size, size), dtype=torch.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(net, (example,), input_names=["pixels"], output_names=["logits"],
                                     dynamic_shapes={"pixels": {0: torch.export.Dim("batch")}}, dynamo=True,
                                     verbose=False)
    graph = program.model_proto
    onnx.helper.set_model_props(graph, {ONNX_METADATA_KEY: info.to_json()})
    onnx.save(graph, str(path))
    pixels = torch.randint(0, 256, (check_batch, 3, size, size), dtype=torch.uint8)
    with torch.inference_mode():
        expected = net(pixels).numpy()
    got = OnnxBackend(path)(pixels.numpy())
    return float(np.abs(got - expected).max())


def export_model(source: str | Path, fmt: str, out: str | Path | None = None, eval_dirs: list[str] | None = None,
                 use_ema: bool = True) -> ExportResult:
    """Export the model at `source` (run, checkpoint, safetensors export or built-in name) in `fmt` to `out`
    (default: RUN/export, or NAME-export for a built-in); model.json lists the sha256 of the weight file.
    `eval_dirs` are `semifer eval --out` folders whose metrics go into the model card."""
    if fmt not in FORMATS:
        raise SemiferError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    source = Path(source)
    model, info = open_torch_model(source, use_ema=use_ema, device="cpu")
    info.files = {}  # the source's hashes; this export's are added once its file is written
    for folder in eval_dirs or []:
        metrics = Path(folder) / "metrics.json"
        if not metrics.is_file():
            raise SemiferError(f"{metrics}: not found; give folders written by `semifer eval --out`")
        info.evaluations.append(json.loads(metrics.read_text()))
    out_dir = Path(out) if out else _default_out(source)
    out_dir.mkdir(parents=True, exist_ok=True)
    diff = None
    if fmt == "safetensors":
        weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(weights, str(out_dir / WEIGHTS), metadata={"format": "pt"})
        written = out_dir / WEIGHTS
    else:
        diff = export_onnx(model, info, out_dir / ONNX)
        written = out_dir / ONNX
        if diff > ONNX_TOLERANCE:
            raise SemiferError(f"{out_dir / ONNX}: onnxruntime's logits differ from PyTorch's by {diff:.2e} "
                               f"(> {ONNX_TOLERANCE:.0e}); do not use this graph")
    info.files = {written.name: sha256_file(written)}
    files = [info.save(out_dir / MODEL_JSON), written, write_model_card(info, out_dir / "MODEL_CARD.md")]
    return ExportResult(out_dir, files, diff)
