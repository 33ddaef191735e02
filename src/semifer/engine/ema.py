"""Exponential moving average of a model's weights and buffers, used for evaluation."""

from __future__ import annotations

import copy

import torch
from torch import nn


class ModelEMA:
    """ema = decay * ema + (1 - decay) * student, over every float entry of the state dict.

    BN running statistics are averaged too, as in Ada-CM's and MixMatch's reference code (buffers that
    are not floats, like `num_batches_tracked`, are copied).
    """

    def __init__(self, model: nn.Module, decay: float = 0.999):
        self.decay = decay
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        student = model.state_dict()
        floats, targets = [], []
        for key, value in self.module.state_dict().items():
            if value.dtype.is_floating_point:
                targets.append(value)
                floats.append(student[key].detach())
            else:
                value.copy_(student[key])
        torch._foreach_lerp_(targets, floats, 1.0 - self.decay)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.module.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.module.load_state_dict(state)


@torch.no_grad()
def shrink_weights(model: nn.Module, factor: float) -> None:
    """Multiply float weights and buffers by `factor` (the decoupled decay step of Ada-CM's EMA optimizer)."""
    tensors = [v for v in model.state_dict().values() if v.dtype.is_floating_point]
    torch._foreach_mul_(tensors, factor)
