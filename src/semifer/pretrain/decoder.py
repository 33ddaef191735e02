"""A light convolutional decoder from a backbone's last feature map back to full-resolution pixels."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def _conv_bn_gelu(cin: int, cout: int, kernel: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False), nn.BatchNorm2d(cout), nn.GELU())


class PixelDecoder(nn.Module):
    """1x1 conv to `dim` channels, resampling onto the patch grid, `depth` 3x3 conv blocks, then a per-position
    linear pixel predictor (1x1 conv to patch * patch * 3 values) unfolded by pixel shuffle to full resolution.

    Working on the patch grid makes the decoder independent of the backbone's stride: the small CNN's 6x6
    map at 48 px is already the 8 px patch grid, a ResNet's 7x7 map at 224 px is upsampled to the 14x14 grid
    of 16 px patches. It is kept small (defaults 128 channels, 2 blocks) for the same reason MAE keeps its
    decoder light: the representation should be learnt by the encoder, and the decoder is thrown away.
    """

    def __init__(self, in_dim: int, grid: int, patch: int, dim: int = 128, depth: int = 2, channels: int = 3):
        super().__init__()
        self.grid, self.patch = grid, patch
        self.proj = _conv_bn_gelu(in_dim, dim, 1)
        self.blocks = nn.Sequential(*[_conv_bn_gelu(dim, dim, 3) for _ in range(depth)])
        self.pred = nn.Conv2d(dim, channels * patch * patch, 1)

    def forward(self, feature_map: torch.Tensor) -> torch.Tensor:
        x = self.proj(feature_map)
        if x.shape[-2:] != (self.grid, self.grid):
            x = F.interpolate(x, size=(self.grid, self.grid), mode="bilinear", align_corners=False)
        return F.pixel_shuffle(self.pred(self.blocks(x)), self.patch)
