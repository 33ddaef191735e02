"""Which reduced precision a step runs in: bf16 autocast where the hardware does it natively, else fp32."""

from __future__ import annotations

import functools
from pathlib import Path

import torch


@functools.cache
def cpu_has_bf16() -> bool:
    """True on CPUs with native bf16 matrix instructions (AVX-512 BF16 or AMX), where autocast pays."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def autocast_dtype(device: torch.device, amp: bool | str) -> torch.dtype | None:
    """The autocast dtype for `train.amp` on `device`, or None for fp32.

    `auto`/true: bf16 on CUDA devices that support it (else fp16 with a gradient scaler) and on CPUs with
    native bf16; fp32 elsewhere. `bf16`/`fp16` force that dtype, `off`/false fp32.
    """
    mode = {True: "auto", False: "off"}.get(amp, amp) if isinstance(amp, bool) else str(amp)
    if mode == "off":
        return None
    if mode == "bf16":
        return torch.bfloat16
    if mode == "fp16":
        return torch.float16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if device.type == "cpu" and cpu_has_bf16() else None
