"""MixMatch (Berthelot et al., "MixMatch: A Holistic Approach to Semi-Supervised Learning", NeurIPS 2019).

Label guessing on K weak views, sharpening, MixUp of labeled and unlabeled images together, and an L2
consistency loss on the mixed unlabeled part.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from ..config_checks import SHAPE, UNIT, WEIGHT, option, positive, up_to
from .base import Batch, Method, MethodOptions, StepOutput
from .forward import forward_views
from .mixing import forward_mixed, linear_rampup, mixup, running_stats_frozen, sharpen
from .unlabeled_losses import pseudo_label, soft_cross_entropy


class MixMatch(Method):
    """MixMatch with the paper's defaults: K = 2, T = 0.5, alpha = 0.75, lambda_u = 75 (its CIFAR-10 value).

    Per step: the guess is the mean softmax over the K weak views of each unlabeled image (no gradient),
    sharpened with T. The labeled batch (one-hot targets) and all K unlabeled views (guess targets) are
    concatenated and mixed with a shuffled copy of that concatenation, lambda' = max(lambda, 1 - lambda),
    lambda ~ Beta(alpha, alpha). L_x = soft cross-entropy on the mixed labeled rows; L_u = mean squared
    error between softmax and target on the mixed unlabeled rows, averaged over rows and classes (the
    paper's 1 / (L |U'|)); loss = L_x + lambda_u(t) L_u.

    `interleave=True` follows the official code for batch-norm: the mixed batch is cut into groups
    (labeled, then one per unlabeled view), the groups exchange slices so each forward batch holds a share
    of labeled rows, and each batch is a separate pass on its own statistics; only the first batch updates
    the running statistics, and the label-guessing passes update none (official TF code and USB).
    `interleave=False` runs one pass over the whole mixed batch.

    Deviations and choices:
    - lambda_u ramps linearly from 0 over the first `rampup` = 0.4 of training, USB's value in its
      classic-CV MixMatch configs (the paper ramps over its first 16k steps, 1/64 of the official 2^20).
      The longer ramp keeps the weight 75 away from the near-random guesses of a short from-scratch run;
      set `rampup: 0.015625` for the paper's schedule (also USB's code default).
    - alpha = 0.75 is the paper's; USB's MixMatch configs use 0.5.
    - The official interleave needs equal labeled and unlabeled batch sizes; here the groups may differ
      (`train.unlabeled_ratio` != 1) and the same slice-exchange rule is applied to each group's own size.
    - Weak view = our flip + padded crop (the paper's flip + crop). The paper's optimisation (Adam lr 0.002,
      weight decay 0.02, EMA 0.999) is a training setting, not part of the method.
    - Under DDP each rank mixes within its own batch (its own lambda and permutation).
    """

    name = "mixmatch"
    # The paper's optimisation (its code's decoupled decay is the engine's ema_weight_decay).
    own_training = (
        "train.optimizer=adam",
        "train.lr=0.002",
        "train.weight_decay=0",
        "train.schedule=none",
        "train.ema=0.999",
        "train.ema_weight_decay=0.02",
        "train.unlabeled_ratio=1",
    )

    @dataclass
    class Options(MethodOptions):
        weak_views: int = option(2, up_to(1, 16))
        T: float = option(0.5, positive(SHAPE))
        mixup_alpha: float = option(0.75, up_to(0, SHAPE))
        lambda_u: float = option(75.0, up_to(0, WEIGHT))
        rampup: float = option(0.4, UNIT)
        interleave: bool = True
        crop_p: float = option(1.0, UNIT)  # the official weak view: random pad-and-crop always, then flip

    @property
    def unlabeled_views(self) -> tuple[str, ...]:  # type: ignore[override]
        return ("weak",) * self.opts.weak_views

    def step(self, model: nn.Module, labeled: Batch, unlabeled: Batch | None, progress: float) -> StepOutput:
        assert unlabeled is not None
        o = self.opts
        with torch.no_grad(), running_stats_frozen(model):
            outs = forward_views(model, unlabeled.views, separate=o.interleave)
            guess = sharpen(pseudo_label([z for z, _ in outs])[0], o.T)

        n_lab = len(labeled)
        inputs = torch.cat([labeled.views[0], *unlabeled.views])
        targets = torch.cat([F.one_hot(labeled.label, self.num_classes).float(), guess.repeat(o.weak_views, 1)])
        mixed_x, mixed_y, lam = mixup(inputs, targets, o.mixup_alpha)
        sizes = [n_lab] + [len(unlabeled)] * o.weak_views
        logits, _ = forward_mixed(model, mixed_x, sizes, o.interleave)

        loss_x = soft_cross_entropy(logits[:n_lab], mixed_y[:n_lab])
        loss_u = F.mse_loss(torch.softmax(logits[n_lab:].float(), dim=1), mixed_y[n_lab:])
        lambda_u = o.lambda_u * linear_rampup(progress, o.rampup)
        loss = loss_x + lambda_u * loss_u
        logs = {
            "loss_x": loss_x.detach(),
            "loss_u": loss_u.detach(),
            "lambda_u": torch.full((), lambda_u, device=loss.device),
            "mixup_lambda": torch.full((), lam, device=loss.device),
        }
        return StepOutput(loss, logs)
