"""Confidence-based SSL as a composition of parts: views, a threshold policy, a confident-set loss and an
uncertain-set loss. FixMatch, FlexMatch, Pseudo-Label, Ada-CM, DTA+SNL and DTM are this class with different
defaults, so an ablation (3 weak views, another margin schedule, InfoNCE or SNL added to FixMatch) is a
config change. Each of them takes the options of `ConfidenceOptions` and those of the threshold policies it
uses (`threshold`'s choices); `confidence_ssl` itself takes every policy's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ..config_checks import SHAPE, UNIT, WEIGHT, option, positive, up_to
from ..labels import CANONICAL
from .base import Batch, EpochContext, Method, MethodOptions, StepOutput, TrainContext
from .forward import forward_views
from .thresholds import POLICIES, AdaptiveMargin, DynamicThreshold, FlexMatchThreshold, build_policy
from .unlabeled_losses import info_nce, masked_cross_entropy, pseudo_label, selective_negative_loss


@dataclass
class ConfidenceOptions(MethodOptions):
    """The options of every confidence-based method besides its threshold policy's: views, losses, weights.

    `threshold` names the policy; a method declares the policies it composes as its choices.
    """

    weak_views: int = option(1, up_to(1, 16))
    strong_views: int = option(1, up_to(0, 16))
    target_view: str = option("strong", choices=("strong", "weak"))
    separate_forward: bool = False
    threshold: str = option("fixed", choices=tuple(POLICIES))
    uncertain_loss: str = option("none", choices=("none", "infonce", "snl"))
    temperature: float = option(0.07, positive(SHAPE))
    snl_threshold: float = option(0.05, UNIT)
    snl_k: int = option(0, up_to(0, 8))  # classes, of 7 or 8
    lambda_x: float = option(1.0, up_to(0, WEIGHT))
    lambda_u: float = option(1.0, up_to(0, WEIGHT))
    lambda_c: float = option(0.0, up_to(0, WEIGHT))
    unsup_warmup: float = option(0.0, UNIT)
    pseudo_labeler: str = option("student", choices=("student", "teacher"))
    crop_p: float = option(1.0, UNIT)

    def check(self) -> None:
        super().check()
        if self.target_view == "strong" and self.strong_views < 1:
            raise ValueError("need a strong view when target_view is strong")


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
    class Options(ConfidenceOptions, FlexMatchThreshold.Options, AdaptiveMargin.Options, DynamicThreshold.Options):
        """The composable base takes every threshold policy's options."""

    def __init__(self, options: ConfidenceOptions, num_classes: int, num_unlabeled: int = 0):
        super().__init__(options, num_classes, num_unlabeled)
        self.policy = build_policy(self.opts, num_classes, num_unlabeled)
        self.register_buffer("stats", torch.zeros(4))
        self.register_buffer("class_selected", torch.zeros(num_classes))

    @property
    def unlabeled_views(self) -> tuple[str, ...]:  # type: ignore[override]
        strong = self.opts.strong_views if self.opts.target_view == "strong" else 0
        return ("weak",) * self.opts.weak_views + ("strong",) * strong

    @property
    def uses_teacher(self) -> bool:  # type: ignore[override]
        return self.opts.pseudo_labeler == "teacher"

    def on_train_start(self, ctx: TrainContext) -> dict[str, Any]:
        return self.policy.on_train_start(ctx)

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
