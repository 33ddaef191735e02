"""`semifer predict`'s work: every image and sampled video frame of the inputs through detection and the model,
one row per face; an unreadable file is reported in one line and the rest are still processed."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ..errors import DataError, SemiferError
from .output import Annotator
from .predictor import FACES_PER_CALL, Predictor
from .sources import Frame, expand_inputs, frames_of, parse_every

PROGRESS_FROM = 20  # files; every video shows its own frame bar
MAX_MARGIN = 2.0  # x the box side per side: a crop 5 times the face's side is already mostly background
MAX_THREADS = 1024


@dataclass
class PredictReport:
    """What a `predict_files` call did. `rows` holds the rows only when no `on_rows` receiver took them (so a
    command-line run, which streams them to its output, keeps counts, not rows)."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    faces: int = 0
    frames: int = 0
    files: int = 0
    without_faces: int = 0
    not_regular: int = 0


def check_batch_size(value: object) -> int:
    """--batch-size as a whole number of at least 1 (a SemiferError naming the option otherwise)."""
    number = _whole(value)
    if number is None or number < 1:
        raise SemiferError(f"--batch-size {value!r}: give a whole number of 1 or more (faces per network call)")
    return number


def check_threads(value: object) -> int:
    """--threads as a whole number from 0 (the runtime's default) to MAX_THREADS."""
    number = _whole(value)
    if number is None or not 0 <= number <= MAX_THREADS:
        raise SemiferError(f"--threads {value!r}: give a whole number from 0 (the runtime's default) to {MAX_THREADS}")
    return number


def check_margin(value: object) -> float | None:
    """--margin as a finite number from 0 to MAX_MARGIN, or None for the detector's own."""
    if value is None:
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        number = math.nan
    if not 0.0 <= number <= MAX_MARGIN:  # false for nan too
        raise SemiferError(
            f"--margin {value!r}: give a number from 0 to {MAX_MARGIN:g} (context added on each "
            "side of a face box, x its side)"
        )
    return number


def _whole(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    try:
        return int(str(value).strip())
    except ValueError:
        return None


def _readable_frames(
    paths: list[Path], every: str, on_error: Callable[[DataError], None], progress: bool
) -> Iterator[Frame]:
    for path in tqdm(paths, desc="predict", unit="file", disable=not progress or len(paths) < PROGRESS_FROM):
        try:
            yield from frames_of(path, every, progress)
        except DataError as exc:
            on_error(exc)


def predict_files(
    predictor: Predictor,
    inputs: list[str],
    detect: str = "auto",
    every: str = "1s",
    batch_size: int = FACES_PER_CALL,
    margin: float | None = None,
    annotate: Path | None = None,
    progress: bool = True,
    on_error: Callable[[str], None] | None = None,
    on_rows: Callable[[list[dict[str, Any]]], None] | None = None,
) -> PredictReport:
    """Rows (see `FacePrediction.row`) for every face in `inputs` (files, folders, videos): each frame's rows
    go to `on_rows` as soon as they are computed when it is given, else into the report's `rows`."""
    batch_size, margin = check_batch_size(batch_size), check_margin(margin)
    parse_every(every)
    found = expand_inputs(inputs)
    report = PredictReport(files=len(found.paths), not_regular=found.not_regular)
    annotator = Annotator(annotate) if annotate is not None else None

    def failed(exc: DataError) -> None:
        line = str(exc).replace("\n ", ";")
        report.errors.append(line)
        if on_error is not None:
            on_error(line)

    frames = _readable_frames(found.paths, every, failed, progress)
    for frame, predictions in predictor.predict_frames(frames, detect, margin, batch_size):
        rows = [p.row() for p in predictions]
        report.frames += 1
        report.faces += len(rows)
        report.without_faces += not rows
        if on_rows is None:
            report.rows += rows
        else:
            on_rows(rows)
        if annotator is not None:
            annotator(frame, predictions)
    return report
