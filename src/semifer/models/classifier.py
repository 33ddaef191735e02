"""The expression classifier: backbone feature map -> (local attention) -> (feature-map dropout) -> the
backbone's pooling (global average; + fc_norm for a ViT) -> dropout -> (optional L2 norm) -> linear head."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from .backbones import create_backbone


class LocalAttention(nn.Module):
    """Local attention enhancement (DTA+SNL, Cai et al.): a spatial map a in (0, 1)^(h x w) from a 1x1-conv
    bottleneck (D -> D/8 -> 1) and a sigmoid, applied as x * (1 + a).

    The residual form (Residual Attention Network, Wang et al., CVPR 2017) enhances informative local
    regions (eyes, brows, mouth) without zeroing the rest, so pretrained features stay usable at the start.
    """

    def __init__(self, channels: int, reduction: int = 8):
        super().__init__()
        hidden = max(channels // reduction, 8)
        self.score = nn.Sequential(nn.Conv2d(channels, hidden, 1), nn.ReLU(inplace=True), nn.Conv2d(hidden, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * (1 + torch.sigmoid(self.score(x)))


class FERNet(nn.Module):
    """Backbone plus linear head over the canonical classes.

    `l2norm=True` is Ada-CM's head: the dropped-out feature is L2-normalised and both the classifier and the
    contrastive loss act on that unit feature. `attention` and `feature_dropout` act on the backbone's last
    feature map before pooling (DTA+SNL's feature extraction): `LocalAttention`, then channel dropout
    (`nn.Dropout2d`: in training a whole feature map of a sample is zeroed with probability p and the rest
    scaled by 1/(1-p), so no single local pattern can carry the prediction; identity in eval). They live
    outside `backbone`, whose parameter names stay torchvision's. `forward(x, features=True)` returns
    `(logits, feature)` so methods that need the feature get it in the same (DDP-visible) forward call.
    `img_size`, `patch_size` and `drop_path` shape a ViT backbone (a ViT's map is its patch-token grid).
    """

    def __init__(
        self,
        arch: str,
        num_classes: int,
        dropout: float = 0.0,
        l2norm: bool = False,
        attention: bool = False,
        feature_dropout: float = 0.0,
        img_size: int = 48,
        patch_size: int | None = None,
        drop_path: float | None = None,
    ):
        super().__init__()
        if not 0.0 <= feature_dropout < 1.0:
            raise ValueError(f"feature_dropout must be in [0, 1), got {feature_dropout}")
        self.arch = arch
        self.backbone = create_backbone(arch, img_size, patch_size, drop_path)
        dim = self.backbone.feature_dim
        self.attention = LocalAttention(dim) if attention else nn.Identity()
        self.feature_dropout = nn.Dropout2d(feature_dropout) if feature_dropout > 0 else nn.Identity()
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.l2norm = l2norm
        self.head = nn.Linear(dim, num_classes)

    @property
    def num_classes(self) -> int:
        return self.head.out_features

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """The backbone's last feature map after local attention and feature-map dropout."""
        return self.feature_dropout(self.attention(self.backbone.forward_map(x)))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        feature = self.dropout(self.backbone.pool_map(self.feature_map(x)))
        return F.normalize(feature, dim=1) if self.l2norm else feature

    def forward(self, x: torch.Tensor, features: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        feature = self.embed(x)
        logits = self.head(feature)
        return (logits, feature) if features else logits


class FlipAverage(nn.Module):
    """A classifier whose answer averages its probabilities on each face and on the face's mirror image.

    Test-time augmentation at the cost of one more forward pass per face: a mirrored face shows the same
    expression, and the two views' errors are partly independent. Returns log-probabilities (logits whose
    softmax is the averaged distribution), so everything downstream of a classifier's logits is unchanged.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    @property
    def num_classes(self) -> int:
        return self.model.num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        both = torch.stack([F.log_softmax(self.model(view).float(), dim=1) for view in (x, x.flip(-1))])
        return torch.logsumexp(both, dim=0) - math.log(2.0)


def answering(model: nn.Module, flip_average: bool) -> nn.Module:
    """The network that gives a trained model's answers: itself, or its mirror average when its description
    (`ModelInfo.flip_average`) says so; every path that predicts or scores a trained model goes through here."""
    return FlipAverage(model) if flip_average else model
