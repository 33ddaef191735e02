"""Ways to run a trained model on a batch of face crops: PyTorch or an exported ONNX graph.

Both take what `semifer predict` prepares, uint8 RGB crops (B, 3, S, S) already resized, and return
logits; the normalisation the model was trained with runs inside the network (`PixelInputNet`), so an
exported ONNX graph needs nothing but pixels.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import nn

from ..data.views import Normalize
from ..errors import CheckpointError, SemiferError
from ..models.classifier import answering
from ..models.model_info import ModelInfo
from ..runtime.precision import answer_dtype, autocast
from ..tensorfile import check_finite

ONNX_METADATA_KEY = "semifer"


class Backend(Protocol):
    def __call__(self, pixels: np.ndarray) -> np.ndarray: ...


class PixelInputNet(nn.Module):
    """A classifier fed uint8 pixels: the test view's normalisation (and Ada-CM's channel quirk) first; the
    mirror-image average after it when the model's description asks for it (`ModelInfo.flip_average`)."""

    def __init__(self, model: nn.Module, info: ModelInfo):
        super().__init__()
        self.model = answering(model, info.flip_average)
        self.normalize = Normalize(info.bgr_quirk)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model(self.normalize(pixels))


class TorchBackend:
    """The PyTorch model in channels-last memory format (faster convolutions on CPUs and GPUs alike).

    `precision`: fp32 (the same predictions as `semifer eval` of an fp32 model), bf16 autocast, or auto (bf16
    where the device computes it natively -- a CPU with AVX-512 BF16 / AMX, most GPUs -- else fp32); None
    answers in the model's own (`ModelInfo.precision`). On such CPUs bf16 roughly doubles the faces/s of the
    small CNN and changes 0.2-0.4 % of the answers of trained FER2013 models, faces whose two top classes are
    nearly tied (BENCHMARKS.md, prediction throughput).
    """

    def __init__(self, model: nn.Module, info: ModelInfo, precision: str | None = None):
        self.net = PixelInputNet(model, info).eval().to(memory_format=torch.channels_last)
        self.device = next(model.parameters()).device
        self.dtype = answer_dtype(self.device, precision or info.precision)

    @torch.inference_mode()
    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(pixels).to(self.device).contiguous(memory_format=torch.channels_last)
        with autocast(self.device, self.dtype):
            logits = self.net(x)
        return logits.float().cpu().numpy()


class OnnxBackend:
    """An exported graph run by onnxruntime on the CPU (`threads` = 0 lets onnxruntime choose); `num_outputs` is
    the number of logits per face when the graph states it (None for a symbolic axis)."""

    def __init__(self, path: Path, threads: int = 0):
        ort = import_onnxruntime()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own untyped errors for unreadable graphs
            raise SemiferError(f"{path}: onnxruntime cannot load this graph ({exc})") from None
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if not inputs or not outputs:
            raise SemiferError(f"{path}: this ONNX graph has no input or no output; make it with `semifer export`")
        self.input_name = inputs[0].name
        classes = outputs[0].shape[-1] if outputs[0].shape else None
        self.num_outputs = classes if isinstance(classes, int) else None

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: pixels})[0]


def onnx_model_info(path: Path, session: object | None = None) -> ModelInfo:
    """The ModelInfo `semifer export` stores in the graph's metadata (so a lone .onnx file is enough);
    `session` is an InferenceSession of the graph already open."""
    if session is None:
        ort = import_onnxruntime()
        try:
            session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as exc:  # see OnnxBackend
            raise SemiferError(f"{path}: onnxruntime cannot load this graph ({exc})") from None
    blob = session.get_modelmeta().custom_metadata_map.get(ONNX_METADATA_KEY)  # type: ignore[attr-defined]
    if blob is None:
        raise SemiferError(f"{path}: this ONNX graph has no semifer metadata; make it with `semifer export`")
    try:
        description = json.loads(blob)
    except (ValueError, RecursionError) as exc:
        raise SemiferError(
            f"{path}: the semifer metadata of this ONNX graph is not valid JSON ({exc}); export the model again"
        ) from None
    return ModelInfo.from_dict(description, str(path))


def check_onnx_initializers(path: Path) -> None:
    """Refuse a graph whose weights (float initializers) hold NaN or inf, as `check_finite` does for safetensors;
    skipped when the `onnx` package is not installed (onnxruntime alone runs graphs but cannot list them)."""
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        return
    try:
        graph = onnx.load(str(path), load_external_data=False).graph
        tensors = {
            init.name: numpy_helper.to_array(init)
            for init in graph.initializer
            if init.data_location != onnx.TensorProto.EXTERNAL
        }
    except Exception as exc:  # protobuf's DecodeError and onnx's own errors share no base class
        raise CheckpointError(
            f"{path}: not a readable ONNX graph, truncated or corrupt ({str(exc)[:200]}); export the model again"
        ) from None
    check_finite(tensors, path, "ONNX graph")


def import_onnxruntime():  # noqa: ANN201 - the module
    try:
        import onnxruntime
    except ImportError:
        raise SemiferError("ONNX models need onnxruntime: pip install 'semifer[export]'") from None
    return onnxruntime
