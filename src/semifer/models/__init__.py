"""Backbones, the expression classifier, and the one place that builds and loads it (`factory`).

`create_model(cfg_or_arch, num_classes, pretrained=...)` builds, `load_model(path)` opens a trained model with
its `ModelInfo`, `list_models()` names the architectures; `pretrained` reads local backbone checkpoints."""

from .backbones import BACKBONES, create_backbone
from .classifier import FERNet, FlipAverage, answering
from .factory import check_pretrained_arch, create_model, frozen_model, list_models, load_model
from .model_info import ModelInfo
from .pretrained import (
    LoadReport,
    backbone_arch,
    backbone_file,
    load_backbone_weights,
    load_model_weights,
    read_state_dict,
    weights_file,
    weights_path,
)

__all__ = [
    "BACKBONES",
    "FERNet",
    "FlipAverage",
    "LoadReport",
    "ModelInfo",
    "answering",
    "backbone_arch",
    "backbone_file",
    "check_pretrained_arch",
    "create_backbone",
    "create_model",
    "frozen_model",
    "list_models",
    "load_backbone_weights",
    "load_model",
    "load_model_weights",
    "read_state_dict",
    "weights_file",
    "weights_path",
]
