"""`FaceSet`: one parsed dataset split in the canonical label space, whatever its on-disk format was."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torchvision.transforms.v2.functional import pil_to_tensor

from ..errors import DataError
from ..labels import CANONICAL

UNLABELED = -1


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
        return {"pixels": None if self.pixels is None else self.pixels[idx],
                "paths": None if self.paths is None else [self.paths[i] for i in idx]}

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
            path = self.paths[index]  # type: ignore[index]
            try:
                with Image.open(path) as handle:
                    image = pil_to_tensor(handle.convert("RGB"))
            except (UnidentifiedImageError, OSError, ValueError) as exc:
                raise DataError(path, f"cannot read image ({exc})", fix="replace or remove the file") from None
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
            raise DataError(self.source or self.name, "this split holds no images",
                            fix="check the split name and that the files are where the format expects them")
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
    return MixedFaceSet(name, ids, labels, num_classes, parts=list(sets),
                        part=np.repeat(np.arange(len(sets)), sizes),
                        row=np.concatenate([np.arange(k) for k in sizes]))
