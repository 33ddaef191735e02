"""RAF-DB basic: `EmoLabel/list_patition_label.txt` (name and label 1..7) over aligned or original images."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataError
from .faceset import FaceSet
from .parsing import choose_split, label_table, require_path

RAFDB_CLASSES = ("surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral")
SPLITS = {"train": "train", "training": "train", "test": "test", "testing": "test"}
LABEL_FILES = ("EmoLabel/list_patition_label.txt", "EmoLabel/list_partition_label.txt")


def _image_path(root: Path, name: str, images: str) -> Path:
    if images == "aligned":
        return root / "Image" / "aligned" / f"{Path(name).stem}_aligned.jpg"
    return root / "Image" / "original" / name


def _read_labels(path: Path) -> list[tuple[str, int]]:
    entries = []
    for number, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        label = parts[1] if len(parts) == 2 else ""
        if not (label.isdigit() and 1 <= int(label) <= len(RAFDB_CLASSES)):
            raise DataError(
                path,
                f"expected '<image name> <label 1..7>', got {line.strip()!r}",
                line=number,
                fix="RAF-DB labels are 1..7 = " + ", ".join(RAFDB_CLASSES),
            )
        if parts[0].split("_")[0] not in SPLITS.values():
            raise DataError(
                path,
                f"image name {parts[0]!r} starts with neither train_ nor test_",
                line=number,
                fix="RAF-DB names its images train_NNNNN.jpg / test_NNNN.jpg",
            )
        entries.append((parts[0], int(label) - 1))
    return entries


def load_rafdb(path: str | Path, split: str | None = None, images: str = "aligned") -> FaceSet:
    """RAF-DB's basic emotion set (7 classes); the split is the `train_`/`test_` prefix of image names."""
    root = require_path(path, "RAF-DB folder", folder=True)
    if images not in ("aligned", "original"):
        raise DataError(root, f"images must be 'aligned' or 'original', not {images!r}")
    chosen = choose_split(split, SPLITS, root)
    label_file = next((root / f for f in LABEL_FILES if (root / f).is_file()), root / LABEL_FILES[0])
    entries = [
        (name, code)
        for name, code in _read_labels(require_path(label_file, "RAF-DB label list"))
        if chosen is None or name.startswith(f"{chosen}_")
    ]
    paths = [_image_path(root, name, images) for name, _ in entries]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise DataError(
            missing[0],
            f"image in {label_file.name} not found ({len(missing)} missing in all)",
            fix=f"restore the missing files under Image/{images}/"
            + (", or pass images=original if you have only those" if images == "aligned" else ""),
        )
    codes = np.array([code for _, code in entries], dtype=np.int64)
    name = "rafdb" if chosen is None else f"rafdb-{chosen}"
    return FaceSet(
        name, [n for n, _ in entries], label_table(RAFDB_CLASSES, 7)[codes], 7, paths=paths, source=str(root)
    ).require_nonempty()
