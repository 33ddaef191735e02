"""Image-folder datasets: class-per-folder trees (CK+48, SFEW 2.0, any labelled tree) and unlabeled pools."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from ..errors import DataError, DataWarning
from ..labels import CANONICAL, canonical_index
from .faceset import UNLABELED, FaceSet
from .parsing import (
    IMAGE_EXTENSIONS,
    choose_split,
    class_space,
    drop_key,
    find_images,
    require_path,
)


def _subfolder(root: Path, name: str) -> Path:
    """The child folder of `root` called `name`, ignoring case (SFEW ships `Train`, users type `train`)."""
    folders = sorted(p for p in root.iterdir() if p.is_dir())
    for folder in folders:
        if folder.name.lower() == name.lower():
            return folder
    raise DataError(
        root / name,
        "split folder not found",
        fix=f"pick one of the folders there: {', '.join(f.name for f in folders) or '(none)'}",
    )


def load_class_folders(
    path: str | Path, split: str | None = None, classes: int | None = None, ignore_unknown: bool = False
) -> FaceSet:
    """A `[split/]<class name>/**/<image>` tree; folders are mapped to canonical classes by name."""
    root = require_path(path, "image folder", folder=True)
    if split is not None:
        root = _subfolder(root, str(split))
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise DataError(
            root, "no class folders found", fix="lay the images out as <class name>/<image>, e.g. happy/0001.png"
        )
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
            raise DataError(
                folder,
                f"folder name {folder.name!r} names no expression class",
                fix=f"rename it to one of {', '.join(CANONICAL)} (synonyms like 'angry' work), "
                "or pass ignore_unknown=true to skip it",
            )
        images = find_images(folder)
        if not images:
            warnings.warn(
                f"{folder}: the class folder {folder.name!r} holds no images, so nothing teaches or tests that class",
                DataWarning,
                stacklevel=2,
            )
        if index is None or index >= num_classes:
            key = drop_key(folder.name)
            dropped[key] = dropped.get(key, 0) + len(images)
            continue
        paths += images
        labels += [index] * len(images)
    name = "folder" if split is None else f"folder-{root.name.lower()}"
    ids = [p.relative_to(root).as_posix() for p in paths]
    return FaceSet(
        name,
        ids,
        np.array(labels, dtype=np.int64),
        num_classes,
        paths=paths,
        source=str(root),
        dropped={k: v for k, v in dropped.items() if v},
    ).require_nonempty()


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
        raise DataError(
            root,
            "no image files found (looked for " + ", ".join(sorted(IMAGE_EXTENSIONS)) + ")",
            fix="point the unlabeled spec at a folder that holds images",
        )
    ids = [p.relative_to(root).as_posix() for p in paths]
    labels = np.full(len(paths), UNLABELED, dtype=np.int64)
    return FaceSet("unlabeled", ids, labels, 7, paths=paths, source=str(root))
