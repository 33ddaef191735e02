"""`semifer predict`'s work: every image and sampled video frame of the inputs through detection and the model,
one row per face; an unreadable file is reported in one line and the rest are still processed."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ..errors import DataError
from .output import Annotator
from .predictor import Predictor
from .sources import Frame, expand_inputs, frames_of, parse_every

PROGRESS_FROM = 20  # files; every video shows its own frame bar


@dataclass
class PredictReport:
    rows: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    frames: int = 0
    files: int = 0
    without_faces: int = 0


def _readable_frames(paths: list[Path], every: str, on_error: Callable[[DataError], None],
                     progress: bool) -> Iterator[Frame]:
    for path in tqdm(paths, desc="predict", unit="file", disable=not progress or len(paths) < PROGRESS_FROM):
        try:
            yield from frames_of(path, every, progress)
        except DataError as exc:
            on_error(exc)


def predict_files(predictor: Predictor, inputs: list[str], detect: str = "auto", every: str = "1s",
                  batch_size: int = 256, margin: float | None = None, annotate: Path | None = None,
                  progress: bool = True, on_error: Callable[[str], None] | None = None) -> PredictReport:
    """Rows (see `FacePrediction.row`) for every face in `inputs` (files, folders, videos)."""
    parse_every(every)
    paths = expand_inputs(inputs)
    report = PredictReport(files=len(paths))
    annotator = Annotator(annotate) if annotate is not None else None

    def failed(exc: DataError) -> None:
        line = str(exc).replace("\n ", ";")
        report.errors.append(line)
        if on_error is not None:
            on_error(line)

    frames = _readable_frames(paths, every, failed, progress)
    for frame, predictions in predictor.predict_frames(frames, detect, margin, batch_size):
        report.frames += 1
        report.without_faces += not predictions
        report.rows += [p.row() for p in predictions]
        if annotator is not None:
            annotator(frame, predictions)
    return report
