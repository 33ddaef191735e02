"""Training views of one face: weak (flip + padded crop), strong (RandAugment + Cutout + weak), test.

All views work on uint8 (3, H, W) tensors and end with ImageNet normalisation. Which code each follows:
- weak: Ada-CM's code (hangyu94/Ada-CM): resize, RandomCrop with 8 px padding at 224 px applied with
  probability `crop_p` (Ada-CM 0.5; FixMatch's code applies its padded crop always, `crop_p` = 1), flip.
- strong: Ada-CM's code, which takes FixMatch's RandAugment (kekmodel/FixMatch-pytorch's
  `fixmatch_augment_pool`): 3 ops drawn with replacement from 14, each at a uniformly random magnitude
  (the "m" argument is unused), then an always-on Cutout (side U(0, 0.5) * width, grey fill), then the
  weak pipeline. Op ranges: Brightness / Color / Contrast / Sharpness factor in [0.05, 0.95], Posterize
  4-8 bits, Rotate +-30 deg, ShearX/Y +-0.3, TranslateX/Y +-0.3 of the size, Solarize threshold 255-0.
  FixMatch, FlexMatch, ReMixMatch, DTA+SNL, DTM and Bridging stage 2 use this same strong view.
- randaugment_m9: Bridging the Gaps' stage-1 labeled view, timm's `rand-m9-mstd0.5-inc1` (the MAE
  fine-tuning RandAugment of the official SSFER code) then the weak pipeline; see `TimmRandAugment`.
- test: resize and normalise.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from PIL import Image, ImageOps
from torchvision.transforms import InterpolationMode, v2
from torchvision.transforms.v2 import functional as TF

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CUTOUT_FILL = (125, 123, 114)

View = Callable[[torch.Tensor], torch.Tensor]


@contextmanager
def seeded_augmentation(seed: int | None, restore: bool = True) -> Iterator[None]:
    """Views draw from Python's `random` and torch's CPU generator; inside, both start from `seed` (None: as
    they are). With `restore` both are put back after, so the caller's random streams (dropout, mixup) are
    untouched; a loader worker, where nothing else draws from them, skips that copy."""
    if seed is None:
        yield
        return
    python_state, torch_state = (random.getstate(), torch.default_generator.get_state()) if restore else (None, None)
    random.seed(seed)
    torch.default_generator.manual_seed(seed)
    try:
        yield
    finally:
        if restore:
            random.setstate(python_state)
            torch.default_generator.set_state(torch_state)


def _shear(img: torch.Tensor, v: float, axis: int) -> torch.Tensor:
    deg = math.degrees(math.atan(v))
    return TF.affine(
        img,
        angle=0.0,
        translate=[0, 0],
        scale=1.0,
        shear=[deg, 0.0] if axis == 0 else [0.0, deg],
        fill=list(CUTOUT_FILL),
    )


def _translate(img: torch.Tensor, v: float, axis: int) -> torch.Tensor:
    shift = round(v * img.shape[-1 if axis == 0 else -2])
    return TF.affine(
        img,
        angle=0.0,
        translate=[shift, 0] if axis == 0 else [0, shift],
        scale=1.0,
        shear=[0.0, 0.0],
        fill=list(CUTOUT_FILL),
    )


@dataclass(frozen=True)
class Op:
    """One RandAugment op: magnitude m in [0, 1] maps to the parameter low + (high - low) * m, with a random
    sign when `signed` (FixMatch's `fixmatch_augment_pool`: v * max_v + bias, random sign for geometry)."""

    apply: Callable[[torch.Tensor, float], torch.Tensor]
    low: float = 0.0
    high: float = 0.0
    signed: bool = False

    def parameter(self, m: float) -> float:
        v = self.low + (self.high - self.low) * m
        return v * random.choice((-1, 1)) if self.signed else v

    def __call__(self, img: torch.Tensor, m: float) -> torch.Tensor:
        return self.apply(img, self.parameter(m))


# FixMatch's RandAugment pool as Ada-CM's code uses it. The four enhance ops draw a PIL enhance factor in
# [0.05, 0.95] (bias 0.05, max 0.9): always darker, duller, lower-contrast, softer, never the opposite.
RANDAUGMENT_OPS: dict[str, Op] = {
    "autocontrast": Op(lambda x, v: TF.autocontrast(x)),
    "brightness": Op(TF.adjust_brightness, 0.05, 0.95),
    "color": Op(TF.adjust_saturation, 0.05, 0.95),
    "contrast": Op(TF.adjust_contrast, 0.05, 0.95),
    "equalize": Op(lambda x, v: TF.equalize(x)),
    "identity": Op(lambda x, v: x),
    "posterize": Op(lambda x, v: TF.posterize(x, round(v)), 8, 4),
    "rotate": Op(lambda x, v: TF.rotate(x, v, fill=list(CUTOUT_FILL)), 0, 30, signed=True),
    "sharpness": Op(TF.adjust_sharpness, 0.05, 0.95),
    "shear_x": Op(lambda x, v: _shear(x, v, 0), 0, 0.3, signed=True),
    "shear_y": Op(lambda x, v: _shear(x, v, 1), 0, 0.3, signed=True),
    "solarize": Op(TF.solarize, 255, 0),
    "translate_x": Op(lambda x, v: _translate(x, v, 0), 0, 0.3, signed=True),
    "translate_y": Op(lambda x, v: _translate(x, v, 1), 0, 0.3, signed=True),
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
    """Resize, padded random crop applied with probability `crop_p`, horizontal flip.

    `crop_p` = 0.5 is Ada-CM's weak view, 1.0 FixMatch's (its padded crop is always on); methods declare it
    through `Method.view_options`. The default padding scales Ada-CM's 8 px at 224 px to the image size
    (at least 2 px).
    """
    if not 0.0 <= crop_p <= 1.0:
        raise ValueError(f"crop_p must be in [0, 1], got {crop_p}")
    pad = max(2, round(8 * size / 224)) if crop_padding is None else crop_padding
    return v2.Compose(
        [
            resize_view(size),
            v2.RandomApply([v2.RandomCrop(size, padding=pad)], p=crop_p),
            v2.RandomHorizontalFlip(),
            Normalize(bgr_quirk),
        ]
    )


def strong_view(
    size: int,
    n_ops: int = 3,
    cutout: float = 0.5,
    crop_padding: int | None = None,
    crop_p: float = 0.5,
    bgr_quirk: bool = False,
) -> View:
    return v2.Compose([RandAugmentFixMatch(n_ops), Cutout(cutout), weak_view(size, crop_padding, crop_p, bgr_quirk)])


def posterize_any_bits(img: Image.Image, bits_to_keep: int, **_: object) -> Image.Image:
    """timm's posterize, with 0 bits kept meaning a black image as Pillow < 13 computed it: at magnitude 10,
    "inc1" Posterize keeps 4 - 4 = 0 bits, which Pillow 13 rejects with a ValueError."""
    if bits_to_keep >= 8:
        return img
    if bits_to_keep <= 0:
        return img.point(lambda _: 0)
    return ImageOps.posterize(img, bits_to_keep)


class TimmRandAugment:
    """timm's RandAugment from a config string, on the uint8 tensor (through PIL, which timm's ops need).

    "rand-m9-mstd0.5-inc1" is MAE's fine-tuning augmentation, which Bridging the Gaps' official code uses:
    2 ops from timm's 15 "increasing" ops, each applied with probability 0.5 at magnitude N(9, 0.5) of 10.
    torchvision's `v2.RandAugment(num_ops=2, magnitude=9)` is not the same: its 9 is of 31 bins (a third of
    the range), its ops are always applied, its pool has Identity but no Invert / SolarizeAdd, and it has
    no magnitude noise.
    """

    def __init__(self, config: str, size: int):
        from timm.data.auto_augment import rand_augment_transform

        self.transform = rand_augment_transform(config, {"translate_const": int(size * 0.45), "img_mean": CUTOUT_FILL})
        for op in self.transform.ops:
            if op.name.startswith("Posterize"):
                op.aug_fn = posterize_any_bits

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        return TF.pil_to_tensor(self.transform(TF.to_pil_image(img)))


def randaugment_m9_view(
    size: int, crop_padding: int | None = None, crop_p: float = 0.5, bgr_quirk: bool = False
) -> View:
    """timm's rand-m9-mstd0.5-inc1, then the weak pipeline (Bridging the Gaps' stage-1 labeled view)."""
    return v2.Compose([TimmRandAugment("rand-m9-mstd0.5-inc1", size), weak_view(size, crop_padding, crop_p, bgr_quirk)])


VIEWS: dict[str, Callable[..., View]] = {
    "weak": weak_view,
    "strong": strong_view,
    "randaugment_m9": randaugment_m9_view,
}


def build_view(kind: str, size: int, bgr_quirk: bool = False, **options: object) -> View:
    """A view by name: 'weak', 'strong', 'randaugment_m9' or 'test'; `options` go to the training views."""
    if kind == "test":
        return test_view(size, bgr_quirk)
    if kind not in VIEWS:
        raise ValueError(f"unknown view {kind!r}: use {', '.join(VIEWS)} or test")
    return VIEWS[kind](size, bgr_quirk=bgr_quirk, **options)
