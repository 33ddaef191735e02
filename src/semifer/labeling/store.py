"""Where `semifer label` keeps the labels: a CSV and a class-folder tree that `semifer train` / `semifer fit` read.

OUT/labels.csv (`face,label`) is the record; OUT/<class>/<face> copies mirror it, so the tree is a dataset as it
stands. Every change is one transaction under an exclusive lock on OUT/.labels.lock: re-read the CSV (another
page or another `semifer label` process may have written since), apply the change, write the CSV to a temporary
file and rename it over the old one, then move the face's copy in the tree. A label once given is never lost: a
crash leaves either the old or the new CSV whole, and opening the store puts the tree back in step with the CSV.
"""

from __future__ import annotations

import csv
import fcntl
import io
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from ..data.faceset import read_image
from ..data.parsing import find_images
from ..errors import DataError, SemiferError
from ..labels import canonical_name
from ..tensorfile import write_atomically

CSV_NAME = "labels.csv"
LOCK_NAME = ".labels.lock"


def tree_name(face: str) -> str:
    """A face's file name inside its class folder: its path under the face folder, flattened."""
    return face.replace("/", "__")


def check_classes(classes: Sequence[str]) -> tuple[str, ...]:
    """Canonical expression names, in the order given (their keys are 1, 2, ...)."""
    names = [canonical_name(c) for c in classes]
    unknown = [c for c, n in zip(classes, names, strict=True) if n is None]
    if unknown:
        raise SemiferError(
            f"unknown expression class {', '.join(map(repr, unknown))}; use names such as neutral, happy, sad, "
            "surprise, fear, disgust, anger, contempt"
        )
    if len(set(names)) != len(names) or not names:
        raise SemiferError(f"--classes must name each class once, got {', '.join(classes)}")
    if len(names) > 9:
        raise SemiferError(f"at most 9 classes (keys 1-9), got {len(names)}")
    return tuple(n for n in names if n is not None)


def readable_faces(folder: Path) -> tuple[list[str], int]:
    """The image files under `folder` that decode, as paths relative to it, and how many did not."""
    faces, bad = [], 0
    for path in find_images(folder):
        try:
            read_image(path)
        except (DataError, OSError, ValueError):
            bad += 1
            continue
        faces.append(path.relative_to(folder).as_posix())
    return faces, bad


class LabelStore:
    """The labels of the faces in `faces_dir`, kept in `out` (see the module docstring)."""

    def __init__(self, faces_dir: str | Path, out: str | Path, classes: Sequence[str]):
        self.faces_dir = Path(faces_dir)
        if not self.faces_dir.is_dir():
            raise DataError(
                self.faces_dir, "not a folder of face images", fix="pass the faces/ folder `semifer select` wrote"
            )
        self.out = Path(out)
        if self.out.resolve() == self.faces_dir.resolve() or self.faces_dir.resolve() in self.out.resolve().parents:
            raise SemiferError(
                f"--out {self.out} is inside the face folder {self.faces_dir}; write the labels elsewhere"
            )
        self.classes = check_classes(classes)
        self.faces, self.unreadable = readable_faces(self.faces_dir)
        self._known = set(self.faces)
        if not self.faces:
            raise DataError(self.faces_dir, "no readable face image in the folder", fix="point it at face images")
        self.out.mkdir(parents=True, exist_ok=True)
        with self._locked():
            labels = self._read()
            for face in self.faces:
                self._place(face, labels.get(face))

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with open(self.out / LOCK_NAME, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    @property
    def csv_path(self) -> Path:
        return self.out / CSV_NAME

    def _read(self) -> dict[str, str]:
        if not self.csv_path.is_file():
            return {}
        try:
            with open(self.csv_path, newline="") as handle:
                rows = list(csv.DictReader(handle))
            return {row["face"]: row["label"] for row in rows if row.get("label")}
        except (KeyError, csv.Error, UnicodeDecodeError) as exc:
            raise DataError(
                self.csv_path,
                f"not a labels.csv written by `semifer label` ({exc})",
                fix="move it away or pick another --out",
            ) from None

    def _write(self, labels: dict[str, str]) -> None:
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(["face", "label"])
        writer.writerows(sorted(labels.items()))
        write_atomically(self.csv_path, text.getvalue(), "labels")

    def _place(self, face: str, label: str | None) -> None:
        """The face's copy in the tree sits under its label's folder only (nowhere without a label)."""
        name = tree_name(face)
        for cls in self.classes:
            if cls != label:
                (self.out / cls / name).unlink(missing_ok=True)
        if label is None:
            return
        target = self.out / label / name
        if not target.is_file():
            target.parent.mkdir(exist_ok=True)
            write_atomically(target, (self.faces_dir / face).read_bytes(), "labeled face")

    def _ours(self, labels: dict[str, str]) -> dict[str, str]:
        """The labels of this folder's faces (the CSV may also hold an earlier round's)."""
        return {face: label for face, label in labels.items() if face in self._known}

    def labels(self) -> dict[str, str]:
        """Every label given so far, by any page or process."""
        with self._locked():
            return self._ours(self._read())

    def set(self, face: str, label: str | None) -> dict[str, str]:
        """Give `face` a label (None takes it back); returns every label after the change."""
        if face not in self._known:
            raise SemiferError(f"{face!r} is not one of the faces being labeled")
        if label is not None and label not in self.classes:
            raise SemiferError(f"{label!r} is not one of the classes {', '.join(self.classes)}")
        with self._locked():
            labels = self._read()
            if label is None:
                labels.pop(face, None)
            else:
                labels[face] = label
            self._write(labels)
            self._place(face, label)
        return self._ours(labels)
