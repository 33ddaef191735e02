"""AffectNet, in either release layout: the original CSV lists over `Manually_Annotated_Images/`, or the later
`train_set/` / `val_set/` folders with one `<n>_exp.npy` annotation per image."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ..errors import DataError
from .faceset import FaceSet
from .parsing import choose_split, class_space, count_dropped, find_images, label_table, require_path

AFFECTNET_CLASSES = (
    "Neutral",
    "Happy",
    "Sad",
    "Surprise",
    "Fear",
    "Disgust",
    "Anger",
    "Contempt",
    "None",
    "Uncertain",
    "No-Face",
)
SPLITS = {
    "train": "training",
    "training": "training",
    "val": "validation",
    "valid": "validation",
    "validation": "validation",
}
SET_FOLDERS = {"training": "train_set", "validation": "val_set"}
LIST_FOLDERS = ("Manually_Annotated_file_lists", ".")
IMAGE_FOLDERS = ("Manually_Annotated_Images", "Manually_Annotated/Manually_Annotated_Images")
_CODE_FIX = "AffectNet expression codes are 0..10 = " + ", ".join(AFFECTNET_CLASSES)


def _code(text: str) -> int:
    """An expression code from its text (CSV cell or .npy string), -1 if it is not an integer."""
    try:
        value = float(text)
    except ValueError:
        return -1
    return int(value) if value.is_integer() else -1


def _read_list(path: Path) -> tuple[list[str], list[int]]:
    """Image paths and codes from training.csv / validation.csv (validation.csv often lacks the header)."""
    files, codes = [], []
    with path.open(newline="", encoding="utf-8-sig") as file:
        reader = csv.reader(file)
        ifile, icode = 0, 6
        for row in reader:
            if not row:
                continue
            if reader.line_num == 1 and row[0].strip() == "subDirectory_filePath":
                header = [c.strip() for c in row]
                if "expression" not in header:
                    raise DataError(
                        path,
                        "missing column 'expression'",
                        line=1,
                        fix="use the list file from the AffectNet release, unchanged",
                    )
                icode = header.index("expression")
                continue
            cell = row[icode] if len(row) > icode else ""
            code = _code(cell)
            if not 0 <= code < len(AFFECTNET_CLASSES):
                raise DataError(path, f"expression {cell!r} is not a code 0..10", line=reader.line_num, fix=_CODE_FIX)
            files.append(row[ifile].strip())
            codes.append(code)
    return files, codes


def _find(root: Path, candidates: tuple[str, ...], what: str, folder: bool) -> Path:
    for candidate in candidates:
        path = root / candidate
        if path.is_dir() if folder else path.is_file():
            return path
    return require_path(root / candidates[0], what, folder=folder)


def _original(root: Path, split: str) -> tuple[list[str], list[Path], list[int]]:
    lists = [root / folder / f"{split}.csv" for folder in LIST_FOLDERS]
    listed = next((p for p in lists if p.is_file()), lists[0])
    files, codes = _read_list(require_path(listed, f"AffectNet list {split}.csv"))
    images = _find(root, IMAGE_FOLDERS, "AffectNet image folder Manually_Annotated_Images", folder=True)
    return files, [images / f for f in files], codes


def _per_image(root: Path, split: str) -> tuple[list[str], list[Path], list[int]]:
    folder = SET_FOLDERS[split]
    images = find_images(
        require_path(root / folder / "images", f"AffectNet {folder}/images", folder=True), recursive=False
    )
    images.sort(key=lambda p: (int(p.stem) if p.stem.isdigit() else float("inf"), p.name))
    codes = []
    for image in images:
        annotation = require_path(
            root / folder / "annotations" / f"{image.stem}_exp.npy", f"expression annotation of {image.name}"
        )
        try:
            code = _code(str(np.load(annotation, allow_pickle=False).item()))
        except (OSError, ValueError) as exc:
            raise DataError(annotation, f"cannot read the expression ({exc})", fix=_CODE_FIX) from None
        if not 0 <= code < len(AFFECTNET_CLASSES):
            raise DataError(annotation, "expression is not a code 0..10", fix=_CODE_FIX)
        codes.append(code)
    return [f"{folder}/{p.name}" for p in images], images, codes


def load_affectnet(path: str | Path, split: str | None = "train", classes: int = 7) -> FaceSet:
    """AffectNet's manually annotated set; None/Uncertain/No-Face (and contempt for 7 classes) are dropped."""
    root = require_path(path, "AffectNet folder", folder=True)
    num_classes = class_space(classes, root)
    chosen = choose_split(split, SPLITS, root)
    per_image = any((root / f).is_dir() for f in SET_FOLDERS.values())
    ids: list[str] = []
    paths: list[Path] = []
    codes: list[int] = []
    for part in [chosen] if chosen else list(SET_FOLDERS):
        part_ids, part_paths, part_codes = (_per_image if per_image else _original)(root, part)
        ids, paths, codes = ids + part_ids, paths + part_paths, codes + part_codes
    table = label_table(AFFECTNET_CLASSES, num_classes)
    code_array = np.array(codes, dtype=np.int64)
    labels = table[code_array]
    keep = np.flatnonzero(labels >= 0)
    missing = [paths[i] for i in keep if not paths[i].is_file()]
    if missing:
        raise DataError(
            missing[0],
            f"listed image not found ({len(missing)} missing in all)",
            fix="restore the missing images (the archive may be incompletely extracted)",
        )
    name = "affectnet" if chosen is None else f"affectnet-{chosen}"
    dropped = count_dropped(AFFECTNET_CLASSES, code_array, table)
    return FaceSet(
        name,
        [ids[i] for i in keep],
        labels[keep],
        num_classes,
        paths=[paths[i] for i in keep],
        source=str(root),
        dropped=dropped,
    ).require_nonempty()
