"""Feature extractors: torchvision ResNets for paper-scale runs and a small CNN for CPU-scale runs.

Every backbone maps a (B, 3, H, W) image batch to its last (B, D, h, w) feature map (`forward_map`) and to
the (B, D) globally average-pooled feature (`forward`), and exposes `feature_dim` = D.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torchvision.models import resnet18, resnet50


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

    def forward_map(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return global_pool(self.forward_map(x))

    def feature_map_stages(self) -> list[nn.Module]:
        return [self.layer1, self.layer2, self.layer3, self.layer4]


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
        self.stages = nn.ModuleList([
            _conv_bn(3, w),
            nn.Sequential(_conv_bn(w, 2 * w, 2), _conv_bn(2 * w, 2 * w)),
            nn.Sequential(_conv_bn(2 * w, 4 * w, 2), _conv_bn(4 * w, 4 * w)),
            nn.Sequential(_conv_bn(4 * w, 8 * w, 2), _conv_bn(8 * w, 8 * w)),
        ])
        self.feature_dim = 8 * w

    def forward_map(self, x: torch.Tensor) -> torch.Tensor:
        for stage in self.stages:
            x = stage(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return global_pool(self.forward_map(x))

    def feature_map_stages(self) -> list[nn.Module]:
        return list(self.stages)


BACKBONES: dict[str, Callable[[], nn.Module]] = {
    "resnet18": lambda: ResNetBackbone(18),
    "resnet50": lambda: ResNetBackbone(50),
    "small_cnn": lambda: SmallCNN(16),
    "small_cnn_wide": lambda: SmallCNN(32),
}
