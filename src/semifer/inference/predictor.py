"""`Predictor`: a trained model (PyTorch or ONNX) plus the input preparation it was trained with, from images
(or the faces found in them) to per-face classes and probabilities, in batches."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from PIL import Image

from ..data.views import resize_view
from ..models.model_info import ModelInfo
from .backends import Backend
from .detect import Box, Detector, crop_face, default_margin, make_detector
from .sources import Frame, to_rgb

PENDING_BYTES = 150_000_000  # frames and prepared faces held while a batch of faces fills
# Faces per network call: a small CNN's activations for 64 faces stay in a CPU core's cache, where 256 do not
# (BENCHMARKS.md, prediction throughput: the network's faces/s at batch 64 and at 256)
FACES_PER_CALL = 64


@dataclass
class FacePrediction:
    """One face: its class, the probability of every class, and (from detection) where it was found."""

    label: str
    probs: dict[str, float]
    box: Box | None = None
    source: str = ""
    frame: int | None = None

    @property
    def probability(self) -> float:
        return self.probs[self.label]

    def row(self) -> dict[str, Any]:
        """A flat record: source, frame, box x/y/w/h, label, then `p_<class>` for every class."""
        x, y, w, h = self.box if self.box is not None else (None, None, None, None)
        return {
            "source": self.source,
            "frame": self.frame,
            "x": x,
            "y": y,
            "w": w,
            "h": h,
            "label": self.label,
            **{f"p_{name}": p for name, p in self.probs.items()},
        }


def _name(image: object) -> str:
    """The source column of an image given by path; empty for in-memory images."""
    return str(image) if isinstance(image, str | Path) else ""


class Predictor:
    """Use `semifer.load(path)` to make one. Images are paths, PIL images or RGB arrays."""

    def __init__(self, backend: Backend, info: ModelInfo, model: torch.nn.Module | None = None):
        self.backend = backend
        self.info = info
        self.model = model
        self.resize = resize_view(info.img_size)

    @property
    def classes(self) -> list[str]:
        return list(self.info.classes)

    def prepare(self, face: np.ndarray) -> np.ndarray:
        """An RGB (H, W, 3) or grey (H, W) uint8 face crop as the model's input: grey (repeated to 3 channels)
        for models trained on grey faces, resized to the training size; uint8 (3, S, S), normalised later
        inside the network."""
        if self.info.colour == "gray" or face.ndim == 2:
            grey = face if face.ndim == 2 else cv2.cvtColor(face, cv2.COLOR_RGB2GRAY)
            face = grey[:, :, None].repeat(3, axis=2)
        pixels = torch.from_numpy(np.ascontiguousarray(face)).permute(2, 0, 1)
        if pixels.shape[1:] != (self.info.img_size, self.info.img_size):  # the resize would return it unchanged
            pixels = self.resize(pixels)
        return pixels.numpy()

    def probabilities(self, faces: Sequence[np.ndarray], batch_size: int = FACES_PER_CALL) -> np.ndarray:
        """Softmax probabilities (N, C) for face crops (uint8 arrays, see `prepare`)."""
        return self._classify([self.prepare(face) for face in faces], batch_size)

    def _classify(self, prepared: Sequence[np.ndarray], batch_size: int) -> np.ndarray:
        out = [np.zeros((0, len(self.classes)), dtype=np.float32)]
        for start in range(0, len(prepared), batch_size):
            logits = self.backend(np.stack(prepared[start : start + batch_size]))
            out.append(torch.softmax(torch.from_numpy(logits).float(), dim=1).numpy())
        return np.concatenate(out)

    def _predictions(
        self, probs: np.ndarray, faces: Sequence[tuple[str, int | None, Box | None]]
    ) -> list[FacePrediction]:
        return [
            FacePrediction(
                self.classes[int(p.argmax())], dict(zip(self.classes, p.tolist(), strict=True)), box, source, frame
            )
            for p, (source, frame, box) in zip(probs, faces, strict=True)
        ]

    def predict(self, images: Iterable[object] | object, batch_size: int = FACES_PER_CALL) -> list[FacePrediction]:
        """Each image is taken as one face crop (no detection); one prediction per image, in order."""
        if isinstance(images, str | np.ndarray | Image.Image) or not isinstance(images, Iterable):
            images = [images]
        images = list(images)
        probs = self._classify([self.prepare(to_rgb(image)) for image in images], batch_size)
        return self._predictions(probs, [(_name(image), None, None) for image in images])

    def detect_and_predict(
        self, image: object, detect: str | Detector = "auto", margin: float | None = None
    ) -> list[FacePrediction]:
        """Find the faces in one image and predict each; boxes are in the image's (EXIF-rotated) pixels.
        `margin` (x the box side, per side) defaults to the detector's own (see `detect.default_margin`)."""
        return [
            p
            for _, preds in self.predict_frames([Frame(_name(image), None, to_rgb(image))], detect, margin)
            for p in preds
        ]

    def predict_frames(
        self,
        frames: Iterable[Frame],
        detect: str | Detector = "auto",
        margin: float | None = None,
        batch_size: int = FACES_PER_CALL,
    ) -> Iterator[tuple[Frame, list[FacePrediction]]]:
        """Each frame (e.g. every image and sampled video frame of a `semifer predict` call) with the
        predictions for the faces detected in it, in input order. Faces of consecutive frames are classified
        together, `batch_size` at a time; at most `batch_size` frames and ~`PENDING_BYTES` of frames and faces
        wait for a batch to fill, so memory stays flat however long the video."""
        detector = make_detector(detect) if isinstance(detect, str) else detect
        margin = default_margin(detector) if margin is None else margin
        pending: list[tuple[Frame, list[Box]]] = []
        prepared: list[np.ndarray] = []
        held = 0
        for frame in frames:
            boxes = detector(frame.image)
            faces = [self.prepare(crop_face(frame.image, box, margin)) for box in boxes]
            pending.append((frame, boxes))
            prepared += faces
            held += frame.image.nbytes + sum(face.nbytes for face in faces)
            if len(prepared) >= batch_size or len(pending) >= batch_size or held >= PENDING_BYTES:
                yield from self._flush(pending, prepared, batch_size)
                pending, prepared, held = [], [], 0
        yield from self._flush(pending, prepared, batch_size)

    def _flush(
        self, pending: list[tuple[Frame, list[Box]]], prepared: list[np.ndarray], batch_size: int
    ) -> Iterator[tuple[Frame, list[FacePrediction]]]:
        probs, start = self._classify(prepared, batch_size), 0
        for frame, boxes in pending:
            faces = [(frame.source, frame.frame, box) for box in boxes]
            yield frame, self._predictions(probs[start : start + len(boxes)], faces)
            start += len(boxes)
