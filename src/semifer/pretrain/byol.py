"""Self-distillation pretraining without negatives: BYOL (Grill et al., NeurIPS 2020).

Why it is here: SimCLR needs many negatives in a batch, and on a CPU batches stay at a few hundred faces; BYOL
learns from positive pairs alone (an online network predicts a slowly moving target network's projection of
the other view), so it is the second instance-level objective to compare on the same views and budget.

Recipe (`pretrain:` section with `method: byol`; the schedule comes from `train:`):
- The same two views of every face as SimCLR (`two_views`), so a comparison isolates the objective.
- Online network: backbone, projector Linear(D, 512) - BN - ReLU - Linear(512, 128), and predictor
  Linear(128, 512) - BN - ReLU - Linear(512, 128). Target network: a copy of backbone and projector whose
  weights follow the online ones as an exponential moving average, never by gradients.
- Target momentum tau = 1 - (1 - momentum) * (cos(pi * progress) + 1) / 2, from `momentum` (0.99, the value
  small-image recipes use in place of ImageNet's 0.996) to 1 at the end of the run; the update runs at the
  start of each step, on the online weights the previous step left.
- Loss: 2 - 2 cos(prediction of one view, target projection of the other), both ways, summed.
- Optimiser and warm-up as SimCLR's (SGD with base_lr 0.3 scaled by batch / 256 in place of LARS).

The backbone file holds the online backbone. Under `torchrun` each rank's target follows its own online
network, which DistributedDataParallel keeps equal on every rank; the target moves outside the forward.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..config import Config
from ..methods.objective import Batch, StepContext, StepOutput
from .two_views import TwoViewObjective, TwoViewOptions, projection_head, two_view_options


@dataclass
class BYOLOptions(TwoViewOptions):
    """The `pretrain:` section for `method: byol`."""

    method: str = "byol"
    momentum: float = 0.99
    pred_hidden: int = 512


def byol_options(cfg: Config) -> BYOLOptions:
    """The `pretrain:` section for BYOL, typed and range-checked."""
    return two_view_options(BYOLOptions, cfg)


def target_momentum(base: float, progress: float) -> float:
    """BYOL's cosine schedule of the target momentum: `base` at the start, 1 at the end."""
    return 1 - (1 - base) * (math.cos(math.pi * min(max(progress, 0.0), 1.0)) + 1) / 2


def regression_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over rows of 2 - 2 cos(prediction, target): the squared distance of the unit vectors."""
    return (2 - 2 * F.cosine_similarity(prediction, target, dim=1)).mean()


class BYOL(nn.Module):
    """Online backbone, projector and predictor, and the moving-average target; `forward` maps two views of the
    same faces to BYOL's symmetric loss."""

    def __init__(self, backbone: nn.Module, hidden: int = 512, out: int = 128, pred_hidden: int = 512):
        super().__init__()
        self.backbone = backbone
        self.projector = projection_head(backbone.feature_dim, hidden, out)
        self.predictor = projection_head(out, pred_hidden, out)
        self.target_backbone = copy.deepcopy(backbone)
        self.target_projector = copy.deepcopy(self.projector)
        for p in self.target_parameters():
            p.requires_grad_(False)

    def encoder_state_dict(self) -> dict[str, torch.Tensor]:
        """What `model.pretrained=` loads: the online backbone alone."""
        return self.backbone.state_dict()

    def online_parameters(self) -> list[nn.Parameter]:
        """The backbone and projector the target follows (the predictor has no target twin)."""
        return [*self.backbone.parameters(), *self.projector.parameters()]

    def target_parameters(self) -> list[nn.Parameter]:
        return [*self.target_backbone.parameters(), *self.target_projector.parameters()]

    @torch.no_grad()
    def update_target(self, momentum: float) -> None:
        """target = momentum * target + (1 - momentum) * online; normalisation statistics are copied."""
        torch._foreach_lerp_(self.target_parameters(), self.online_parameters(), 1 - momentum)
        pairs = ((self.backbone, self.target_backbone), (self.projector, self.target_projector))
        for source, target in pairs:
            for kept, running in zip(source.buffers(), target.buffers(), strict=True):
                running.copy_(kept)

    def forward(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        """The loss of the pairs (first[i], second[i]): each view's prediction against the other's target."""
        b = len(first)
        both = torch.cat([first, second])
        predictions = self.predictor(self.projector(self.backbone(both))).float()
        with torch.no_grad():
            targets = self.target_projector(self.target_backbone(both)).float()
        return regression_loss(predictions[:b], targets[b:]) + regression_loss(predictions[b:], targets[:b])


class BYOLObjective(TwoViewObjective):
    """BYOL's model and loss on the two views of each face; the target momentum follows the run's progress."""

    name = "byol"
    loss_name = "BYOL loss"
    title = "two BYOL views"

    @staticmethod
    def options(cfg: Config) -> BYOLOptions:
        return byol_options(cfg)

    def build_model(self, backbone: nn.Module) -> nn.Module:
        o = self.opts
        return BYOL(backbone, o.proj_hidden, o.proj_dim, o.pred_hidden)

    def step(self, net: nn.Module, batches: Sequence[Batch | None], ctx: StepContext) -> StepOutput:
        """Move the target (outside the forward, so a compiled or distributed network only computes the loss),
        then the loss on two fresh views of the batch."""
        self.model.update_target(target_momentum(self.opts.momentum, ctx.progress))
        images, view = batches[0].views[0], self.batch_view(self.view_size(ctx.progress))
        with ctx.autocast():
            return StepOutput(net(view(images), view(images)))
