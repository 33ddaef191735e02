"""CK+ (extended Cohn-Kanade): image sequences from neutral to peak expression, with an emotion code for the
peak of some sequences. A class-folder export such as CK+48 is read as an image-folder tree instead."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataError
from .faceset import FaceSet
from .folders import load_class_folders
from .parsing import class_space, count_dropped, find_images, label_table, require_path

CKPLUS_CLASSES = ("neutral", "anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise")
IMAGE_ROOTS = ("cohn-kanade-images", "extended-cohn-kanade-images/cohn-kanade-images")
EMOTION_ROOTS = ("Emotion", "Emotion_labels/Emotion")
_CODE_FIX = "a CK+ emotion file holds one number 0..7 = " + ", ".join(CKPLUS_CLASSES)


def _first_dir(root: Path, candidates: tuple[str, ...]) -> Path | None:
    return next((root / c for c in candidates if (root / c).is_dir()), None)


def _read_code(path: Path) -> int:
    text = path.read_text(errors="replace").strip()
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not (value.is_integer() and 0 <= value < len(CKPLUS_CLASSES)):
        raise DataError(path, f"emotion {text!r} is not a code 0..7", line=1, fix=_CODE_FIX)
    return int(value)


def load_ckplus(path: str | Path, last_frames: int = 3, first_as_neutral: bool = False, classes: int = 7) -> FaceSet:
    """The last `last_frames` frames of a labelled sequence show its emotion; its first frame is neutral."""
    root = require_path(path, "CK+ folder", folder=True)
    num_classes = class_space(classes, root)
    images_root, emotion_root = _first_dir(root, IMAGE_ROOTS), _first_dir(root, EMOTION_ROOTS)
    if images_root is None and emotion_root is None:
        faces = load_class_folders(root, classes=num_classes)
        faces.name = "ckplus"
        return faces
    images_root = images_root or require_path(root / IMAGE_ROOTS[0], "CK+ image folder", folder=True)
    emotion_root = emotion_root or require_path(root / EMOTION_ROOTS[0], "CK+ Emotion folder", folder=True)
    if not (isinstance(last_frames, int) and last_frames >= 1):
        raise DataError(root, f"last_frames must be a positive integer, not {last_frames!r}")
    paths: list[Path] = []
    codes: list[int] = []
    for label_file in sorted(emotion_root.glob("*/*/*_emotion.txt")):
        code = _read_code(label_file)
        sequence = images_root / label_file.parent.parent.name / label_file.parent.name
        frames = find_images(sequence, recursive=False) if sequence.is_dir() else []
        if not frames:
            raise DataError(
                sequence,
                f"no frames for the labelled sequence {label_file.name}",
                fix="restore the sequence's images from cohn-kanade-images",
            )
        peak = frames[-last_frames:]
        if first_as_neutral and frames[0] not in peak:
            paths.append(frames[0])
            codes.append(CKPLUS_CLASSES.index("neutral"))
        paths += peak
        codes += [code] * len(peak)
    table = label_table(CKPLUS_CLASSES, num_classes)
    code_array = np.array(codes, dtype=np.int64)
    labels = table[code_array]
    keep = np.flatnonzero(labels >= 0)
    return FaceSet(
        "ckplus",
        [paths[i].relative_to(images_root).as_posix() for i in keep],
        labels[keep],
        num_classes,
        paths=[paths[i] for i in keep],
        source=str(root),
        dropped=count_dropped(CKPLUS_CLASSES, code_array, table),
    ).require_nonempty()
