"""Face boxes of a FaceSet's images, from a detector that runs offline (OpenCV's Haar cascade).

Boxes are (x1, y1, x2, y2) as fractions of the image's width and height, so images of different sizes
compare, and are computed once per image on the un-augmented image. Bridging the Gaps' face mixup weights
the real-image terms of a pair by 1 - IoU of the two faces' boxes.
"""

from __future__ import annotations

import numpy as np
import torch

from .faceset import FaceSet

WHOLE_IMAGE = (0.0, 0.0, 1.0, 1.0)
# Haar's smallest window is 24 px: small crops (FER2013's 48 px) are enlarged to this side before detection.
DETECT_SIDE = 128


def whole_image_boxes(n: int) -> np.ndarray:
    """(n, 4) boxes covering the whole image: the face box of data that is already cropped to the face."""
    return np.tile(np.asarray(WHOLE_IMAGE, dtype=np.float32), (n, 1))


def _haar_cascade():  # noqa: ANN202 - cv2 has no stable type names
    try:
        import cv2
    except ImportError:
        raise ImportError(
            "face detection needs OpenCV: pip install 'opencv-python-headless>=4' "
            "(or set method.face_boxes=whole_image for already cropped faces)"
        ) from None
    return cv2, cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")


def detect_face_boxes(faces: FaceSet) -> tuple[np.ndarray, np.ndarray]:
    """((N, 4) boxes, (N,) found): the largest frontal face the Haar cascade finds in each image, or the
    whole image where it finds none."""
    cv2, cascade = _haar_cascade()
    boxes, found = whole_image_boxes(len(faces)), np.zeros(len(faces), dtype=bool)
    for i in range(len(faces)):
        image: torch.Tensor = faces.load(i)
        gray = image.float().mean(0).round().to(torch.uint8).numpy()
        h, w = gray.shape
        scale = max(1.0, DETECT_SIDE / min(h, w))
        if scale > 1:
            gray = cv2.resize(gray, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_LINEAR)
        side = min(gray.shape)
        hits = cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=3, minSize=(side // 4, side // 4))
        if len(hits):
            x, y, bw, bh = max(hits, key=lambda r: r[2] * r[3])
            H, W = gray.shape
            boxes[i] = (x / W, y / H, (x + bw) / W, (y + bh) / H)
            found[i] = True
    return boxes, found
