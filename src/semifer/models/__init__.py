"""Backbones, the expression classifier and local checkpoint loading."""

from .backbones import BACKBONES
from .classifier import FERNet
from .pretrained import LoadReport, load_backbone_weights, load_model_weights, read_state_dict, weights_path

__all__ = [
    "BACKBONES",
    "FERNet",
    "LoadReport",
    "load_backbone_weights",
    "load_model_weights",
    "read_state_dict",
    "weights_path",
]
