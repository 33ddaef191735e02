"""Optimizers and per-iteration learning-rate schedules."""

from __future__ import annotations

import math

import torch
from torch import nn

from ..config import TrainConfig
from ..errors import ConfigError


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """SGD (momentum, Nesterov) or Adam/AdamW; no weight decay on biases and norm layers for SGD/AdamW."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
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


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig,
                    total: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-iteration schedule; the config is checked now rather than at the first step."""
    lr_factor(cfg, 0, total)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(cfg, step, total))
