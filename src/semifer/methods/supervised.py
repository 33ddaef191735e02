"""Supervised baseline: cross-entropy on the labeled images only (the lower bound every SSL paper reports)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn
from torch.nn import functional as F

from ..config_checks import UNIT_OPEN_TOP, option
from .base import Batch, Method, MethodOptions, StepOutput


class Supervised(Method):
    """Labeled cross-entropy on the weak view, optionally with label smoothing."""

    name = "supervised"

    @dataclass
    class Options(MethodOptions):
        label_smoothing: float = option(0.0, UNIT_OPEN_TOP)

    def step(self, model: nn.Module, labeled: Batch, unlabeled: Batch | None, progress: float) -> StepOutput:
        logits = model(labeled.views[0])
        loss = F.cross_entropy(logits.float(), labeled.label, label_smoothing=self.opts.label_smoothing)
        return StepOutput(loss, {"loss_x": loss.detach()})
