"""Image-folder datasets: class-per-folder trees (CK+48, SFEW 2.0, any labelled tree), unlabeled pools, and
lists of image files (a CSV or text file naming them)."""

from __future__ import annotations

import csv
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


LIST_PATH_COLUMNS = ("path", "file", "filename", "image", "face")
LIST_LABEL_COLUMNS = ("label", "expression", "emotion", "class")


def _list_rows(path: Path) -> tuple[list[str], list[str] | None]:
    """The image names a list file holds, and their labels when it has a label column. A CSV with a header names
    its columns; a file without one (or a plain text file) holds one image per line, in its first column."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            rows = [row for row in csv.reader(handle) if row and any(cell.strip() for cell in row)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(path, f"cannot read the image list ({exc})", fix="write it as UTF-8 text or CSV") from None
    if not rows:
        raise DataError(path, "the image list is empty", fix="write one image path per line")
    header = [cell.strip().lower() for cell in rows[0]]
    path_column = next((header.index(c) for c in LIST_PATH_COLUMNS if c in header), None)
    if path_column is None:
        return [row[0].strip() for row in rows], None
    label_column = next((header.index(c) for c in LIST_LABEL_COLUMNS if c in header), None)
    body = [row for row in rows[1:] if len(row) > path_column]
    names = [row[path_column].strip() for row in body]
    if label_column is None:
        return names, None
    return names, [row[label_column].strip() if len(row) > label_column else "" for row in body]


def load_image_list(path: str | Path, classes: int = 7) -> FaceSet:
    """The images a list file names, relative to its own folder unless absolute: a CSV with a `path` (or
    `file`, `image`) column and an optional `label` column of class names, or a text file of one path per line.
    Lets a pool or a labelled set gather faces from several folders without copying them."""
    source = require_path(path, "image list")
    names, label_names = _list_rows(source)
    paths = [Path(name) if Path(name).is_absolute() else source.parent / name for name in names]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise DataError(
            source,
            f"{len(missing)} of the {len(paths)} listed images do not exist (the first: {missing[0]})",
            fix="write paths that exist, absolute or relative to the list's own folder",
        )
    if not paths:
        raise DataError(source, "the image list names no image", fix="write one image path per row")
    num_classes = class_space(classes, source)
    labels = np.full(len(paths), UNLABELED, dtype=np.int64)
    for row, name in enumerate(label_names or []):
        index = canonical_index(name) if name else None
        if name and (index is None or index >= num_classes):
            raise DataError(
                source,
                f"row {row + 2}: {name!r} names no expression class of the {num_classes}-class space",
                fix=f"use one of {', '.join(CANONICAL[:num_classes])}, or leave the label empty for an unlabeled face",
            )
        labels[row] = UNLABELED if index is None else index
    return FaceSet("list", names, labels, num_classes, paths=paths, source=str(source))
