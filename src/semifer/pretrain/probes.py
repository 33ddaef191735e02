"""Probes of a representation: how well frozen backbone features separate expressions, before any fine-tuning.

A pretraining is judged here first (`semifer probe BACKBONE`): the features of the test view of every
probe-train and test image are extracted once; a k-NN classifier (cosine, majority of the k nearest, as in
DINO's and InstDisc's evaluations) and a linear probe (multinomial logistic regression on standardised
features, scikit-learn) are fitted on the probe-train labels and scored on the test set. The probe-train
labels are used by the probe alone, never by the pretraining.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.preprocessing import StandardScaler

from ..data.faceset import FaceSet
from ..errors import SemiferError
from ..inference.batch import features
from ..models import frozen_model
from ..models.model_info import IMG_SIZES


@dataclass
class ProbeResult:
    """Accuracies (fractions) of the probes on the test set, with what they were fitted on."""

    backbone: str
    arch: str
    train_images: int
    test_images: int
    knn_k: int
    knn_accuracy: float
    linear_accuracy: float
    seconds: float

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    def summary(self) -> str:
        return (
            f"{self.backbone}: k-NN (k={self.knn_k}) {100 * self.knn_accuracy:.2f}%  linear "
            f"{100 * self.linear_accuracy:.2f}%  ({self.train_images} probe-train / {self.test_images} test "
            f"images, {self.seconds:.0f} s)"
        )


def knn_accuracy(
    train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, k: int = 20
) -> float:
    knn = KNeighborsClassifier(n_neighbors=k, metric="cosine", algorithm="brute")
    return float((knn.fit(train_x, train_y).predict(test_x) == test_y).mean())


def linear_accuracy(
    train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, c: float = 1.0
) -> float:
    scaler = StandardScaler().fit(train_x)
    clf = LogisticRegression(C=c, max_iter=2000)
    clf.fit(scaler.transform(train_x), train_y)
    return float((clf.predict(scaler.transform(test_x)) == test_y).mean())


def check_probe_options(train_images: int, train_classes: int, img_size: int, k: int) -> None:
    """Refuse, before any feature is extracted, what the probes cannot fit: the k-NN probe needs 1 <= k <= the
    probe-train images, the linear probe two classes, and the input size must be a real face size."""
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= train_images:
        raise SemiferError(
            f"--k {k}: the k-NN probe needs a whole number of neighbours from 1 to the "
            f"{train_images} probe-train images"
        )
    low, high = IMG_SIZES
    if isinstance(img_size, bool) or not isinstance(img_size, int) or not low <= img_size <= high:
        raise SemiferError(f"--img-size {img_size}: expected a whole number of pixels from {low} to {high}")
    if train_classes < 2:
        raise SemiferError(
            f"the probe-train set has {train_classes} class; the linear probe needs faces of at least two expressions"
        )


def probe(
    path: str | Path | None,
    train: FaceSet,
    test: FaceSet,
    img_size: int,
    arch: str | None = None,
    k: int = 20,
    progress: bool = True,
) -> ProbeResult:
    """k-NN and linear-probe accuracy on `test` of the frozen backbone in `path` (None: random init)."""
    if not train.is_labeled or not test.is_labeled:
        raise SemiferError("probes need labeled probe-train and test sets (the labels are used by the probe only)")
    check_probe_options(len(train), len(np.unique(train.labels)), img_size, k)
    started = time.perf_counter()
    model = frozen_model(path, arch)
    with torch.inference_mode():
        train_x = features(model, train, img_size, progress=progress)
        test_x = features(model, test, img_size, progress=progress)
    return ProbeResult(
        str(path) if path else "random init",
        model.arch,
        len(train),
        len(test),
        k,
        knn_accuracy(train_x, train.labels, test_x, test.labels, k),
        linear_accuracy(train_x, train.labels, test_x, test.labels),
        time.perf_counter() - started,
    )
