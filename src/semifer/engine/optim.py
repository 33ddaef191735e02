"""Optimizers and per-iteration learning-rate schedules."""

from __future__ import annotations

import math

import torch
from torch import nn

from ..config import TrainConfig
from ..errors import ConfigError
from .time_budget import TimeBudget


def _no_weight_decay(model: nn.Module) -> set[str]:
    """Full names of parameters a module lists in timm's `no_weight_decay()` (a ViT's `pos_embed`, `cls_token`)."""
    names: set[str] = set()
    for prefix, module in model.named_modules():
        listed = module.no_weight_decay() if callable(getattr(module, "no_weight_decay", None)) else ()
        names.update(f"{prefix}.{n}" if prefix else n for n in listed)
    return names


def layer_scales(model: nn.Module, decay: float) -> dict[str, float]:
    """Layer-wise lr decay (BEiT; MAE's fine-tuning): lr multiplier per parameter name.

    Any submodule exposing `num_layers` and `layer_id(param_name)` (ids 0..num_layers) scales its
    parameter of layer i by decay^(num_layers - i): a ViT's embeddings get decay^(depth + 1), block i
    decay^(depth - i), its final norm 1; the small CNN's stage i of 4 decay^(4 - i); a ResNet's stem
    decay^5 and stage K decay^(5 - K). Parameters outside such a module (the head) get 1. MAE's
    fine-tuning uses 0.65 for ViT-B and 0.75 for ViT-L/H (its FINETUNE.md). On a pretrained CNN it
    keeps the early, generic stages close to the pretraining while the head and last stage adapt.
    """
    scales: dict[str, float] = {}
    for prefix, module in model.named_modules():
        if callable(getattr(module, "layer_id", None)) and hasattr(module, "num_layers"):
            for name, _ in module.named_parameters():
                full = f"{prefix}.{name}" if prefix else name
                scales.setdefault(full, decay ** (module.num_layers - module.layer_id(name)))
    if not scales:
        raise ConfigError(
            f"train.layer_decay={decay} needs a backbone with layers (`num_layers` and "
            "`layer_id`); set train.layer_decay=1.0 for this model"
        )
    return scales


def param_groups(model: nn.Module, cfg: TrainConfig) -> list[dict]:
    """Groups by (lr scale, weight decay): no weight decay on biases, norm layers and the parameters a module
    lists in `no_weight_decay()`; `train.layer_decay` < 1 adds per-layer lr scales (`lr_scale`, folded into
    each group's lr). The full-lr groups come first, so `param_groups[0]['lr']` is the logged base lr."""
    if not 0.0 < cfg.layer_decay <= 1.0:
        raise ConfigError(f"train.layer_decay must be in (0, 1], got {cfg.layer_decay}")
    scales = layer_scales(model, cfg.layer_decay) if cfg.layer_decay < 1.0 else {}
    skip = _no_weight_decay(model)
    groups: dict[tuple[float, bool], list[nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            decayed = p.ndim > 1 and name not in skip
            groups.setdefault((scales.get(name, 1.0), decayed), []).append(p)
    order = sorted(groups, key=lambda key: (-key[0], not key[1]))
    return [
        {
            "params": groups[key],
            "weight_decay": cfg.weight_decay if key[1] else 0.0,
            "lr_scale": key[0],
            "lr": cfg.lr * key[0],
        }
        for key in order
    ]


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """SGD (momentum, Nesterov), Adam (L2 decay) or AdamW (decoupled decay) over `param_groups`."""
    groups = param_groups(model, cfg)
    name = cfg.optimizer.lower()
    if name == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0)
    if name == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr)
    raise ConfigError(f"unknown train.optimizer {cfg.optimizer!r}; use sgd, adam or adamw")


def lr_factor(cfg: TrainConfig, step: int, total: int) -> float:
    """Multiplier of the base lr at `step`: linear warm-up, then none / cosine / step decay."""
    if step < cfg.warmup_iters:
        return (step + 1) / cfg.warmup_iters
    progress = (step - cfg.warmup_iters) / max(1, total - cfg.warmup_iters)
    if cfg.schedule == "none":
        return 1.0
    if cfg.schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    if cfg.schedule == "fixmatch_cosine":
        return math.cos(7.0 * math.pi * progress / 16.0)
    if cfg.schedule == "step":
        epoch = step // max(1, cfg.iters_per_epoch)
        return cfg.gamma ** sum(epoch >= m for m in cfg.milestones)
    raise ConfigError(f"unknown train.schedule {cfg.schedule!r}; use none, cosine, fixmatch_cosine or step")


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: TrainConfig, total: int, budget: TimeBudget | None = None
) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-iteration schedule; the config is checked now rather than at the first step. With a `budget`, the
    decay follows the clock when it is further on than the steps (`TimeBudget.schedule_step`)."""
    lr_factor(cfg, 0, total)
    if budget is None:
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(cfg, step, total))
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(cfg, budget.schedule_step(step, total, cfg.warmup_iters), total)
    )
