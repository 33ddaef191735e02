"""What `semifer predict` writes: one row per face as CSV or JSON, and images with boxes and labels drawn."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from PIL import Image, ImageDraw

from .predictor import FacePrediction
from .sources import Frame


def write_rows(rows: list[dict[str, Any]], classes: list[str], out: Path | None) -> None:
    """CSV (stdout when `out` is None) or JSON (a list of row objects) when `out` ends in .json."""
    if out is not None and out.suffix.lower() == ".json":
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(rows, indent=1) + "\n")
        return
    columns = ["source", "frame", "x", "y", "w", "h", "label", *(f"p_{c}" for c in classes)]
    if out is None:
        _write_csv(sys.stdout, rows, columns)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as handle:
        _write_csv(handle, rows, columns)


def _write_csv(handle: TextIO, rows: list[dict[str, Any]], columns: list[str]) -> None:
    writer = csv.DictWriter(handle, fieldnames=columns)
    writer.writeheader()
    for row in rows:
        writer.writerow({k: f"{v:.6f}" if isinstance(v, float) else v for k, v in row.items()})


class Annotator:
    """Saves each frame with its faces boxed and labelled ('happy 0.91') under `out_dir`, named after the
    source (and the frame index for videos); names are made unique."""

    def __init__(self, out_dir: Path):
        self.out_dir = out_dir
        self.used: set[str] = set()
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

    def _save(self, image: Image.Image, frame: Frame) -> Path:
        stem = Path(frame.source).stem or "image"
        stem += f"_f{frame.frame:06d}" if frame.frame is not None else ""
        name, n = f"{stem}.png", 2
        while name in self.used:
            name, n = f"{stem}-{n}.png", n + 1
        self.used.add(name)
        path = self.out_dir / name
        image.save(path)
        return path
