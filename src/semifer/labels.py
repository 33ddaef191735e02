"""The canonical expression label space every dataset is mapped into, by name.

Index order is fixed for the whole toolkit so that a model trained on one dataset can be evaluated on
another: the seven basic expressions first, contempt last (only some datasets have it), so a 7-class
model simply has no output for index 7.
"""

from __future__ import annotations

CANONICAL: tuple[str, ...] = ("neutral", "happy", "sad", "surprise", "fear", "disgust", "anger", "contempt")
BASIC7: tuple[str, ...] = CANONICAL[:7]

_ALIASES: dict[str, str] = {
    "neutral": "neutral",
    "neu": "neutral",
    "happy": "happy",
    "happiness": "happy",
    "hap": "happy",
    "joy": "happy",
    "sad": "sad",
    "sadness": "sad",
    "surprise": "surprise",
    "surprised": "surprise",
    "sur": "surprise",
    "fear": "fear",
    "fearful": "fear",
    "afraid": "fear",
    "disgust": "disgust",
    "disgusted": "disgust",
    "dis": "disgust",
    "anger": "anger",
    "angry": "anger",
    "ang": "anger",
    "contempt": "contempt",
    "contemptuous": "contempt",
    "con": "contempt",
}


def canonical_name(name: str) -> str | None:
    """Map a dataset's class name (any case, common synonyms) to the canonical name, or None if unknown."""
    return _ALIASES.get(name.strip().lower().replace("_", " ").split(" ")[-1])


def canonical_index(name: str) -> int | None:
    """Canonical index of a dataset's class name, or None if it names no known expression."""
    canon = canonical_name(name)
    return None if canon is None else CANONICAL.index(canon)


def class_names(num_classes: int) -> tuple[str, ...]:
    """The canonical class names of a 7- or 8-class problem."""
    if num_classes not in (7, 8):
        raise ValueError(f"semifer models predict 7 or 8 canonical classes, not {num_classes}")
    return CANONICAL[:num_classes]
