"""Running a model over several views: separate passes (per-view BN statistics) or one concatenated pass."""

from __future__ import annotations

import torch
from torch import nn


def forward_views(model: nn.Module, views: list[torch.Tensor], separate: bool,
                  features: bool = False) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
    """(logits, feature or None) per view.

    `separate=True` runs one forward per view, as Ada-CM's official code does, so batch-norm normalises
    each view's batch on its own statistics. `separate=False` runs one pass over the concatenation (faster,
    as FixMatch/USB do); batch-norm then sees the union, which changes results slightly.
    """
    if separate:
        outs = [model(v, features=features) if features else model(v) for v in views]
        return [(o[0], o[1]) if features else (o, None) for o in outs]
    sizes = [len(v) for v in views]
    out = model(torch.cat(views), features=features) if features else model(torch.cat(views))
    logits = out[0] if features else out
    chunks = logits.split(sizes)
    feats = out[1].split(sizes) if features else [None] * len(views)
    return list(zip(chunks, feats, strict=True))
