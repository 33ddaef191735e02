"""Small helpers every format loader shares: image scanning, path checks, split names and by-name label
mapping into the canonical label space (with counts of what was dropped)."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..labels import canonical_index, canonical_name
from .faceset import UNLABELED

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})


def is_image(name: str) -> bool:
    """An image file name by its extension (any case); hidden files such as macOS `._x.jpg` are not."""
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def find_images(root: Path, recursive: bool = True) -> list[Path]:
    """Image files under `root`, sorted by relative path so ids and order never depend on the file system."""
    if not recursive:
        return sorted(p for p in root.iterdir() if p.is_file() and is_image(p.name))
    return sorted(walk_files(root, is_image), key=lambda p: p.relative_to(root).as_posix())


def walk_files(root: Path, keep: Callable[[str], bool], seen_folders: set[tuple[int, int]] | None = None) -> list[Path]:
    """Files under `root` whose names `keep` accepts, links followed, hidden files and folders skipped. Each real
    folder is entered once (`seen_folders` carries that across calls), so a link to the folder itself or to a
    parent ends the walk instead of looping."""
    seen = set() if seen_folders is None else seen_folders
    found: list[Path] = []
    for folder, dirs, files in os.walk(root, followlinks=True):
        try:
            status = os.stat(folder)
        except OSError:
            dirs[:] = []
            continue
        if (status.st_dev, status.st_ino) in seen:
            dirs[:] = []
            continue
        seen.add((status.st_dev, status.st_ino))
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [Path(folder, name) for name in files if not name.startswith(".") and keep(name)]
    return found


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
        raise DataError(
            source,
            f"classes must be 7 or 8, not {classes!r}",
            fix="use classes=8 to keep contempt, classes=7 to drop it",
        )
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
