"""Threshold policies: which pseudo-labels an SSL method trusts, per class, as training goes.

A policy holds per-class thresholds (a tensor of shape (C,)) and decides the mask of an unlabeled batch
from its confidences and pseudo-labels. Policies update per step (FlexMatch, DTA/DTM) or per epoch (Ada-CM).
Each declares the option fields it reads (its `Options`, with their ranges), which the methods that use it
compose into their own options, and builds itself from them (`from_options`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ..config_checks import SHAPE, UNIT, UNIT_OPEN_BOTTOM, UNIT_OPEN_TOP, option, positive
from .base import EpochContext, MethodOptions, TrainContext, single_process


def count_classes(labels: torch.Tensor, n: int) -> torch.Tensor:
    """How many of `labels` equal each class 0..n-1 (other values, like -1 for unknown, are not counted).

    A comparison rather than `torch.bincount`, which reads the labels' range back to the host on a GPU.
    """
    return (labels[None, :] == torch.arange(n, device=labels.device)[:, None]).sum(1)


class ThresholdPolicy(nn.Module):
    """Per-class thresholds as a buffer (so they move with the model's device and checkpoints).

    Per-step statistics of every rank are gathered with `all_gather_cat`, the run's (`on_train_start`).
    """

    Options = MethodOptions

    def __init__(self, num_classes: int, initial: float):
        super().__init__()
        self.register_buffer("thresholds", torch.full((num_classes,), float(initial)))
        self.all_gather_cat: Callable[[torch.Tensor], torch.Tensor] = single_process

    @classmethod
    def from_options(cls, opts: Any, num_classes: int, num_unlabeled: int) -> ThresholdPolicy:
        """The policy from a method's options, which hold this policy's `Options` fields."""
        raise NotImplementedError

    def mask(self, confidence: torch.Tensor, pseudo: torch.Tensor) -> torch.Tensor:
        """1.0 where the sample's confidence reaches the threshold of its pseudo-label's class."""
        return (confidence >= self.thresholds[pseudo]).float()

    def observe(
        self, confidence: torch.Tensor, pseudo: torch.Tensor, index: torch.Tensor, probs: torch.Tensor | None = None
    ) -> None:
        """Per-step update from an unlabeled batch (no-op by default); `probs` is its (N, C) mean softmax."""

    def update_epoch(self, ctx: EpochContext) -> dict[str, Any]:
        """Per-epoch update; returns diagnostics to log."""
        return {}

    def set_run_length(self, total_steps: int) -> dict[str, Any]:
        """Adapt to the run's length before the first step (no-op by default); returns notes to log."""
        return {}

    def on_train_start(self, ctx: TrainContext) -> dict[str, Any]:
        """Take the run's cross-rank gather and adapt to its length; returns notes to log."""
        self.all_gather_cat = ctx.all_gather_cat
        return self.set_run_length(ctx.total_steps)


class FixedThreshold(ThresholdPolicy):
    """One fixed confidence threshold for every class (FixMatch: 0.95)."""

    @dataclass
    class Options(MethodOptions):
        tau: float = option(0.95, UNIT)

    def __init__(self, num_classes: int, tau: float = 0.95):
        super().__init__(num_classes, tau)

    @classmethod
    def from_options(cls, opts: Any, num_classes: int, num_unlabeled: int) -> FixedThreshold:
        return cls(num_classes, opts.tau)


class FlexMatchThreshold(ThresholdPolicy):
    """FlexMatch's curriculum pseudo-labeling (Zhang et al., NeurIPS 2021).

    Every unlabeled index remembers the last class it was confidently (> tau) predicted as. The learning
    effect of class c is sigma_c / max_k sigma_k; with warm-up the count of still-unused samples joins the
    max, so thresholds start near 0 and rise as the model learns. Threshold_c = tau * M(beta_c) with the
    convex mapping M(x) = x / (2 - x) (or linear M(x) = x).
    """

    @dataclass
    class Options(FixedThreshold.Options):
        flex_warmup: bool = True
        flex_mapping: str = option("convex", choices=("convex", "linear"))

    def __init__(
        self, num_classes: int, num_unlabeled: int, tau: float = 0.95, warmup: bool = True, mapping: str = "convex"
    ):
        super().__init__(num_classes, 0.0)
        self.tau, self.warmup, self.mapping = tau, warmup, mapping
        self.register_buffer("selected", torch.full((num_unlabeled,), -1, dtype=torch.long))

    @classmethod
    def from_options(cls, opts: Any, num_classes: int, num_unlabeled: int) -> FlexMatchThreshold:
        return cls(num_classes, num_unlabeled, opts.tau, opts.flex_warmup, opts.flex_mapping)

    def learning_effect(self) -> torch.Tensor:
        counts = count_classes(self.selected + 1, len(self.thresholds) + 1).float()
        denom = counts.max() if self.warmup else counts[1:].max()
        beta = counts[1:] / denom.clamp(min=1)
        any_used = counts[0] < len(self.selected)
        return torch.where(any_used, beta, torch.zeros_like(beta))

    def _refresh(self) -> None:
        beta = self.learning_effect()
        mapped = beta / (2.0 - beta) if self.mapping == "convex" else beta
        self.thresholds.copy_(self.tau * mapped)

    def mask(self, confidence: torch.Tensor, pseudo: torch.Tensor) -> torch.Tensor:
        self._refresh()
        return super().mask(confidence, pseudo)

    def observe(
        self, confidence: torch.Tensor, pseudo: torch.Tensor, index: torch.Tensor, probs: torch.Tensor | None = None
    ) -> None:
        """Remember confident predictions; under DDP every rank records every rank's batch."""
        confidence, pseudo, index = (self.all_gather_cat(t) for t in (confidence, pseudo, index))
        over = confidence > self.tau
        self.selected[index] = torch.where(over, pseudo, self.selected[index])


def schedule_factor(kind: str, t: int, gamma: float = math.e) -> float:
    """Epoch factor of Ada-CM's margin, t = epochs finished (1, 2, ...).

    paper:   1 / (1 + gamma^-t)                (Ada-CM; gamma = e in the authors' code)
    linear:  1 / (1 + (t+1)/t)                 (the reproduction study's alternatives)
    half:    1 / (1 + (t+1)/(2t))
    log2:    1 / (1 + e^(log2(t+1)))
    """
    factors: dict[str, Callable[[int], float]] = {
        "paper": lambda t: 1.0 / (1.0 + gamma ** (-t)),
        "linear": lambda t: 1.0 / (1.0 + (t + 1) / t),
        "half": lambda t: 1.0 / (1.0 + (t + 1) / (2 * t)),
        "log2": lambda t: 1.0 / (1.0 + math.exp(math.log2(t + 1))),
    }
    if kind not in factors:
        raise ValueError(f"unknown margin schedule {kind!r}; use {', '.join(factors)}")
    return factors[kind](t)


class AdaptiveMargin(ThresholdPolicy):
    """Ada-CM's per-class confidence margin (Li et al., CVPR 2022).

    Starts at `floor` for every class. After epoch t the EMA model (eval mode) runs over the labeled set
    with training augmentation; for class c, over the samples it predicts *correctly*:
        margin_c = B * mean(max softmax) * schedule(t), replaced by `floor` when lower or when none is correct.
    Statistics are summed over ranks, so every rank uses the same margins.
    """

    @dataclass
    class Options(MethodOptions):
        margin_B: float = option(0.97, UNIT)
        margin_gamma: float = option(math.e, positive(SHAPE))
        margin_floor: float = option(0.8, UNIT)
        margin_init: float = option(0.8, UNIT)
        margin_schedule: str = option("paper", choices=("paper", "linear", "half", "log2"))

    def __init__(
        self,
        num_classes: int,
        B: float = 0.97,
        gamma: float = math.e,
        floor: float = 0.8,
        schedule: str = "paper",
        initial: float = 0.8,
    ):
        super().__init__(num_classes, initial)
        schedule_factor(schedule, 1, gamma)
        self.B, self.gamma, self.floor, self.schedule = B, gamma, floor, schedule

    @classmethod
    def from_options(cls, opts: Any, num_classes: int, num_unlabeled: int) -> AdaptiveMargin:
        return cls(
            num_classes, opts.margin_B, opts.margin_gamma, opts.margin_floor, opts.margin_schedule, opts.margin_init
        )

    def margins_from(
        self,
        confidence: torch.Tensor,
        pred: torch.Tensor,
        label: torch.Tensor,
        t: int,
        reduce: Callable[[torch.Tensor], torch.Tensor] = lambda x: x,
    ) -> torch.Tensor:
        """New margins from labeled-set predictions (confidence = max prob, pred = argmax)."""
        n = len(self.thresholds)
        correct = pred == label
        sums = torch.zeros(2, n, device=confidence.device, dtype=torch.float64)
        sums[0].index_add_(0, label[correct], confidence[correct].double())
        sums[1].index_add_(0, label[correct], torch.ones_like(confidence[correct], dtype=torch.float64))
        sums = reduce(sums)
        mean = sums[0] / sums[1].clamp(min=1)
        margin = self.B * mean * schedule_factor(self.schedule, t, self.gamma)
        margin = torch.where((sums[1] > 0) & (margin >= self.floor), margin, torch.full_like(margin, self.floor))
        return margin.float()

    @torch.no_grad()
    def update_epoch(self, ctx: EpochContext) -> dict[str, Any]:
        model = ctx.ema_model
        was_training = model.training
        model.eval()
        confs, preds, labels = [], [], []
        for raw in ctx.make_loader(ctx.labeled, ("weak",), True):
            probs = torch.softmax(model(raw["views"][0].to(ctx.device)).float(), dim=1)
            conf, pred = probs.max(1)
            confs.append(conf)
            preds.append(pred)
            labels.append(raw["label"].to(ctx.device))
        model.train(was_training)
        margin = self.margins_from(torch.cat(confs), torch.cat(preds), torch.cat(labels), ctx.epoch, ctx.all_reduce_sum)
        self.thresholds.copy_(margin.to(self.thresholds.device))
        return {}


class DynamicThreshold(ThresholdPolicy):
    """Per-class thresholds that follow the model's learning state on unlabeled data, updated every step.

    Two exponential moving averages (momentum m) of the unlabeled batches, both starting at 1/C:
        global state  g <- m * g + (1 - m) * mean_i conf_i                   (how confident the model is)
        class state   s_c <- m * s_c + (1 - m) * x_c                         (how well it knows class c)
    with x_c chosen by `class_state`:
        "confidence":  mean conf_i over the batch's samples pseudo-labelled c (s_c is left unchanged when
                       the batch has none) -- DTA (Cai et al., "Semi-Supervised FER based on Dynamic
                       Threshold and Negative Learning"): a threshold per class from its own learning state.
        "probability": mean_i p_ic over the whole batch -- FreeMatch's self-adaptive threshold (Wang et al.,
                       ICLR 2023), the rule DTM (Yu, Cai et al., CVPR-W ABAW5 2023) adapts its threshold with.
    threshold_c = clip(g * s_c / max_k s_k, floor, ceil): the best-learned class needs the model's average
    confidence, classes it knows less (rare or hard expressions) need proportionally less, and all rise
    as training sharpens the predictions. Neither paper gives the constants; the defaults are FreeMatch's
    (m = 0.999, init 1/C, no clipping). A batch is masked with the thresholds of the steps before it
    (`observe` runs after `mask`), a one-step lag that m = 0.999 makes immaterial. Under DDP the states
    are updated from every rank's batch (all-gathered, as FreeMatch's code does), so all ranks agree.
    """

    MAX_MOMENTUM = 0.999

    @dataclass
    class Options(MethodOptions):
        dyn_momentum: float | None = option(None, UNIT_OPEN_TOP)
        dyn_class_state: str = option("confidence", choices=("confidence", "probability"))
        dyn_floor: float = option(0.0, UNIT)
        dyn_ceil: float = option(1.0, UNIT)
        dyn_warmup: float = option(0.1, UNIT_OPEN_BOTTOM)

    def __init__(
        self,
        num_classes: int,
        momentum: float | None = None,
        class_state: str = "confidence",
        floor: float = 0.0,
        ceil: float = 1.0,
        warmup: float = 0.1,
    ):
        super().__init__(num_classes, 1.0 / num_classes)
        if class_state not in ("confidence", "probability"):
            raise ValueError(f"unknown class_state {class_state!r}; use confidence or probability")
        if (
            (momentum is not None and not 0.0 <= momentum < 1.0)
            or not 0.0 <= floor <= ceil <= 1.0
            or not 0.0 < warmup <= 1.0
        ):
            raise ValueError("need 0 <= momentum < 1, 0 <= floor <= ceil <= 1 and 0 < warmup <= 1")
        self.scaled, self.warmup = momentum is None, warmup
        self.momentum = self.MAX_MOMENTUM if momentum is None else momentum
        self.class_state, self.floor, self.ceil = class_state, floor, ceil
        self.register_buffer("global_state", torch.tensor(1.0 / num_classes))
        self.register_buffer("class_states", torch.full((num_classes,), 1.0 / num_classes))
        self._refresh()

    @classmethod
    def from_options(cls, opts: Any, num_classes: int, num_unlabeled: int) -> DynamicThreshold:
        return cls(num_classes, opts.dyn_momentum, opts.dyn_class_state, opts.dyn_floor, opts.dyn_ceil, opts.dyn_warmup)

    @staticmethod
    def scaled_momentum(total_steps: int, warmup: float = 0.1) -> float:
        """m whose 1/C start keeps 1 % of its weight after `warmup` of `total_steps`, at most 0.999."""
        return min(DynamicThreshold.MAX_MOMENTUM, 0.01 ** (1.0 / max(1.0, warmup * total_steps)))

    def set_run_length(self, total_steps: int) -> dict[str, Any]:
        if self.scaled:
            self.momentum = self.scaled_momentum(total_steps, self.warmup)
        return {"dynamic_threshold_momentum": round(self.momentum, 6)}

    def _refresh(self) -> None:
        ratio = self.class_states / self.class_states.max().clamp(min=1e-12)
        self.thresholds.copy_((self.global_state * ratio).clamp(self.floor, self.ceil))

    @torch.no_grad()
    def observe(
        self, confidence: torch.Tensor, pseudo: torch.Tensor, index: torch.Tensor, probs: torch.Tensor | None = None
    ) -> None:
        m = self.momentum
        confidence, pseudo = self.all_gather_cat(confidence.float()), self.all_gather_cat(pseudo)
        self.global_state.mul_(m).add_((1 - m) * confidence.mean())
        if self.class_state == "probability":
            if probs is None:
                raise ValueError("class_state 'probability' needs the batch's probabilities")
            self.class_states.mul_(m).add_((1 - m) * self.all_gather_cat(probs.float()).mean(0))
        else:
            onehot = F.one_hot(pseudo, len(self.class_states)).float()  # a matmul: deterministic on GPU
            counts = onehot.sum(0)
            updated = m * self.class_states + (1 - m) * (confidence @ onehot) / counts.clamp(min=1)
            self.class_states.copy_(torch.where(counts > 0, updated, self.class_states))
        self._refresh()

    def update_epoch(self, ctx: EpochContext) -> dict[str, Any]:
        return {"threshold/global_state": float(self.global_state)}


POLICIES: dict[str, type[ThresholdPolicy]] = {
    "fixed": FixedThreshold,
    "flexmatch": FlexMatchThreshold,
    "adaptive_margin": AdaptiveMargin,
    "dynamic": DynamicThreshold,
}


def build_policy(opts: Any, num_classes: int, num_unlabeled: int) -> ThresholdPolicy:
    """The policy `opts.threshold` names (fixed, flexmatch, adaptive_margin, dynamic), from its option fields."""
    if opts.threshold not in POLICIES:
        raise ValueError(f"unknown threshold policy {opts.threshold!r}; use {', '.join(POLICIES)}")
    return POLICIES[opts.threshold].from_options(opts, num_classes, num_unlabeled)
