"""Feature extractors: torchvision ResNets and timm ViTs for paper-scale runs, a small CNN for CPU-scale runs.

Every backbone maps a (B, 3, H, W) image batch to its last (B, D, h, w) feature map (`forward_map`), turns
such a map into the (B, D) feature (`pool_map`: global average pooling, plus `fc_norm` for a ViT) and does both
in `forward`; it exposes `feature_dim` = D and `feature_map_stages()`, and `num_layers` and
`layer_id(param_name)` for layer-wise lr decay (`engine.optim.layer_scales`): a ViT's layers are its
blocks, a CNN's its stages, the stem as layer 0.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torchvision.models import resnet18, resnet50

from .vit import FINETUNE_DROP_PATH, VIT_SIZES, ViTBackbone


def global_pool(feature_map: torch.Tensor) -> torch.Tensor:
    """(B, D, h, w) -> (B, D) by global average pooling."""
    return torch.flatten(nn.functional.adaptive_avg_pool2d(feature_map, 1), 1)


class ResNetBackbone(nn.Module):
    """A torchvision ResNet up to global average pooling (the `fc` layer is dropped).

    Parameter names match torchvision's (``conv1.weight``, ``layer4.1.bn2.running_mean``...), so local
    checkpoints saved from a torchvision ResNet (e.g. MS-Celeb-1M pretraining) load by name.
    """

    def __init__(self, depth: int = 18):
        super().__init__()
        net = {18: resnet18, 50: resnet50}[depth](weights=None)
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        self.feature_dim = net.fc.in_features
        self.num_layers = 5

    def forward_map(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def pool_map(self, feature_map: torch.Tensor) -> torch.Tensor:
        return global_pool(feature_map)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool_map(self.forward_map(x))

    def feature_map_stages(self) -> list[nn.Module]:
        return [self.layer1, self.layer2, self.layer3, self.layer4]

    def layer_id(self, name: str) -> int:
        """The stem (conv1, bn1) 0, `layerK` K: the last stage, 4, is one layer below the head."""
        head = name.split(".")[0]
        return int(head[len("layer") :]) if head.startswith("layer") else 0


def _conv_bn(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


class SmallCNN(nn.Module):
    """A VGG-style net for 48-64 px faces that trains at ~1000 images/s on two CPU cores (width 16).

    One full-resolution conv, then three stages (widths 2w, 4w, 8w) of a strided conv and a plain conv,
    then global average pooling. Only one conv runs at full resolution because it dominates CPU time.
    """

    def __init__(self, width: int = 16):
        super().__init__()
        w = width
        self.stages = nn.ModuleList(
            [
                _conv_bn(3, w),
                nn.Sequential(_conv_bn(w, 2 * w, 2), _conv_bn(2 * w, 2 * w)),
                nn.Sequential(_conv_bn(2 * w, 4 * w, 2), _conv_bn(4 * w, 4 * w)),
                nn.Sequential(_conv_bn(4 * w, 8 * w, 2), _conv_bn(8 * w, 8 * w)),
            ]
        )
        self.feature_dim = 8 * w
        self.num_layers = len(self.stages)

    def forward_map(self, x: torch.Tensor) -> torch.Tensor:
        for stage in self.stages:
            x = stage(x)
        return x

    def pool_map(self, feature_map: torch.Tensor) -> torch.Tensor:
        return global_pool(feature_map)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool_map(self.forward_map(x))

    def feature_map_stages(self) -> list[nn.Module]:
        return list(self.stages)

    def layer_id(self, name: str) -> int:
        """Stage i (`stages.i.*`) is layer i: the full-resolution conv 0, the last stage one below the head."""
        return int(name.split(".")[1])


def _cnn(make: Callable[[], nn.Module]) -> Callable[..., nn.Module]:
    """A CNN factory that takes (and rejects) the ViT-only options, so every arch is built the same way."""

    def build(img_size: int = 48, patch_size: int | None = None, drop_path: float | None = None) -> nn.Module:
        if patch_size is not None or drop_path:
            raise ValueError("model.patch_size and model.drop_path apply to the ViT archs only; leave them null")
        return make()

    return build


def _vit(size: str) -> Callable[..., nn.Module]:
    def build(img_size: int = 48, patch_size: int | None = None, drop_path: float | None = None) -> nn.Module:
        return ViTBackbone(size, img_size, patch_size, FINETUNE_DROP_PATH if drop_path is None else drop_path)

    return build


BACKBONES: dict[str, Callable[..., nn.Module]] = {
    "resnet18": _cnn(lambda: ResNetBackbone(18)),
    "resnet50": _cnn(lambda: ResNetBackbone(50)),
    "small_cnn": _cnn(lambda: SmallCNN(16)),
    "small_cnn_wide": _cnn(lambda: SmallCNN(32)),
    **{name: _vit(name) for name in VIT_SIZES},
}
"""arch -> factory(img_size=48, patch_size=None, drop_path=None); patch size and drop path are ViT-only
(None: 16 px patches from 128 px input, 6 px below; drop path 0.1, MAE's fine-tuning value)."""


def create_backbone(
    arch: str, img_size: int = 48, patch_size: int | None = None, drop_path: float | None = None
) -> nn.Module:
    """The feature extractor `arch` of `BACKBONES`, freshly initialised; an unknown name is a ValueError."""
    if arch not in BACKBONES:
        raise ValueError(f"unknown arch {arch!r}; choose one of {', '.join(BACKBONES)}")
    return BACKBONES[arch](img_size=img_size, patch_size=patch_size, drop_path=drop_path)
