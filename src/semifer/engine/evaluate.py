"""Evaluation: the metrics FER papers report of a model's predictions over a FaceSet (`inference.batch.predict`),
in-domain or cross-dataset."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import confusion_matrix, f1_score
from torch import nn

from ..data.faceset import FaceSet
from ..errors import DataError
from ..inference.batch import predict
from ..labels import CANONICAL


@dataclass
class Metrics:
    """Accuracy, mean per-class accuracy, macro-F1, per-class accuracy and the confusion matrix.

    Classes are the model's; test images of classes the model cannot predict are excluded and counted
    in `unmapped` (e.g. contempt when a 7-class model is tested on CK+).
    """

    accuracy: float
    mean_class_accuracy: float
    macro_f1: float
    per_class_accuracy: dict[str, float]
    confusion: list[list[int]]
    classes: list[str]
    n: int
    unmapped: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        text = (
            f"accuracy {100 * self.accuracy:.2f}%  mean-class {100 * self.mean_class_accuracy:.2f}%  "
            f"macro-F1 {100 * self.macro_f1:.2f}%  (n={self.n})"
        )
        per_class = "  ".join(f"{k} {100 * v:.1f}" for k, v in self.per_class_accuracy.items())
        text += f"\n  per class: {per_class}"
        if self.unmapped:
            text += "\n  not evaluated (the model has no such class): " + ", ".join(
                f"{k} {v}" for k, v in self.unmapped.items()
            )
        return text

    def to_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def compute_metrics(labels: np.ndarray, preds: np.ndarray, num_classes: int) -> Metrics:
    """Metrics over the model's `num_classes`; labels outside them are counted as unmapped, not scored."""
    labels, preds = np.asarray(labels), np.asarray(preds)
    outside = labels >= num_classes
    unmapped = {CANONICAL[c]: int((labels == c).sum()) for c in np.unique(labels[outside])}
    labels, preds = labels[~outside], preds[~outside]
    classes = list(range(num_classes))
    cm = confusion_matrix(labels, preds, labels=classes)
    present = [c for c in classes if cm[c].sum() > 0]
    per_class = {CANONICAL[c]: float(cm[c, c] / cm[c].sum()) for c in present}
    return Metrics(
        accuracy=float((labels == preds).mean()) if len(labels) else float("nan"),
        mean_class_accuracy=float(np.mean(list(per_class.values()))) if per_class else float("nan"),
        macro_f1=float(f1_score(labels, preds, labels=present, average="macro", zero_division=0)),
        per_class_accuracy=per_class,
        confusion=cm.tolist(),
        classes=[CANONICAL[c] for c in classes],
        n=int(len(labels)),
        unmapped=unmapped,
    )


def evaluate(model: nn.Module, faces: FaceSet, img_size: int, device: torch.device, **kwargs: object) -> Metrics:
    """Metrics of `model` on labelled `faces`; unlabelled images have nothing to score against, and data none
    of whose labels the model can predict is an error, both checked before any image is decoded (else every
    metric is NaN)."""
    if not faces.is_labeled:
        raise DataError(
            faces.source or faces.name,
            "these images have no labels, so there is nothing to evaluate",
            fix="for the model's predictions on them run `semifer predict MODEL PATH` "
            "(or semifer.load(MODEL).predict(images) in Python)",
        )
    require_scorable(faces, getattr(model, "num_classes", None))
    probs = predict(model, faces, img_size, device, **kwargs)  # type: ignore[arg-type]
    num_classes = probs.shape[1]
    return compute_metrics(faces.labels, probs.argmax(1), num_classes)


def require_scorable(faces: FaceSet, num_classes: int | None) -> None:
    """A DataError unless some image of `faces` has a label among the model's first `num_classes` classes."""
    labels = faces.labels[faces.labels >= 0]
    if not len(labels):
        raise DataError(
            faces.source or faces.name,
            "the data has no labels to evaluate against",
            fix="evaluate on a labelled dataset",
        )
    if num_classes is not None and not (labels < num_classes).any():
        found = ", ".join(sorted({CANONICAL[c] for c in labels.tolist()}))
        raise DataError(
            faces.source or faces.name,
            f"none of its classes ({found}) is one the model predicts ({', '.join(CANONICAL[:num_classes])})",
            fix="evaluate on data with the model's classes",
        )


def plot_confusion(metrics: Metrics, path: Path, title: str = "") -> Path:
    """Row-normalised confusion matrix with counts, saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(metrics.confusion, dtype=float)
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1 + 0.8 * len(cm), 0.8 + 0.8 * len(cm)))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(cm)):
        for j in range(len(cm)):
            ax.text(
                j,
                i,
                f"{100 * norm[i, j]:.0f}\n({int(cm[i, j])})",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if norm[i, j] > 0.5 else "black",
            )
    ax.set_xticks(range(len(cm)), metrics.classes, rotation=45, ha="right")
    ax.set_yticks(range(len(cm)), metrics.classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or f"accuracy {100 * metrics.accuracy:.2f}%")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
