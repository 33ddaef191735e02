"""Offline face detection for `semifer predict`: OpenCV's Haar cascade (shipped inside opencv-python-headless
4.x), a user-given YuNet ONNX file, or none for images that are already face crops.

A detector maps an RGB uint8 image (H, W, 3) to boxes (x, y, w, h) in pixels; nothing is downloaded.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..errors import SemiferError

Box = tuple[int, int, int, int]
Detector = Callable[[np.ndarray], list[Box]]

DETECTORS_HELP = "auto (none for images of at most 64 px, else haar), haar, none or yunet:PATH.onnx"
CROP_SIZE_LIMIT = 64  # FER-style crops are 48 px; no photo with a findable face is this small
NESTED = 0.8  # a box with this share of its area inside a larger box is part of that face, not another face


def _cv2():  # noqa: ANN202 - the module
    try:
        import cv2
    except ImportError:
        raise SemiferError("face detection needs OpenCV: pip install 'opencv-python-headless>=4.8,<5'") from None
    return cv2


def drop_nested(boxes: list[Box], inside: float = NESTED) -> list[Box]:
    """`boxes` (in their order) less every box lying mostly (`inside` of its area or more) within a box at
    least as large: Haar also fires on a mouth or an eye within a face, which is no second face."""

    def area(box: Box) -> int:
        return max(0, box[2]) * max(0, box[3])

    def overlap(a: Box, b: Box) -> int:
        w = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
        h = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
        return max(0, w) * max(0, h)

    kept: list[int] = []
    for i in sorted(range(len(boxes)), key=lambda k: -area(boxes[k])):
        if not any(overlap(boxes[i], boxes[j]) >= inside * area(boxes[i]) for j in kept):
            kept.append(i)
    return [boxes[i] for i in sorted(kept)]


def whole_image(image: np.ndarray) -> list[Box]:
    """The image is one face (FER-style crops)."""
    return [(0, 0, image.shape[1], image.shape[0])]


class HaarDetector:
    """OpenCV's frontal-face Haar cascade on the grey image (Viola-Jones): fast, offline, frontal faces only.

    Its box frames a face much as FER2013's crops do (median side 0.97 x the crop's, centred, on the 159 of
    200 PublicTest faces it found, pasted at 96-200 px: benchmarks/studies/haar_framing.py), so the default margin of
    0.015 per side gives back FER2013's framing.
    """

    margin = 0.015

    def __init__(self, min_size: int = 24, min_neighbors: int = 5, scale_factor: float = 1.1):
        cv2 = _cv2()
        folder = getattr(getattr(cv2, "data", None), "haarcascades", "")
        path = Path(folder, "haarcascade_frontalface_default.xml")
        self.cascade = cv2.CascadeClassifier(str(path))
        if self.cascade.empty():
            raise SemiferError(
                f"{path}: OpenCV's Haar cascade is missing (OpenCV 5 wheels ship none); "
                "install 'opencv-python-headless>=4.8,<5' or give --detect yunet:PATH"
            )
        self.cv2, self.min_size, self.min_neighbors, self.scale_factor = cv2, min_size, min_neighbors, scale_factor

    def __call__(self, image: np.ndarray) -> list[Box]:
        grey = self.cv2.cvtColor(image, self.cv2.COLOR_RGB2GRAY)
        boxes = self.cascade.detectMultiScale(
            grey, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors, minSize=(self.min_size, self.min_size)
        )
        return drop_nested([tuple(int(v) for v in box) for box in boxes])  # type: ignore[misc]


class YuNetDetector:
    """A YuNet face-detection ONNX file the user has (e.g. OpenCV Zoo's face_detection_yunet_2023mar.onnx).

    Its boxes are tighter than a FER crop (brows to chin); the default margin of 0.1 per side is a guess,
    not a measurement: pass --margin to tune it on your data.
    """

    margin = 0.1

    def __init__(self, path: str | Path, score_threshold: float = 0.7):
        cv2 = _cv2()
        path = Path(path)
        if not path.is_file():
            raise SemiferError(f"{path}: YuNet model file not found; give the local path of the .onnx file")
        try:
            self.net = cv2.FaceDetectorYN.create(str(path), "", (320, 320), score_threshold)
        except cv2.error as exc:
            raise SemiferError(f"{path}: OpenCV cannot load this as a YuNet detector ({exc.msg.strip()})") from None
        self.cv2, self.path = cv2, path

    def __call__(self, image: np.ndarray) -> list[Box]:
        h, w = image.shape[:2]
        self.net.setInputSize((w, h))
        try:
            _, faces = self.net.detect(self.cv2.cvtColor(image, self.cv2.COLOR_RGB2BGR))
        except self.cv2.error as exc:
            raise SemiferError(
                f"{self.path}: YuNet detection failed ({exc.msg.strip()}); is this a YuNet face-detection model?"
            ) from None
        if faces is None:
            return []
        return drop_nested([tuple(int(round(v)) for v in face[:4]) for face in faces])  # type: ignore[misc]


class AutoDetector:
    """No detection on small images (FER-style crops), the Haar cascade on anything larger."""

    margin = HaarDetector.margin

    def __init__(self) -> None:
        self.haar: HaarDetector | None = None

    def __call__(self, image: np.ndarray) -> list[Box]:
        if max(image.shape[:2]) <= CROP_SIZE_LIMIT:
            return whole_image(image)
        self.haar = self.haar or HaarDetector()
        return self.haar(image)


def default_margin(detector: Detector) -> float:
    """The margin that makes `detector`'s boxes frame faces as the training crops did (0 for whole images)."""
    return float(getattr(detector, "margin", 0.0))


def make_detector(spec: str) -> Detector:
    """A detector from its command-line name (see DETECTORS_HELP)."""
    kind, _, path = spec.partition(":")
    if kind == "auto" and not path:
        return AutoDetector()
    if kind == "haar" and not path:
        return HaarDetector()
    if kind == "none" and not path:
        return whole_image
    if kind == "yunet" and path:
        return YuNetDetector(path)
    raise SemiferError(f"unknown detector {spec!r}; use {DETECTORS_HELP}")


def crop_face(image: np.ndarray, box: Box, margin: float) -> np.ndarray:
    """The square around `box` grown by `margin` x its side on every side, clipped to the image."""
    x, y, w, h = box
    side = max(w, h) * (1 + 2 * margin)
    cx, cy = x + w / 2, y + h / 2
    x0, y0 = max(0, int(round(cx - side / 2))), max(0, int(round(cy - side / 2)))
    x1, y1 = min(image.shape[1], int(round(cx + side / 2))), min(image.shape[0], int(round(cy + side / 2)))
    return image[y0 : max(y1, y0 + 1), x0 : max(x1, x0 + 1)]
