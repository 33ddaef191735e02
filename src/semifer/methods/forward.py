"""Running a model over several views: separate passes (per-view BN statistics) or one concatenated pass."""

from __future__ import annotations

import torch
from torch import nn

Output = tuple[torch.Tensor, torch.Tensor | None]


class MultiView(nn.Module):
    """Wraps a classifier so one call handles a list of view batches.

    The engine trains through this wrapper so that a method's several passes are one `forward` call, which
    is what DistributedDataParallel requires (it cannot reduce gradients of several forwards per step).
    A single tensor goes straight to the model.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(
        self, x: torch.Tensor | list[torch.Tensor], features: bool = False, separate: bool = True
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor] | list[Output]:
        if isinstance(x, torch.Tensor):
            return self.model(x, features=features) if features else self.model(x)
        if separate:
            outs = [self.model(v, features=features) if features else self.model(v) for v in x]
            return [(o[0], o[1]) if features else (o, None) for o in outs]
        sizes = [len(v) for v in x]
        out = self.model(torch.cat(x), features=features) if features else self.model(torch.cat(x))
        logits = out[0] if features else out
        feats = out[1].split(sizes) if features else [None] * len(x)
        return list(zip(logits.split(sizes), feats, strict=True))


def forward_views(model: nn.Module, views: list[torch.Tensor], separate: bool, features: bool = False) -> list[Output]:
    """(logits, feature or None) per view.

    `separate=True` runs one forward per view, as Ada-CM's official code does, so batch-norm normalises
    each view's batch on its own statistics. `separate=False` runs one pass over the concatenation (faster,
    as FixMatch/USB do); batch-norm then sees the union, which changes results slightly. `model` may be the
    engine's `MultiView` (possibly inside DDP) or a bare classifier.
    """
    core = getattr(model, "module", model)
    runner = model if isinstance(core, MultiView) else MultiView(model)
    return runner(views, features=features, separate=separate)
