"""What `semifer predict` writes: one row per face as CSV or JSON, and images with boxes and labels drawn.

Rows are streamed: each is written (and flushed) as soon as it is computed, so a long run holds no rows in
memory and an interrupted one keeps every row it got to; a JSON file is closed as a valid array even then.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import sys
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

from PIL import Image, ImageDraw

from ..errors import SemiferError
from .predictor import FacePrediction
from .sources import Frame


def check_output(path: Path, option: str, folder: bool = False) -> None:
    """Refuse, before any computation, an output path that cannot be written: under a file, in a folder
    without write permission, a folder where a file is wanted (or the other way round)."""
    try:
        if path.exists():
            if folder != path.is_dir():
                kind = "a folder" if path.is_dir() else "a file"
                raise SemiferError(f"{option} {path}: is {kind}; give {'a folder' if folder else 'a file name'}")
            if not os.access(path, os.W_OK | (os.X_OK if folder else 0)):
                raise SemiferError(f"{option} {path}: no permission to write it")
            return
        parent = path.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
    except OSError as exc:
        raise SemiferError(f"{option} {path}: cannot be checked ({exc.strerror or exc})") from None
    if not parent.is_dir():
        raise SemiferError(f"{option} {path}: {parent} is a file, so nothing can be written under it")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise SemiferError(f"{option} {path}: no permission to write in {parent}")


class RowWriter:
    """Writes rows as they come: CSV (stdout when `out` is None) or, when `out` ends in .json, a JSON array of
    row objects (the same text `json.dumps(rows, indent=1)` gives). Use as a context manager: the file is made
    at the first row or at a clean exit, so a run that fails before any row leaves no file behind."""

    def __init__(self, out: Path | None, classes: list[str]):
        self.out = out
        self.json = out is not None and out.suffix.lower() == ".json"
        self.columns = ["source", "frame", "x", "y", "w", "h", "label", *(f"p_{c}" for c in classes)]
        self.handle: TextIO | None = None
        self.csv: csv.DictWriter[str] | None = None
        self.count = 0

    def __enter__(self) -> RowWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if kind is None:
            self.close()
        elif self.handle is not None:
            with contextlib.suppress(OSError):  # keep the original error (a full disk would fail again here)
                self.close()

    def _open(self) -> TextIO:
        if self.out is None:
            self.handle = sys.stdout
        else:
            self.out.parent.mkdir(parents=True, exist_ok=True)
            self.handle = self.out.open("w", newline="" if not self.json else None)
        if self.json:
            self.handle.write("[")
        else:
            self.csv = csv.DictWriter(self.handle, fieldnames=self.columns)
            self.csv.writeheader()
        return self.handle

    def write(self, rows: list[dict[str, Any]]) -> None:
        """Append `rows` and flush them to the file."""
        if not rows:
            return
        handle = self.handle or self._open()
        for row in rows:
            if self.csv is not None:
                self.csv.writerow({k: f"{v:.6f}" if isinstance(v, float) else v for k, v in row.items()})
            else:
                text = json.dumps(row, indent=1).replace("\n", "\n ")
                handle.write(("," if self.count else "") + "\n " + text)
            self.count += 1
        handle.flush()

    def close(self) -> None:
        """End the output (made now if no row came); a JSON array gets its closing bracket."""
        handle = self.handle or self._open()
        self.handle = None
        if self.json:
            handle.write("\n]\n" if self.count else "]\n")
        if handle is sys.stdout:
            handle.flush()
        else:
            handle.close()


def write_rows(rows: list[dict[str, Any]], classes: list[str], out: Path | None) -> None:
    """CSV (stdout when `out` is None) or JSON (a list of row objects) when `out` ends in .json."""
    with RowWriter(out, classes) as writer:
        writer.write(rows)


class Annotator:
    """Saves each frame with its faces boxed and labelled ('happy 0.91') under `out_dir`, named after the
    source (and the frame index for videos); names are made unique per source, so nothing is kept per frame."""

    def __init__(self, out_dir: Path):
        self.out_dir = out_dir
        self.stems: dict[str, str] = {}  # source -> its unique file-name stem
        self.images: set[str] = set()  # stems of still images, named STEM.png
        self.videos: set[str] = set()  # stems of videos, whose frames are named STEM_fNNNNNN.png
        out_dir.mkdir(parents=True, exist_ok=True)

    def __call__(self, frame: Frame, predictions: list[FacePrediction]) -> Path:
        image = Image.fromarray(frame.image)
        draw = ImageDraw.Draw(image)
        width = max(2, round(max(image.size) / 300))
        for pred in predictions:
            if pred.box is None:
                continue
            x, y, w, h = pred.box
            draw.rectangle((x, y, x + w, y + h), outline=(255, 40, 40), width=width)
            text = f"{pred.label} {pred.probability:.2f}"
            left, top, right, bottom = draw.textbbox((x, y), text)
            top_y = y - (bottom - top) - 4 if y - (bottom - top) - 4 >= 0 else y + h
            draw.rectangle((x, top_y, x + right - left + 4, top_y + bottom - top + 4), fill=(255, 40, 40))
            draw.text((x + 2, top_y + 2 - (top - y)), text, fill=(255, 255, 255))
        return self._save(image, frame)

    def _stem(self, frame: Frame) -> str:
        """The source's stem, suffixed -2, -3, ... when another source (or a video's frame names) has it."""
        key = f"{frame.source}\0{frame.frame is None}"
        if key in self.stems:
            return self.stems[key]
        base = Path(frame.source).stem or "image"
        stem, n = base, 2
        while self._clashes(stem, video=frame.frame is not None):
            stem, n = f"{base}-{n}", n + 1
        (self.images if frame.frame is None else self.videos).add(stem)
        self.stems[key] = stem
        return stem

    def _clashes(self, stem: str, video: bool) -> bool:
        if stem in self.images or stem in self.videos:
            return True
        if video:
            return any(re.fullmatch(re.escape(stem) + r"_f\d{6,}", name) for name in self.images)
        framed = re.fullmatch(r"(.*)_f\d{6,}", stem)
        return framed is not None and framed.group(1) in self.videos

    def _save(self, image: Image.Image, frame: Frame) -> Path:
        stem = self._stem(frame)
        name = f"{stem}_f{frame.frame:06d}.png" if frame.frame is not None else f"{stem}.png"
        path = self.out_dir / name
        image.save(path)
        return path
