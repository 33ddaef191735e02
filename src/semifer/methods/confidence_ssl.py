"""Confidence-based SSL as a composition of parts: views, a threshold policy, a confident-set loss and an
uncertain-set loss. FixMatch, FlexMatch, Pseudo-Label, Ada-CM, DTA+SNL and DTM are this class with different
defaults, so an ablation (3 weak views, another margin schedule, InfoNCE or SNL added to FixMatch) is a
config change.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ..labels import CANONICAL
from .base import Batch, EpochContext, Method, StepOutput, TrainContext
from .forward import forward_views
from .thresholds import ThresholdPolicy, build_policy
from .unlabeled_losses import info_nce, masked_cross_entropy, pseudo_label, selective_negative_loss


class ConfidenceSSL(Method):
    """Labeled CE + masked pseudo-label CE on confident unlabeled images + an optional uncertain-set loss.

    Pseudo-label = argmax of the mean softmax over `weak_views` weak views; the confident-set loss trains
    each of the `strong_views` strong views (or the weak views themselves, `target_view: weak`) on it.
    The uncertain-set loss (weight lambda_c) acts on the images below their threshold: `infonce` on the
    weak views' features (Ada-CM), `snl` on the logits the confident-set loss trains, with complementary
    labels from the weak views' mean softmax (a strong view learns what the weak view rules out).

    `pseudo_labeler: teacher` takes the guess from the engine's EMA model (the teacher, no gradient) on the
    weak views instead of the student; the student then forwards the weak views only when a loss needs
    them (InfoNCE, `target_view: weak`). `crop_p` is the weak view's crop probability (FixMatch's 1.0).
    """

    name = "confidence_ssl"

    @dataclass
    class Options:
        weak_views: int = 1
        strong_views: int = 1
        target_view: str = "strong"
        separate_forward: bool = False
        threshold: str = "fixed"
        tau: float = 0.95
        flex_warmup: bool = True
        flex_mapping: str = "convex"
        margin_B: float = 0.97
        margin_gamma: float = math.e
        margin_floor: float = 0.8
        margin_init: float = 0.8
        margin_schedule: str = "paper"
        dyn_momentum: float | None = None
        dyn_class_state: str = "confidence"
        dyn_floor: float = 0.0
        dyn_ceil: float = 1.0
        uncertain_loss: str = "none"
        temperature: float = 0.07
        snl_threshold: float = 0.05
        snl_k: int = 0
        lambda_x: float = 1.0
        lambda_u: float = 1.0
        lambda_c: float = 0.0
        unsup_warmup: float = 0.0
        pseudo_labeler: str = "student"
        crop_p: float = 1.0
        dyn_warmup: float = 0.1

    def __init__(self, options: dict[str, Any], num_classes: int, num_unlabeled: int = 0):
        super().__init__(options, num_classes, num_unlabeled)
        o = self.opts
        if o.target_view not in ("strong", "weak") or o.uncertain_loss not in ("none", "infonce", "snl"):
            raise ValueError("target_view must be strong|weak and uncertain_loss none|infonce|snl")
        if o.weak_views < 1 or (o.target_view == "strong" and o.strong_views < 1):
            raise ValueError("need at least one weak view, and a strong view when target_view is strong")
        if o.pseudo_labeler not in ("student", "teacher"):
            raise ValueError(f"method.pseudo_labeler must be student or teacher, got {o.pseudo_labeler!r}")
        self.policy = self.make_policy()
        self.register_buffer("stats", torch.zeros(4))
        self.register_buffer("class_selected", torch.zeros(num_classes))

    def make_policy(self) -> ThresholdPolicy:
        o = self.opts
        options: dict[str, Any] = {
            "fixed": {"tau": o.tau},
            "flexmatch": {"tau": o.tau, "warmup": o.flex_warmup, "mapping": o.flex_mapping},
            "adaptive_margin": {
                "B": o.margin_B,
                "gamma": o.margin_gamma,
                "floor": o.margin_floor,
                "schedule": o.margin_schedule,
                "initial": o.margin_init,
            },
            "dynamic": {
                "momentum": o.dyn_momentum,
                "warmup": o.dyn_warmup,
                "class_state": o.dyn_class_state,
                "floor": o.dyn_floor,
                "ceil": o.dyn_ceil,
            },
        }.get(self.opts.threshold, {})
        return build_policy(o.threshold, self.num_classes, self.num_unlabeled, options)

    @property
    def unlabeled_views(self) -> tuple[str, ...]:  # type: ignore[override]
        strong = self.opts.strong_views if self.opts.target_view == "strong" else 0
        return ("weak",) * self.opts.weak_views + ("strong",) * strong

    @property
    def uses_teacher(self) -> bool:  # type: ignore[override]
        return self.opts.pseudo_labeler == "teacher"

    def on_train_start(self, ctx: TrainContext) -> dict[str, Any]:
        return self.policy.set_run_length(ctx.total_steps)

    def step(
        self,
        model: nn.Module,
        labeled: Batch,
        unlabeled: Batch | None,
        progress: float,
        teacher: nn.Module | None = None,
    ) -> StepOutput:
        assert unlabeled is not None
        o = self.opts
        k = o.weak_views
        weak, strong = unlabeled.views[:k], unlabeled.views[k:]
        features = o.uncertain_loss == "infonce"
        student_weak = teacher is None or features or o.target_view == "weak"
        # Ada-CM's order of passes: weak views, labeled, strong (matters for BN running statistics).
        outs = forward_views(
            model, [*(weak if student_weak else []), labeled.views[0], *strong], o.separate_forward, features
        )
        k_out = k if student_weak else 0
        weak_out, labeled_logits, strong_out = outs[:k_out], outs[k_out][0], outs[k_out + 1 :]

        if teacher is None:
            guess = [z for z, _ in weak_out]
        else:
            with torch.no_grad():
                guess = [teacher(v) for v in weak]
        probs, confidence, pseudo = pseudo_label(guess)
        mask = self.policy.mask(confidence, pseudo)
        self.policy.observe(confidence, pseudo, unlabeled.index, probs)

        loss_x = F.cross_entropy(labeled_logits.float(), labeled.label)
        targets = strong_out if o.target_view == "strong" else weak_out
        loss_u = torch.stack([masked_cross_entropy(z, pseudo, mask) for z, _ in targets]).mean()
        ramp = min(1.0, progress / o.unsup_warmup) if o.unsup_warmup > 0 else 1.0
        loss = o.lambda_x * loss_x + ramp * o.lambda_u * loss_u
        logs = {"loss_x": loss_x.detach(), "loss_u": loss_u.detach(), "mask": mask.mean()}
        if o.uncertain_loss != "none":
            if features:
                loss_c = info_nce([f for _, f in weak_out], mask < 1, o.temperature, o.temperature)
            else:
                loss_c = torch.stack(
                    [selective_negative_loss(z, probs, mask < 1, o.snl_threshold, o.snl_k) for z, _ in targets]
                ).mean()
            loss = loss + o.lambda_c * loss_c
            logs["loss_c"] = loss_c.detach()
        self._record(mask, pseudo, unlabeled.label)
        return StepOutput(loss, logs)

    @torch.no_grad()
    def _record(self, mask: torch.Tensor, pseudo: torch.Tensor, truth: torch.Tensor) -> None:
        """Accumulate subset sizes and pseudo-label accuracy (true labels are diagnostics only)."""
        known = (truth >= 0).float()
        right = (pseudo == truth).float()
        self.stats += torch.stack(
            [
                mask.sum(),
                torch.ones_like(mask).sum(),  # no host-to-device copy
                (mask * right * known).sum(),
                (mask * known).sum(),
            ]
        )
        self.class_selected.index_add_(0, pseudo, mask)

    def on_epoch_end(self, ctx: EpochContext) -> dict[str, Any]:
        stats = ctx.all_reduce_sum(self.stats.clone())
        selected = ctx.all_reduce_sum(self.class_selected.clone())
        self.stats.zero_()
        self.class_selected.zero_()
        used, seen, right, known = stats.tolist()
        record: dict[str, Any] = {
            "unlabeled/subset1_fraction": used / max(seen, 1),
            "unlabeled/subset2_fraction": 1 - used / max(seen, 1),
            "unlabeled/pseudo_label_accuracy_subset1": right / known if known else None,
            "unlabeled/selected_per_class": dict(zip(CANONICAL, selected.tolist(), strict=False)),
        }
        record.update(self.policy.update_epoch(ctx))
        record["thresholds"] = dict(zip(CANONICAL, self.policy.thresholds.tolist(), strict=False))
        return record
