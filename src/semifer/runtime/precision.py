"""Which floating-point precision a training step runs in: one rule for the trainer and the pretrainer.

`train.amp` (see `config.AMP_MODES`) picks the autocast dtype of the forward pass and the losses; weights,
optimizer state, EMA, evaluation and threshold statistics always stay fp32 (methods cast logits to fp32
before softmax and cross-entropy).

    auto  CUDA: bf16 where the GPU supports it, else fp16 with a gradient scaler.
          CPU: bf16 only where the CPU computes it natively (AVX-512 BF16 or AMX; on other CPUs oneDNN
          emulates bf16 and the step gets slower than fp32), else fp32. Other devices: fp32.
    bf16  bf16 autocast on any device (an error on a GPU without bf16).
    fp16  fp16 autocast with a gradient scaler.
    off   fp32.
"""

from __future__ import annotations

import contextlib
from functools import cache
from pathlib import Path

import torch

from ..config import amp_mode
from ..errors import ConfigError, SemiferError

_CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
PRECISIONS = ("fp32", "bf16", "auto")
"""How a trained model's answers are computed: fp32, bf16 autocast, or auto (bf16 where the hardware computes
it natively, else fp32)."""


@cache
def cpu_has_native_bf16() -> bool:
    """Whether this CPU has bf16 dot-product instructions (AVX-512 BF16 or AMX), as cpuinfo or Linux reports."""
    probes = (getattr(torch.cpu, "_is_avx512_bf16_supported", None), getattr(torch.cpu, "_is_amx_tile_supported", None))
    if any(probe() for probe in probes if probe is not None):
        return True
    with contextlib.suppress(OSError):
        flags = next((line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")), "")
        return any(flag in flags.split() for flag in _CPU_BF16_FLAGS)
    return False


def autocast_dtype(device: torch.device, amp: str | bool) -> torch.dtype | None:
    """The autocast dtype of a training step on `device` for the `train.amp` value; None = fp32."""
    mode = amp_mode(amp)
    if mode == "off":
        return None
    if mode == "fp16":
        return torch.float16
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return torch.bfloat16
        if mode == "bf16":
            raise ConfigError("train.amp=bf16: this GPU has no bf16; use train.amp=auto (fp16) or off")
        return torch.float16
    if mode == "bf16" or (device.type == "cpu" and cpu_has_native_bf16()):
        return torch.bfloat16
    return None


def check_precision(precision: str) -> str:
    """`precision` if it is one of `PRECISIONS`, else a SemiferError naming them."""
    if precision not in PRECISIONS:
        raise SemiferError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    return precision


def answer_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """The autocast dtype a trained model answers in for one of `PRECISIONS`; None = fp32."""
    check_precision(precision)
    return autocast_dtype(device, "off" if precision == "fp32" else precision)


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """Autocast to `dtype` on `device`, or nothing for fp32."""
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


def grad_scaler(device: torch.device, dtype: torch.dtype | None) -> torch.amp.GradScaler:
    """A loss scaler, active only for fp16 (bf16 has fp32's exponent range and needs none)."""
    return torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
