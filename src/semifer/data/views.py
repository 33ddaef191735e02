"""Training views of one face: weak (flip + padded crop), strong (RandAugment + Cutout + weak), test.

All views work on uint8 (3, H, W) tensors and end with ImageNet normalisation. The strong view follows
Ada-CM's code, which follows FixMatch: 3 ops drawn with replacement from 14, each at a uniformly random
magnitude, then an always-on Cutout, then the weak pipeline.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import torch
from torchvision.transforms import InterpolationMode, v2
from torchvision.transforms.v2 import functional as TF

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CUTOUT_FILL = (125, 123, 114)

View = Callable[[torch.Tensor], torch.Tensor]


def _shear(img: torch.Tensor, m: float, axis: int) -> torch.Tensor:
    deg = math.degrees(math.atan(0.3 * m * random.choice((-1, 1))))
    return TF.affine(img, angle=0.0, translate=[0, 0], scale=1.0, shear=[deg, 0.0] if axis == 0 else [0.0, deg],
                     fill=list(CUTOUT_FILL))


def _translate(img: torch.Tensor, m: float, axis: int) -> torch.Tensor:
    shift = round(0.3 * m * img.shape[-1 if axis == 0 else -2]) * random.choice((-1, 1))
    return TF.affine(img, angle=0.0, translate=[shift, 0] if axis == 0 else [0, shift], scale=1.0, shear=[0.0, 0.0],
                     fill=list(CUTOUT_FILL))


def _signed(m: float) -> float:
    return 1.0 + 0.95 * m * random.choice((-1, 1))


RANDAUGMENT_OPS: dict[str, Callable[[torch.Tensor, float], torch.Tensor]] = {
    "autocontrast": lambda x, m: TF.autocontrast(x),
    "brightness": lambda x, m: TF.adjust_brightness(x, _signed(m)),
    "color": lambda x, m: TF.adjust_saturation(x, _signed(m)),
    "contrast": lambda x, m: TF.adjust_contrast(x, _signed(m)),
    "equalize": lambda x, m: TF.equalize(x),
    "identity": lambda x, m: x,
    "posterize": lambda x, m: TF.posterize(x, 8 - round(4 * m)),
    "rotate": lambda x, m: TF.rotate(x, 30.0 * m * random.choice((-1, 1)), fill=list(CUTOUT_FILL)),
    "sharpness": lambda x, m: TF.adjust_sharpness(x, _signed(m)),
    "shear_x": lambda x, m: _shear(x, m, 0),
    "shear_y": lambda x, m: _shear(x, m, 1),
    "solarize": lambda x, m: TF.solarize(x, 255.0 * (1.0 - m)),
    "translate_x": lambda x, m: _translate(x, m, 0),
    "translate_y": lambda x, m: _translate(x, m, 1),
}


class RandAugmentFixMatch:
    """`n` ops drawn with replacement from the 14 above, each at magnitude ~ U(0, 1) of its range."""

    def __init__(self, n: int = 3):
        self.n = n
        self.names = list(RANDAUGMENT_OPS)

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        for name in random.choices(self.names, k=self.n):
            img = RANDAUGMENT_OPS[name](img, random.random())
        return img


class Cutout:
    """Paint one square of side U(0, max_frac) * width, centred uniformly, with a grey fill (always on)."""

    def __init__(self, max_frac: float = 0.5):
        self.max_frac = max_frac

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        h, w = img.shape[-2:]
        side = int(random.uniform(0, self.max_frac) * w)
        if side == 0:
            return img
        cy, cx = random.randrange(h), random.randrange(w)
        y0, y1 = max(0, cy - side // 2), min(h, cy + side - side // 2)
        x0, x1 = max(0, cx - side // 2), min(w, cx + side - side // 2)
        img = img.clone()
        img[:, y0:y1, x0:x1] = torch.tensor(CUTOUT_FILL, dtype=img.dtype).view(3, 1, 1)
        return img


class Normalize:
    """uint8 -> float, optionally reversing channels first (Ada-CM's BGR-read-as-RGB quirk), then ImageNet stats.

    Works on one image (3, H, W) or a batch (B, 3, H, W) on any device, so exported models run it in-graph.
    """

    def __init__(self, bgr_quirk: bool = False):
        self.bgr_quirk = bgr_quirk
        self.mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
        self.std = torch.tensor(IMAGENET_STD).view(3, 1, 1)

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        if self.bgr_quirk:
            img = img.flip(-3)
        mean, std = self.mean.to(img.device), self.std.to(img.device)
        return (img.float() / 255.0 - mean) / std


def resize_view(size: int) -> v2.Transform:
    """uint8 (3, H, W) -> uint8 (3, size, size), antialiased: the test view before normalisation, which
    `semifer predict` and exported models run inside the network instead."""
    return v2.Resize((size, size), interpolation=InterpolationMode.BILINEAR, antialias=True)


def test_view(size: int, bgr_quirk: bool = False) -> View:
    return v2.Compose([resize_view(size), Normalize(bgr_quirk)])


def weak_view(size: int, crop_padding: int | None = None, crop_p: float = 0.5, bgr_quirk: bool = False) -> View:
    """Resize, padded random crop applied with probability `crop_p`, horizontal flip (Ada-CM's weak view).

    The default padding scales Ada-CM's 8 px at 224 px to the image size (at least 2 px).
    """
    pad = max(2, round(8 * size / 224)) if crop_padding is None else crop_padding
    return v2.Compose([
        resize_view(size),
        v2.RandomApply([v2.RandomCrop(size, padding=pad)], p=crop_p),
        v2.RandomHorizontalFlip(),
        Normalize(bgr_quirk),
    ])


def strong_view(size: int, n_ops: int = 3, cutout: float = 0.5, crop_padding: int | None = None,
                bgr_quirk: bool = False) -> View:
    return v2.Compose([RandAugmentFixMatch(n_ops), Cutout(cutout), weak_view(size, crop_padding, bgr_quirk=bgr_quirk)])


def build_view(kind: str, size: int, bgr_quirk: bool = False, **options: object) -> View:
    """A view by name: 'weak', 'strong' or 'test'."""
    if kind == "weak":
        return weak_view(size, bgr_quirk=bgr_quirk, **options)  # type: ignore[arg-type]
    if kind == "strong":
        return strong_view(size, bgr_quirk=bgr_quirk, **options)  # type: ignore[arg-type]
    if kind == "test":
        return test_view(size, bgr_quirk)
    raise ValueError(f"unknown view {kind!r}: use weak, strong or test")
