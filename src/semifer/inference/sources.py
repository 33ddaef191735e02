"""What `semifer predict` reads: image files (EXIF orientation applied), folders of them (recursively) and videos
(one frame every N frames or seconds), each turned into RGB uint8 frames."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from tqdm.auto import tqdm

from ..data.parsing import IMAGE_EXTENSIONS
from ..errors import DataError, SemiferError

VIDEO_EXTENSIONS = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv"})


@dataclass
class Frame:
    """One image to look for faces in: `frame` is the video frame index (None for a still image)."""

    source: str
    frame: int | None
    image: np.ndarray


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_EXTENSIONS


def expand_inputs(inputs: list[str]) -> list[Path]:
    """Files as given, folders replaced by the images and videos under them (sorted, recursively)."""
    wanted = IMAGE_EXTENSIONS | VIDEO_EXTENSIONS
    paths: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = [Path(folder, name) for folder, dirs, files in os.walk(path, followlinks=True)
                     for name in files if not name.startswith(".") and Path(name).suffix.lower() in wanted]
            if not found:
                raise DataError(path, "no images or videos in this folder",
                                fix=f"give image ({', '.join(sorted(IMAGE_EXTENSIONS))}) or video files")
            paths += sorted(found)
        elif path.is_file():
            paths.append(path)
        else:
            raise DataError(path, "no such file or folder", fix="check the input path")
    return paths


def to_rgb(image: object) -> np.ndarray:
    """An RGB uint8 (H, W, 3) array from a path, a PIL image or an array ((H, W) grey or (H, W, 3|4) RGB[A];
    floats in [0, 1] are scaled to 0-255). EXIF orientation is applied to files and PIL images."""
    if isinstance(image, str | Path):
        return read_image(Path(image))
    if isinstance(image, Image.Image):
        return np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
    if isinstance(image, np.ndarray):
        array = image
        if array.dtype.kind == "f":
            array = np.clip(array * (255.0 if array.max(initial=0) <= 1.0 else 1.0), 0, 255).round()
        array = array.astype(np.uint8, copy=False)
        if array.ndim == 2:
            return np.repeat(array[:, :, None], 3, axis=2)
        if array.ndim == 3 and array.shape[2] in (3, 4):
            return np.ascontiguousarray(array[:, :, :3])
        raise SemiferError(f"an image array must be (H, W) or (H, W, 3), got shape {array.shape}")
    raise SemiferError(f"cannot use a {type(image).__name__} as an image; give a path, a PIL image or an array")


def read_image(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as handle:
            return np.asarray(ImageOps.exif_transpose(handle).convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DataError(path, f"cannot read image ({exc})", fix="replace or remove the file") from None


def parse_every(text: str) -> tuple[float, bool]:
    """'5' -> every 5 frames; '0.5s' -> every half second. Returns (amount, in_seconds)."""
    seconds = text.endswith("s")
    try:
        amount = float(text[:-1] if seconds else text)
    except ValueError:
        amount = -1.0
    if amount <= 0 or (not seconds and amount != int(amount)):
        raise SemiferError(f"--every {text!r}: give a whole number of frames (e.g. 10) or seconds (e.g. 0.5s)")
    return amount, seconds


def frame_step(every: str, fps: float) -> int:
    amount, seconds = parse_every(every)
    return max(1, round(amount * fps)) if seconds else int(amount)


def video_frames(path: Path, every: str, progress: bool = False) -> Iterator[Frame]:
    """Frames 0, k, 2k, ... of a video (k from `every` and the video's frame rate)."""
    import cv2

    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise DataError(path, "cannot open video", fix="check the file plays; OpenCV reads mp4, avi, mov, mkv")
    step = frame_step(every, capture.get(cv2.CAP_PROP_FPS) or 25.0)
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    bar = tqdm(total=total and -(-total // step), desc=path.name, unit="frame", leave=False, disable=not progress)
    try:
        index, ok = 0, True
        while ok:
            ok, frame = capture.read()
            if not ok:
                if index == 0:
                    raise DataError(path, "no frame could be decoded", fix="check the file plays")
                break
            yield Frame(str(path), index, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
            bar.update()
            for _ in range(step - 1):
                ok = capture.grab()
                if not ok:
                    break
            index += step
    finally:
        capture.release()
        bar.close()


def frames_of(path: Path, every: str = "1s", progress: bool = False) -> Iterator[Frame]:
    if is_video(path):
        yield from video_frames(path, every, progress)
    else:
        yield Frame(str(path), None, read_image(path))
