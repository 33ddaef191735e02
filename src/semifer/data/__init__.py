"""Dataset formats parsed into one canonical label space, label splits, and training views."""

from .faceset import UNLABELED, FaceSet, concat
from .registry import FORMATS, load_dataset, parse_spec

__all__ = ["FORMATS", "UNLABELED", "FaceSet", "concat", "load_dataset", "parse_spec"]
