"""Rebuilding a trained model from a checkpoint for evaluation and prediction."""

from __future__ import annotations

from pathlib import Path

from ..config import Config, build_dataclass
from ..models import FERNet
from ..runtime.checkpoint import load_checkpoint
from ..runtime.distributed import local_device
from .run import make_model


def load_model(checkpoint: str | Path, use_ema: bool = True, device: str = "auto") -> tuple[FERNet, Config, list[str]]:
    """The model of a run (EMA weights unless `use_ema=False`) in eval mode, its config and class names."""
    state = load_checkpoint(checkpoint)
    cfg = build_dataclass(Config, state["config"])
    classes = list(state["classes"])
    model = make_model(cfg, len(classes))
    weights = state["ema"] if use_ema and state.get("ema") else state["model"]
    model.load_state_dict(weights)
    return model.to(local_device(device)).eval(), cfg, classes
