"""Image-folder datasets (class-per-folder trees such as CK+48 and SFEW 2.0, unlabeled pools), plus the
small helpers every format loader shares: image scanning, split names and by-name label mapping."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..labels import CANONICAL, canonical_index, canonical_name
from .faceset import UNLABELED, FaceSet

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})


def is_image(name: str) -> bool:
    """An image file name by its extension (any case); hidden files such as macOS `._x.jpg` are not."""
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def find_images(root: Path, recursive: bool = True) -> list[Path]:
    """Image files under `root`, sorted by relative path so ids and order never depend on the file system."""
    if not recursive:
        return sorted(p for p in root.iterdir() if p.is_file() and is_image(p.name))
    found = []
    for folder, dirs, files in os.walk(root, followlinks=True):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found += [Path(folder, f) for f in files if is_image(f)]
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def require_path(path: str | Path, what: str, folder: bool = False) -> Path:
    """`path` as a Path, or a DataError saying which part of the dataset layout is missing."""
    path = Path(path)
    if not (path.is_dir() if folder else path.is_file()):
        raise DataError(path, f"{what} not found", fix="check the dataset path and that the dataset is whole")
    return path


def choose_split(split: str | None, aliases: Mapping[str, str], source: str | Path) -> str | None:
    """The dataset's own split name for a user's (case-insensitive) split name; None selects every sample."""
    if split is None:
        return None
    key = str(split).strip().lower()
    if key not in aliases:
        raise DataError(source, f"unknown split {split!r}", fix=f"use one of {', '.join(sorted(aliases))}")
    return aliases[key]


def class_space(classes: object, source: str | Path) -> int:
    """Validated number of canonical classes (7 drops contempt, 8 keeps it)."""
    if classes not in (7, 8):
        raise DataError(source, f"classes must be 7 or 8, not {classes!r}",
                        fix="use classes=8 to keep contempt, classes=7 to drop it")
    return int(classes)  # type: ignore[call-overload]


def drop_key(name: str) -> str:
    """Key under which samples of a class outside the chosen space are counted in FaceSet.dropped."""
    return canonical_name(name) or re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def label_table(native: Sequence[str], num_classes: int) -> np.ndarray:
    """Canonical index of each native class code, by class name; -1 where the class is not kept."""
    table = np.full(len(native), UNLABELED, dtype=np.int64)
    for code, name in enumerate(native):
        index = canonical_index(name)
        if index is not None and index < num_classes:
            table[code] = index
    return table


def count_dropped(native: Sequence[str], codes: np.ndarray, table: np.ndarray) -> dict[str, int]:
    """How many samples of each native class the label table drops."""
    counts = np.bincount(codes[table[codes] < 0], minlength=len(native))
    dropped: dict[str, int] = {}
    for code in np.flatnonzero(counts):
        key = drop_key(native[code])
        dropped[key] = dropped.get(key, 0) + int(counts[code])
    return dropped


def _subfolder(root: Path, name: str) -> Path:
    """The child folder of `root` called `name`, ignoring case (SFEW ships `Train`, users type `train`)."""
    folders = sorted(p for p in root.iterdir() if p.is_dir())
    for folder in folders:
        if folder.name.lower() == name.lower():
            return folder
    raise DataError(root / name, "split folder not found",
                    fix=f"pick one of the folders there: {', '.join(f.name for f in folders) or '(none)'}")


def load_class_folders(path: str | Path, split: str | None = None, classes: int | None = None,
                       ignore_unknown: bool = False) -> FaceSet:
    """A `[split/]<class name>/**/<image>` tree; folders are mapped to canonical classes by name."""
    root = require_path(path, "image folder", folder=True)
    if split is not None:
        root = _subfolder(root, str(split))
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise DataError(root, "no class folders found",
                        fix="lay the images out as <class name>/<image>, e.g. happy/0001.png")
    indices = {f: canonical_index(f.name) for f in folders}
    if classes is None:
        classes = 8 if CANONICAL.index("contempt") in indices.values() else 7
    num_classes = class_space(classes, root)
    paths: list[Path] = []
    labels: list[int] = []
    dropped: dict[str, int] = {}
    for folder in folders:
        index = indices[folder]
        if index is None and not ignore_unknown:
            raise DataError(folder, f"folder name {folder.name!r} names no expression class",
                            fix=f"rename it to one of {', '.join(CANONICAL)} (synonyms like 'angry' work), "
                                "or pass ignore_unknown=true to skip it")
        images = find_images(folder)
        if index is None or index >= num_classes:
            key = drop_key(folder.name)
            dropped[key] = dropped.get(key, 0) + len(images)
            continue
        paths += images
        labels += [index] * len(images)
    name = "folder" if split is None else f"folder-{root.name.lower()}"
    ids = [p.relative_to(root).as_posix() for p in paths]
    return FaceSet(name, ids, np.array(labels, dtype=np.int64), num_classes, paths=paths, source=str(root),
                   dropped={k: v for k, v in dropped.items() if v}).require_nonempty()


SFEW_SPLITS = {"train": "Train", "training": "Train", "val": "Val", "valid": "Val", "validation": "Val"}


def load_sfew(path: str | Path, split: str = "Train") -> FaceSet:
    """SFEW 2.0: `Train/<Class>/*.png` and `Val/<Class>/*.png` (the test split has no public labels)."""
    chosen = choose_split(split, SFEW_SPLITS, path) or "Train"
    faces = load_class_folders(path, split=chosen)
    faces.name = f"sfew-{chosen.lower()}"
    return faces


def load_unlabeled_folder(path: str | Path, max_images: int | None = None) -> FaceSet:
    """Every image under `path` (e.g. a face-recognition set used as an unlabeled pool), in sorted order."""
    root = require_path(path, "image folder", folder=True)
    paths = find_images(root)
    if max_images is not None:
        paths = paths[: int(max_images)]
    if not paths:
        raise DataError(root, "no image files found (looked for " + ", ".join(sorted(IMAGE_EXTENSIONS)) + ")",
                        fix="point the unlabeled spec at a folder that holds images")
    ids = [p.relative_to(root).as_posix() for p in paths]
    labels = np.full(len(paths), UNLABELED, dtype=np.int64)
    return FaceSet("unlabeled", ids, labels, 7, paths=paths, source=str(root))
