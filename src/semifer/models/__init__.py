"""Backbones, the expression classifier and local checkpoint loading."""

from .backbones import BACKBONES
from .classifier import FERNet, fernet_from_config
from .pretrained import (
    LoadReport,
    load_backbone_weights,
    load_model_weights,
    read_state_dict,
    weights_file,
    weights_path,
)

__all__ = [
    "BACKBONES",
    "FERNet",
    "LoadReport",
    "fernet_from_config",
    "load_backbone_weights",
    "load_model_weights",
    "read_state_dict",
    "weights_file",
    "weights_path",
]
