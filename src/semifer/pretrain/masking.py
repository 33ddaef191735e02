"""Patch masks and the masked-patch reconstruction loss of masked image modelling (MAE, He et al., CVPR 2022).

Images are cut into a grid of non-overlapping `patch` x `patch` squares. A mask marks, per image, exactly
round(ratio * N) of the N patches (uniformly at random, MAE's per-sample shuffling); the encoder sees the
image with those patches set to zero after normalisation (the dataset mean colour), and the loss is the
pixel MSE on the masked patches only, so nothing is gained by copying the visible pixels through.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


def patchify(images: torch.Tensor, patch: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, N, patch * patch * C), patches in row-major order over the (H/p, W/p) grid."""
    b, c, h, w = images.shape
    if h % patch or w % patch:
        raise ValueError(f"image size {h}x{w} is not a multiple of the patch size {patch}")
    x = images.reshape(b, c, h // patch, patch, w // patch, patch)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(b, (h // patch) * (w // patch), patch * patch * c)


def unpatchify(patches: torch.Tensor, patch: int, height: int, width: int) -> torch.Tensor:
    """Inverse of `patchify`: (B, N, patch * patch * C) -> (B, C, height, width)."""
    b, _, d = patches.shape
    c = d // (patch * patch)
    x = patches.reshape(b, height // patch, width // patch, patch, patch, c)
    return x.permute(0, 5, 1, 3, 2, 4).reshape(b, c, height, width)


def masked_count(num_patches: int, ratio: float) -> int:
    """How many of `num_patches` patches a mask of `ratio` hides; at least one stays visible and one hidden."""
    count = round(ratio * num_patches)
    if not 0 < count < num_patches:
        raise ValueError(f"mask ratio {ratio} hides {count} of {num_patches} patches; it must hide some, not all")
    return count


def random_patch_mask(
    batch: int,
    num_patches: int,
    ratio: float,
    device: torch.device | str = "cpu",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """(batch, num_patches) float mask, 1 = hidden: exactly `masked_count` random patches per image, drawn as
    MAE's `random_masking` does (argsort of uniform noise, the first N - count patches kept)."""
    keep = num_patches - masked_count(num_patches, ratio)
    noise = torch.rand(batch, num_patches, generator=generator, device=device)
    order = noise.argsort(dim=1)
    mask = torch.ones(batch, num_patches, device=device)
    return mask.scatter_(1, order[:, :keep], 0.0)


def pixel_mask(mask: torch.Tensor, patch: int, height: int, width: int) -> torch.Tensor:
    """(B, N) patch mask -> (B, 1, height, width) pixel mask."""
    grid = mask.reshape(len(mask), 1, height // patch, width // patch)
    return F.interpolate(grid, scale_factor=patch, mode="nearest")


def hide_patches(images: torch.Tensor, mask: torch.Tensor, patch: int) -> torch.Tensor:
    """The encoder's input: hidden patches set to 0, the mean colour of normalised images."""
    return images * (1.0 - pixel_mask(mask, patch, images.shape[-2], images.shape[-1]).to(images.dtype))


def patch_targets(images: torch.Tensor, patch: int, norm_pix: bool, eps: float = 1e-6) -> torch.Tensor:
    """Per-patch pixel targets; `norm_pix` standardises each patch by its own mean and variance
    (MAE's norm_pix_loss, which the MAE paper finds gives sharper features)."""
    target = patchify(images.float(), patch)
    if norm_pix:
        mean, var = target.mean(dim=-1, keepdim=True), target.var(dim=-1, keepdim=True)
        target = (target - mean) / (var + eps).sqrt()
    return target


def masked_patch_loss(
    prediction: torch.Tensor, images: torch.Tensor, mask: torch.Tensor, patch: int, norm_pix: bool = False
) -> torch.Tensor:
    """Mean squared error over the pixels of the hidden patches only (MAE's loss).

    `prediction` and `images` are (B, C, H, W); the per-patch MSE is averaged over the patches with
    mask = 1, so predictions for visible patches have no effect on the value or the gradient.
    """
    error = (patchify(prediction.float(), patch) - patch_targets(images, patch, norm_pix)).pow(2).mean(dim=-1)
    return (error * mask).sum() / mask.sum()
