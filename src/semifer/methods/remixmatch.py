"""ReMixMatch (Berthelot et al., "ReMixMatch: Semi-Supervised Learning with Distribution Alignment and
Augmentation Anchoring", ICLR 2020).

MixMatch with the guess taken from a weak view and aligned to the labeled class distribution, strong views
anchored to that guess, cross-entropy instead of L2 on the mixed unlabeled rows, and a pre-MixUp loss on
one strong view.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ..config_checks import SHAPE, UNIT, WEIGHT, option, positive, up_to
from ..labels import CANONICAL
from .base import Batch, EpochContext, Method, MethodOptions, StepOutput, TrainContext, single_process
from .forward import forward_views
from .mixing import align_distribution, forward_mixed, linear_rampup, mixup, running_stats_frozen, sharpen
from .mixmatch import MixMatch
from .thresholds import count_classes
from .unlabeled_losses import soft_cross_entropy


class ReMixMatch(Method):
    """ReMixMatch with the paper's loss weights: lambda_u = 1.5, lambda_u1 = 0.5, T = 0.5, alpha = 0.75.

    Per step:
    - guess: softmax of the weak view (no gradient), distribution alignment q * p(y) / p~(y) with p~(y)
      the mean of the model's unlabeled predictions over the last `history` = 128 batches (a buffer of
      batch means, initialised uniform and updated after the batch is aligned, as in the official code),
      renormalised, then sharpened with T;
    - augmentation anchoring: the `strong_views` strong views and the weak view take that guess as target;
    - MixUp (lambda' = max(lambda, 1 - lambda)) of labeled (one-hot) + strong views + weak view with a
      shuffled copy, forwarded interleaved as in MixMatch (`interleave`);
    - loss = L_x + r(t) (lambda_u L_u + lambda_u1 L_u1): L_x soft cross-entropy on the mixed labeled rows,
      L_u soft cross-entropy on the mixed unlabeled rows, L_u1 cross-entropy of the first strong view
      (not mixed) against the guess. r(t) ramps both unlabeled weights linearly over the first `rampup`
      = 0.4 of training (see below).

    Deviations and choices:
    - The official code and USB ramp over 1/64 of training (warmup_kimg 1024 of 2^16 kimg: 16k steps).
      In a short run from scratch 1/64 is a few dozen steps, and the cross-entropy to near-uniform guesses
      (weight 2 against the labeled 1) then holds the model at uniform predictions: on FER2013 at 1,200
      steps the labeled CE stayed at log 7 for the whole run and the model predicted one class (4.4 %).
      The default ramps over 0.4 of training, as our MixMatch does; `rampup: 0.015625` gives the paper's.
    - CTAugment is replaced by our RandAugment strong view (RandAugment + Cutout + weak), as USB and most
      re-implementations do; CTAugment's policy learning from labeled images is absent.
    - `strong_views` = 2 (the paper uses K = 8) to keep CPU runs affordable.
    - The rotation self-supervised loss is off (`lambda_rot` must stay 0): it needs a 4-way rotation head,
      and methods own no trainable parameters here (the optimizer is built from the classifier).
    - p(y) (`p_target: labeled`) is the running class frequency of the labeled batches seen so far
      (uniform until the first one), which converges to the labeled set's distribution the official code
      uses exactly; `p_target: uniform` aligns to the uniform distribution instead. Under DDP both the
      label counts and the prediction history gather every rank's batch, so all ranks align alike.
    - MixUp mixes the whole concatenation with one shuffled copy (the paper's algorithm and USB), not the
      official code's `xxy.yxy` mix mode; the weak view takes part, as in the official code.
    - Batch-norm running statistics: the guess pass updates none, the first interleaved batch does, the
      other interleaved batches and the L_u1 strong pass do not (USB's freezing; the official TF code keeps
      the last interleaved batch's update instead). With `interleave=False` everything is one pass.
    - The paper's optimisation (Adam lr 0.002, weight decay 0.02, EMA 0.999) is a training setting.
    """

    name = "remixmatch"
    own_training = MixMatch.own_training

    @dataclass
    class Options(MethodOptions):
        strong_views: int = option(2, up_to(1, 16))
        T: float = option(0.5, positive(SHAPE))
        mixup_alpha: float = option(0.75, up_to(0, SHAPE))
        lambda_u: float = option(1.5, up_to(0, WEIGHT))
        lambda_u1: float = option(0.5, up_to(0, WEIGHT))
        lambda_rot: float = option(0.0, up_to(0, WEIGHT))
        rampup: float = option(0.4, UNIT)
        history: int = option(128, up_to(1, 100_000))
        p_target: str = option("labeled", choices=("labeled", "uniform"))
        interleave: bool = True
        crop_p: float = option(1.0, UNIT)  # the official weak view: random pad-and-crop always, then flip

        def check(self) -> None:
            super().check()
            if self.lambda_rot != 0:
                raise ValueError(
                    "lambda_rot must be 0 -- the classifier has no rotation head and a method owns no "
                    "trainable parameters"
                )

    def __init__(self, options: Options, num_classes: int, num_unlabeled: int = 0):
        super().__init__(options, num_classes, num_unlabeled)
        self.all_gather_cat: Callable[[torch.Tensor], torch.Tensor] = single_process
        self.register_buffer("p_model_history", torch.full((self.opts.history, num_classes), 1.0 / num_classes))
        self.register_buffer("history_pos", torch.zeros((), dtype=torch.long))
        self.register_buffer("label_counts", torch.zeros(num_classes))

    @property
    def unlabeled_views(self) -> tuple[str, ...]:  # type: ignore[override]
        return ("weak",) + ("strong",) * self.opts.strong_views

    def on_train_start(self, ctx: TrainContext) -> dict[str, Any]:
        self.all_gather_cat = ctx.all_gather_cat  # every rank's batches feed the history and the label counts
        return {}

    def p_target(self) -> torch.Tensor:
        """p(y): the labeled batches' class frequencies so far, or uniform (also before any label is seen)."""
        uniform = torch.full_like(self.label_counts, 1.0 / self.num_classes, dtype=torch.float32)
        if self.opts.p_target == "uniform":
            return uniform
        total = self.label_counts.sum()
        return torch.where(total > 0, self.label_counts / total.clamp(min=1), uniform).float()  # no host read

    def p_model(self) -> torch.Tensor:
        """p~(y): the mean prediction on unlabeled images over the last `history` batches."""
        return self.p_model_history.mean(0)

    def align(self, probs: torch.Tensor) -> torch.Tensor:
        """Distribution alignment of (N, C) probabilities with the current p(y) and p~(y)."""
        return align_distribution(probs, self.p_target(), self.p_model())

    @torch.no_grad()
    def observe(self, probs: torch.Tensor, labels: torch.Tensor) -> None:
        """Push this step's mean unlabeled prediction into the history and count the labeled classes."""
        mean = self.all_gather_cat(probs.float().mean(0, keepdim=True)).mean(0)
        self.p_model_history.index_copy_(0, self.history_pos[None], mean[None])  # a tensor index: no host read
        self.history_pos.copy_((self.history_pos + 1) % len(self.p_model_history))
        counts = count_classes(labels, self.num_classes).to(self.label_counts)  # -1 (unknown) not counted
        self.label_counts += self.all_gather_cat(counts[None]).sum(0)

    def step(self, model: nn.Module, labeled: Batch, unlabeled: Batch | None, progress: float) -> StepOutput:
        assert unlabeled is not None
        o = self.opts
        weak, strong = unlabeled.views[0], unlabeled.views[1:]
        with torch.no_grad(), running_stats_frozen(model):
            probs = torch.softmax(forward_views(model, [weak], separate=True)[0][0].float(), dim=1)
            guess = sharpen(self.align(probs), o.T)
        self.observe(probs, labeled.label)

        n_lab, n_unl = len(labeled), len(unlabeled)
        inputs = torch.cat([labeled.views[0], *strong, weak])
        targets = torch.cat([F.one_hot(labeled.label, self.num_classes).float(), guess.repeat(o.strong_views + 1, 1)])
        mixed_x, mixed_y, lam = mixup(inputs, targets, o.mixup_alpha)
        sizes = [n_lab] + [n_unl] * (o.strong_views + 1)
        logits, (strong_logits,) = forward_mixed(model, mixed_x, sizes, o.interleave, extra=[strong[0]])

        loss_x = soft_cross_entropy(logits[:n_lab], mixed_y[:n_lab])
        loss_u = soft_cross_entropy(logits[n_lab:], mixed_y[n_lab:])
        loss_u1 = soft_cross_entropy(strong_logits, guess)
        ramp = linear_rampup(progress, o.rampup)
        loss = loss_x + ramp * (o.lambda_u * loss_u + o.lambda_u1 * loss_u1)
        logs = {
            "loss_x": loss_x.detach(),
            "loss_u": loss_u.detach(),
            "loss_u1": loss_u1.detach(),
            "lambda_u": torch.full((), ramp * o.lambda_u, device=loss.device),
            "mixup_lambda": torch.full((), lam, device=loss.device),
        }
        return StepOutput(loss, logs)

    def on_epoch_end(self, ctx: EpochContext) -> dict[str, Any]:
        return {
            "unlabeled/p_model": dict(zip(CANONICAL, self.p_model().tolist(), strict=False)),
            "unlabeled/p_target": dict(zip(CANONICAL, self.p_target().tolist(), strict=False)),
        }
