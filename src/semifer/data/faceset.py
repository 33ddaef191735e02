"""`FaceSet`: one parsed dataset split in the canonical label space, whatever its on-disk format was."""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..errors import DataError
from ..labels import CANONICAL

UNLABELED = -1
EXIF_ORIENTATION = 0x0112
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})


def read_image(path: str | Path) -> np.ndarray:
    """An image file as RGB uint8 (H, W, 3) pixels (see `rgb_pixels`): the one decoder that training and
    `semifer predict` share, so a model never sees pixels decoded otherwise than those it learnt on.

    Anything that would hang or exhaust memory is a DataError instead: a FIFO, socket or device (opened
    without blocking, then refused), or an image above `PIL.Image.MAX_IMAGE_PIXELS` (checked on the header,
    before any pixel is decoded)."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise DataError(path, f"cannot read image ({exc.strerror or exc})", fix="check the path") from None
    with open(fd, "rb") as stream:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise DataError(path, "not a regular file (a FIFO, socket or device)", fix="give image files")
        try:
            with Image.open(stream) as handle:
                pixels = handle.size[0] * handle.size[1]
                if Image.MAX_IMAGE_PIXELS is not None and pixels > Image.MAX_IMAGE_PIXELS:
                    raise _too_large(path, pixels)
                return rgb_pixels(handle)
        except Image.DecompressionBombError as exc:
            found = re.search(r"\((\d+) pixels\)", str(exc))
            raise _too_large(path, int(found.group(1)) if found else None) from None
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as exc:
            raise DataError(path, f"cannot read image ({exc})", fix="replace or remove the file") from None


def _too_large(path: Path, pixels: int | None) -> DataError:
    size = f"{pixels:,} pixels" if pixels else "too many pixels"
    return DataError(
        path,
        f"image too large to decode safely ({size}; the limit is {Image.MAX_IMAGE_PIXELS:,})",
        fix="downscale it, or raise PIL.Image.MAX_IMAGE_PIXELS for files you trust",
    )


def rgb_pixels(image: Image.Image) -> np.ndarray:
    """RGB uint8 (H, W, 3) pixels of a PIL image of any mode, turned upright by its EXIF orientation.

    PIL's own `convert("RGB")` clips wide greys, so a 16-bit photo turns mostly white: 16/32-bit grey (I;16,
    I) is scaled from 0..65535 instead, float grey (F) from 0..1 (or clipped to 0..255 when larger).
    Transparent pixels are shown over white, as a viewer shows them, not as whatever colour is stored under
    them."""
    upright = _UPRIGHT.get(image.getexif().get(EXIF_ORIENTATION, 1))
    if upright is not None:
        image = image.transpose(upright)
    if image.mode == "F" or image.mode.startswith("I"):
        return np.repeat(wide_to_uint8(np.asarray(image))[:, :, None], 3, axis=2)
    if image.mode in _ALPHA_MODES or "transparency" in image.info:
        rgba = np.asarray(image.convert("RGBA"), dtype=np.float32)
        alpha = rgba[:, :, 3:] / 255.0
        return np.round(rgba[:, :, :3] * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)
    return np.array(image if image.mode == "RGB" else image.convert("RGB"))


def wide_to_uint8(values: np.ndarray) -> np.ndarray:
    """Pixel values of a wider type as uint8: floats in [0, 1] scaled to 0-255 (others clipped, NaN 0), 16-bit
    values scaled from 0-65535 (a PIL 16-bit grey image or a uint16 array), so no value wraps around."""
    if values.dtype.kind == "f":
        values = np.nan_to_num(values.astype(np.float32), nan=0.0)
        scale = 255.0 if values.max(initial=0.0) <= 1.0 else 1.0
        return np.clip(values * scale, 0, 255).round().astype(np.uint8)
    wide = np.clip(values, 0, 65535).astype(np.uint32)
    return ((wide * 255 + 32767) // 65535).astype(np.uint8)


@dataclass
class FaceSet:
    """Face images with canonical labels (index into `CANONICAL`, -1 when unlabeled).

    Images live either in memory (`pixels`, uint8 of shape (N, H, W) or (N, H, W, 3), as FER2013's CSV
    gives them) or on disk (`paths`). `ids` are stable per-sample names that split files refer to.
    """

    name: str
    ids: list[str]
    labels: np.ndarray
    num_classes: int = 7
    pixels: np.ndarray | None = None
    paths: list[Path] | None = None
    soft_labels: np.ndarray | None = None
    source: str = ""
    dropped: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, dtype=np.int64)
        n = len(self.ids)
        held = self._held()
        if held != n or len(self.labels) != n:
            raise ValueError(f"{self.name}: {n} ids, {len(self.labels)} labels, {held} images")
        if self.num_classes not in (7, 8):
            raise ValueError(f"{self.name}: num_classes must be 7 or 8, not {self.num_classes}")
        if n and self.labels.max(initial=UNLABELED) >= self.num_classes:
            raise ValueError(f"{self.name}: a label is outside the {self.num_classes}-class space")

    def __len__(self) -> int:
        return len(self.ids)

    def _held(self) -> int:
        """How many images the storage holds, after checking it is well formed."""
        if (self.pixels is None) == (self.paths is None):
            raise ValueError("a FaceSet holds exactly one of `pixels` or `paths`")
        return len(self.pixels) if self.pixels is not None else len(self.paths or [])

    def _storage_rows(self, idx: np.ndarray) -> dict[str, Any]:
        """The storage fields of the rows `idx`, for `subset`."""
        return {
            "pixels": None if self.pixels is None else self.pixels[idx],
            "paths": None if self.paths is None else [self.paths[i] for i in idx],
        }

    @property
    def classes(self) -> tuple[str, ...]:
        return CANONICAL[: self.num_classes]

    @property
    def is_labeled(self) -> bool:
        return bool(len(self)) and bool((self.labels >= 0).all())

    def load(self, index: int) -> torch.Tensor:
        """Image `index` as a uint8 tensor of shape (3, H, W); grayscale is repeated to 3 channels."""
        if self.pixels is not None:
            image = torch.from_numpy(np.ascontiguousarray(self.pixels[index]))
            image = image.unsqueeze(0) if image.ndim == 2 else image.permute(2, 0, 1)
        else:
            image = torch.from_numpy(read_image(self.paths[index])).permute(2, 0, 1)  # type: ignore[index]
        return image.expand(3, -1, -1) if image.shape[0] == 1 else image

    def subset(self, indices: Sequence[int] | np.ndarray, name: str | None = None) -> FaceSet:
        """A new FaceSet of the given rows (in that order)."""
        idx = np.asarray(indices, dtype=np.int64)
        return replace(
            self,
            name=name or self.name,
            ids=[self.ids[i] for i in idx],
            labels=self.labels[idx],
            soft_labels=None if self.soft_labels is None else self.soft_labels[idx],
            dropped={},
            **self._storage_rows(idx),
        )

    def without_labels(self) -> FaceSet:
        """The same images with every label hidden (for unlabeled pools)."""
        return replace(self, labels=np.full(len(self), UNLABELED, dtype=np.int64), soft_labels=None)

    def class_counts(self) -> dict[str, int]:
        counts = np.bincount(self.labels[self.labels >= 0], minlength=self.num_classes)
        return {name: int(c) for name, c in zip(self.classes, counts, strict=True)}

    def require_nonempty(self) -> FaceSet:
        if not len(self):
            raise DataError(
                self.source or self.name,
                "this split holds no images",
                fix="check the split name and that the files are where the format expects them",
            )
        return self


@dataclass
class MixedFaceSet(FaceSet):
    """A FaceSet over other FaceSets of any storage, e.g. FER2013's in-memory pixels joined with a folder of
    face-recognition images: sample i is row `row[i]` of `parts[part[i]]` and is loaded by that part.
    `pixels` and `paths` stay None; everything else behaves as in any FaceSet.
    """

    parts: list[FaceSet] = field(default_factory=list)
    part: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    row: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def _held(self) -> int:
        if self.pixels is not None or self.paths is not None:
            raise ValueError("a MixedFaceSet keeps its images in `parts`, not in `pixels` or `paths`")
        self.part, self.row = np.asarray(self.part, dtype=np.int64), np.asarray(self.row, dtype=np.int64)
        if len(self.part) != len(self.row):
            raise ValueError(f"{self.name}: {len(self.part)} part indices but {len(self.row)} rows")
        return len(self.part)

    def _storage_rows(self, idx: np.ndarray) -> dict[str, Any]:
        return {"part": self.part[idx], "row": self.row[idx]}

    def load(self, index: int) -> torch.Tensor:
        return self.parts[int(self.part[index])].load(int(self.row[index]))


def concat(sets: Sequence[FaceSet], name: str) -> FaceSet:
    """Join several FaceSets (e.g. a FER pool and unlabeled face-recognition images) into one.

    Sets of one kind stay one array or one path list; pixels of different sizes or pixels with files
    become a `MixedFaceSet` that loads each sample from the set it came from.
    """
    if not sets:
        raise ValueError("nothing to concatenate")
    num_classes = max(s.num_classes for s in sets)
    ids = [f"{s.name}/{i}" for s in sets for i in s.ids]
    labels = np.concatenate([s.labels for s in sets])
    if all(s.paths is not None for s in sets):
        return FaceSet(name, ids, labels, num_classes, paths=[p for s in sets for p in s.paths or []])
    shapes = {s.pixels.shape[1:] for s in sets if s.pixels is not None}
    if all(s.pixels is not None for s in sets) and len(shapes) == 1:
        return FaceSet(name, ids, labels, num_classes, pixels=np.concatenate([s.pixels for s in sets]))
    sizes = [len(s) for s in sets]
    return MixedFaceSet(
        name,
        ids,
        labels,
        num_classes,
        parts=list(sets),
        part=np.repeat(np.arange(len(sets)), sizes),
        row=np.concatenate([np.arange(k) for k in sizes]),
    )
