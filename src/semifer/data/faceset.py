"""`FaceSet`: one parsed dataset split in the canonical label space, whatever its on-disk format was."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

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
        if (self.pixels is None) == (self.paths is None):
            raise ValueError("a FaceSet holds exactly one of `pixels` or `paths`")
        held = len(self.pixels) if self.pixels is not None else len(self.paths or [])
        if held != n or len(self.labels) != n:
            raise ValueError(f"{self.name}: {n} ids, {len(self.labels)} labels, {held} images")
        if self.num_classes not in (7, 8):
            raise ValueError(f"{self.name}: num_classes must be 7 or 8, not {self.num_classes}")
        if n and self.labels.max(initial=UNLABELED) >= self.num_classes:
            raise ValueError(f"{self.name}: a label is outside the {self.num_classes}-class space")

    def __len__(self) -> int:
        return len(self.ids)

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
                    image = torch.from_numpy(np.asarray(handle.convert("RGB"))).permute(2, 0, 1)
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
            pixels=None if self.pixels is None else self.pixels[idx],
            paths=None if self.paths is None else [self.paths[i] for i in idx],
            soft_labels=None if self.soft_labels is None else self.soft_labels[idx],
            dropped={},
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


def concat(sets: Sequence[FaceSet], name: str) -> FaceSet:
    """Join several FaceSets (e.g. a FER pool and unlabeled face-recognition images) into one."""
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
    raise DataError(name, "cannot mix in-memory images of different sizes with image files in one pool",
                    fix="use pools of one kind, or convert the CSV dataset to image files")
