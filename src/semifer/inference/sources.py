"""What `semifer predict` reads: image files (EXIF orientation applied), folders of them (recursively) and videos
(one frame every N frames or seconds), each turned into RGB uint8 frames.

Folder walks follow symlinks but visit each real folder and file once (a link to a parent is no loop), and
skip FIFOs, sockets and devices, which would block or never end."""

from __future__ import annotations

import math
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from ..data.faceset import read_image, rgb_pixels, wide_to_uint8
from ..data.parsing import IMAGE_EXTENSIONS, walk_files
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


@dataclass
class Inputs:
    """The files to predict, each real file once, and how many entries were skipped as not regular files."""

    paths: list[Path] = field(default_factory=list)
    not_regular: int = 0
    seen: set[tuple[int, int]] = field(default_factory=set, repr=False)

    def add(self, path: Path, status: os.stat_result | None) -> None:
        """Keep `path` unless its file was kept already (through a link) or it is no regular file; a path
        that cannot be stat-ed (a broken link) is kept, so reading it reports the problem."""
        if status is not None and not stat.S_ISREG(status.st_mode):
            self.not_regular += 1
        elif status is None or (status.st_dev, status.st_ino) not in self.seen:
            if status is not None:
                self.seen.add((status.st_dev, status.st_ino))
            self.paths.append(path)


def _stat(path: Path | str) -> os.stat_result | None:
    try:
        return os.stat(path)
    except OSError:
        return None


def _walk(root: Path, wanted: frozenset[str], seen_folders: set[tuple[int, int]]) -> list[Path]:
    """Image and video files under `root`, sorted, each real folder entered once (`walk_files`)."""
    return sorted(walk_files(root, lambda name: Path(name).suffix.lower() in wanted, seen_folders))


def expand_inputs(inputs: list[str]) -> Inputs:
    """Files as given, folders replaced by the images and videos under them (sorted, recursively)."""
    wanted = IMAGE_EXTENSIONS | VIDEO_EXTENSIONS
    result = Inputs()
    seen_folders: set[tuple[int, int]] = set()
    for item in inputs:
        path = Path(item)
        status = _stat(path)
        if status is None:
            raise DataError(path, "no such file or folder", fix="check the input path")
        if stat.S_ISDIR(status.st_mode):
            if (status.st_dev, status.st_ino) in seen_folders:
                continue  # walked already, as another input or through a link
            found = _walk(path, wanted, seen_folders)
            if not found:
                raise DataError(
                    path,
                    "no images or videos in this folder",
                    fix=f"give image ({', '.join(sorted(IMAGE_EXTENSIONS))}) or video files",
                )
            for file in found:
                result.add(file, _stat(file))
        else:
            result.add(path, status)
    return result


def to_rgb(image: object) -> np.ndarray:
    """An RGB uint8 (H, W, 3) array from a path, a PIL image or an array ((H, W) grey or (H, W, 3|4) RGB[A];
    floats in [0, 1] are scaled to 0-255, uint16 from 0-65535, other integers clipped to 0-255). Files and PIL
    images are decoded as training decodes them (`semifer.data.faceset.read_image`), EXIF orientation applied."""
    if isinstance(image, str | Path):
        return read_image(Path(image))
    if isinstance(image, Image.Image):
        return rgb_pixels(image)
    if isinstance(image, np.ndarray):
        array = image
        if array.dtype.kind == "f" or array.dtype == np.uint16:
            array = wide_to_uint8(array)
        elif array.dtype.kind in "iu" and array.dtype.itemsize > 1:
            array = np.clip(array, 0, 255)
        array = array.astype(np.uint8, copy=False)
        if array.ndim == 2:
            return np.repeat(array[:, :, None], 3, axis=2)
        if array.ndim == 3 and array.shape[2] in (3, 4):
            return np.ascontiguousarray(array[:, :, :3])
        raise SemiferError(f"an image array must be (H, W) or (H, W, 3), got shape {array.shape}")
    raise SemiferError(f"cannot use a {type(image).__name__} as an image; give a path, a PIL image or an array")


def parse_every(text: str) -> tuple[float, bool]:
    """'5' -> every 5 frames; '0.5s' -> every half second. Returns (amount, in_seconds)."""
    seconds = text.endswith("s")
    try:
        amount = float(text[:-1] if seconds else text)
    except ValueError:
        amount = -1.0
    if not math.isfinite(amount) or amount <= 0 or (not seconds and amount != int(amount)):
        raise SemiferError(f"--every {text!r}: give a whole number of frames (e.g. 10) or seconds (e.g. 0.5s)")
    return amount, seconds


def frame_step(every: str, fps: float) -> int:
    amount, seconds = parse_every(every)
    return max(1, round(amount * fps)) if seconds else int(amount)


def video_frames(path: Path, every: str, progress: bool = False) -> Iterator[Frame]:
    """Frames 0, k, 2k, ... of a video (k from `every` and the video's frame rate)."""
    import cv2

    status = _stat(path)
    if status is not None and not stat.S_ISREG(status.st_mode):  # OpenCV would block on a FIFO
        raise DataError(path, "not a regular file (a FIFO, socket or device)", fix="give video files")
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise DataError(path, "cannot open video", fix="check the file plays; OpenCV reads mp4, avi, mov, mkv")
    fps = capture.get(cv2.CAP_PROP_FPS)
    step = frame_step(every, fps if math.isfinite(fps) and 0 < fps < 10_000 else 25.0)
    count = capture.get(cv2.CAP_PROP_FRAME_COUNT)
    total = int(count) if math.isfinite(count) and count > 0 else None
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
