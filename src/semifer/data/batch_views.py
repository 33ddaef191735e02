"""Views drawn for a whole batch at once, on the device, from uint8 images.

Why: per-image torchvision transforms cost ~2-4 ms a view on one CPU core, as much as the small CNN's
forward and backward pass; SimCLR draws two views of 256 faces a step. Here a batch's random resized crops
and flips are one `affine_grid` + `grid_sample`, and colour jitter and grayscale are per-sample factors
broadcast over the batch, so a step's views cost a few milliseconds (and run on the GPU when there is one).
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

from .views import IMAGENET_MEAN, IMAGENET_STD

_LUMA = (0.299, 0.587, 0.114)


def random_resized_crop_flip(
    images: torch.Tensor,
    size: int,
    scale: tuple[float, float] = (0.2, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    flip_p: float = 0.5,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """(B, C, H, W) float in [0, 1] -> (B, C, size, size): per image a crop of area ~ U(scale) of the image
    and aspect ratio log-uniform in `ratio` (clipped to the image), resampled bilinearly, flipped with `flip_p`.

    Unlike torchvision's rejection sampling, a crop that would exceed the image is shrunk to fit, so every
    draw is used; the area distribution near scale 1 differs slightly from torchvision's.
    """
    b, dev = len(images), images.device
    u = torch.rand(b, 4, device=dev, generator=generator)
    area = scale[0] + (scale[1] - scale[0]) * u[:, 0]
    log_r = math.log(ratio[0]) + (math.log(ratio[1]) - math.log(ratio[0])) * u[:, 1]
    aspect = torch.exp(log_r)
    w = torch.sqrt(area * aspect).clamp(max=1.0)  # fractions of the image's width and height
    h = torch.sqrt(area / aspect).clamp(max=1.0)
    cx = (2 * u[:, 2] - 1) * (1 - w)  # centre in [-1, 1] coordinates, crop inside the image
    cy = (2 * u[:, 3] - 1) * (1 - h)
    flip = torch.where(torch.rand(b, device=dev, generator=generator) < flip_p, -1.0, 1.0)
    theta = torch.zeros(b, 2, 3, device=dev)
    theta[:, 0, 0], theta[:, 0, 2] = w * flip, cx
    theta[:, 1, 1], theta[:, 1, 2] = h, cy
    grid = F.affine_grid(theta, [b, images.shape[1], size, size], align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def color_jitter(
    images: torch.Tensor, brightness: float, contrast: float, p: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Brightness then contrast factors ~ U(1 - s, 1 + s) per image, applied with probability `p`
    (torchvision's ColorJitter semantics for these two, in a fixed order); values stay in [0, 1]."""
    b, dev = len(images), images.device
    u = torch.rand(b, 3, device=dev, generator=generator)
    on = (u[:, 2] < p).float()
    bright = 1 + on * brightness * (2 * u[:, 0] - 1)
    contr = 1 + on * contrast * (2 * u[:, 1] - 1)
    x = (images * bright.view(b, 1, 1, 1)).clamp(0, 1)
    mean = grayscale(x).mean(dim=(1, 2, 3), keepdim=True)
    return ((x - mean) * contr.view(b, 1, 1, 1) + mean).clamp(0, 1)


def grayscale(images: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) -> (B, 1, H, W) luma (ITU-R 601-2, as PIL and torchvision)."""
    weights = torch.tensor(_LUMA, device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
    return (images * weights).sum(dim=1, keepdim=True)


def random_grayscale(images: torch.Tensor, p: float, generator: torch.Generator | None = None) -> torch.Tensor:
    pick = (torch.rand(len(images), device=images.device, generator=generator) < p).view(-1, 1, 1, 1)
    return torch.where(pick, grayscale(images).expand_as(images), images)


def normalize(images: torch.Tensor) -> torch.Tensor:
    """[0, 1] RGB -> ImageNet-normalised, as `semifer.data.views.Normalize`."""
    mean = torch.tensor(IMAGENET_MEAN, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=images.device).view(1, 3, 1, 1)
    return (images - mean) / std


class ContrastiveBatchView:
    """SimCLR's view of every image in a uint8 batch: random resized crop + flip, colour jitter with
    probability `jitter_p`, random grayscale, ImageNet normalisation. `bgr_quirk` reverses the channels
    first, as `Normalize` does."""

    def __init__(
        self,
        size: int,
        scale: tuple[float, float] = (0.2, 1.0),
        jitter: float = 0.4,
        jitter_p: float = 0.8,
        grayscale_p: float = 0.2,
        bgr_quirk: bool = False,
    ):
        self.size, self.scale = size, scale
        self.jitter, self.jitter_p, self.grayscale_p, self.bgr_quirk = jitter, jitter_p, grayscale_p, bgr_quirk

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        x = images.float().div_(255.0)
        if self.bgr_quirk:
            x = x.flip(1)
        x = random_resized_crop_flip(x, self.size, self.scale, generator=generator)
        x = color_jitter(x, self.jitter, self.jitter, self.jitter_p, generator=generator)
        return normalize(random_grayscale(x, self.grayscale_p, generator=generator))
