"""The expression classifier: backbone -> pooled feature -> dropout -> (optional L2 norm) -> linear head."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .backbones import BACKBONES


class FERNet(nn.Module):
    """Backbone plus linear head over the canonical classes.

    `l2norm=True` is Ada-CM's head: the dropped-out feature is L2-normalised and both the classifier and the
    contrastive loss act on that unit feature. `forward(x, features=True)` returns `(logits, feature)` so
    methods that need the feature get it in the same (DDP-visible) forward call.
    """

    def __init__(self, arch: str, num_classes: int, dropout: float = 0.0, l2norm: bool = False):
        super().__init__()
        if arch not in BACKBONES:
            raise ValueError(f"unknown arch {arch!r}; choose one of {', '.join(BACKBONES)}")
        self.arch = arch
        self.backbone = BACKBONES[arch]()
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.l2norm = l2norm
        self.head = nn.Linear(self.backbone.feature_dim, num_classes)

    @property
    def num_classes(self) -> int:
        return self.head.out_features

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        feature = self.dropout(self.backbone(x))
        return F.normalize(feature, dim=1) if self.l2norm else feature

    def forward(self, x: torch.Tensor, features: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        feature = self.embed(x)
        logits = self.head(feature)
        return (logits, feature) if features else logits
