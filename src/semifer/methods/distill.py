"""Knowledge distillation (Hinton, Vinyals & Dean, 2015): the student learns the averaged softened predictions
of trained teachers besides the labels.

Why it is here: an ensemble of fine-tuned networks is more accurate than any one of them, but costs one
network's time per member at prediction; distillation moves much of that accuracy into one small network that
keeps its speed (the deployable model).

Loss: `alpha * T^2 * KL(mean_k softmax(t_k / T) || softmax(s / T)) + (1 - alpha) * CE(s, y)` on the labeled weak
view; the teachers (EMA weights of finished runs, any architecture) see the same images and are never trained.
`mixup > 0` mixes each batch with a shuffled copy before student and teachers see it (Beyer et al., 2022,
"a good teacher is patient and consistent"): the teachers are queried off the data manifold, where a student
learns most of their function, and the label term takes the mixed one-hot targets.
`teacher_flip_average` gives each teacher's target as the mean of its answers on the face and on its mirror
image (the packaged models' mirror average): a more accurate target for one more teacher pass.

`unlabeled_weight > 0` makes it semi-supervised, self-training with soft targets (Xie et al.'s Noisy Student
without the student's noise): the soft term also covers the weak view of unlabeled faces, at that weight, so
teachers trained on the few labels (e.g. a finished Bridging run) answer where no label exists. Teacher and
student see the same view (Beyer et al.'s consistent teaching), and the student starts afresh rather than
continuing the teachers' weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ..config_checks import SHAPE, UNIT, UNIT_OPEN_TOP, option, positive, up_to
from ..errors import ConfigError, SemiferError
from ..models import answering, load_model
from .base import Batch, Method, MethodOptions, StepOutput, TrainContext
from .mixing import mixup


def load_teacher(path: str | Path, num_classes: int) -> nn.Module:
    """The EMA network of a finished run (its directory or a checkpoint file) or an export, frozen and in eval
    mode on the CPU (`on_train_start` moves it to the run's device)."""
    try:
        teacher, info = load_model(path, use_ema=True, device="cpu")
    except SemiferError as exc:
        raise ConfigError(f"method.teachers: {exc}") from None
    if len(info.classes) != num_classes:
        raise ConfigError(f"method.teachers: {path} predicts {len(info.classes)} classes, the student {num_classes}")
    return teacher.requires_grad_(False)


class Distill(Method):
    """Labeled cross-entropy plus distillation from the averaged predictions of `teachers`."""

    name = "distill"

    @dataclass
    class Options(MethodOptions):
        teachers: list[str] = field(default_factory=list)
        temperature: float = option(4.0, positive(SHAPE))
        alpha: float = option(0.9, UNIT)
        label_smoothing: float = option(0.0, UNIT_OPEN_TOP)
        mixup: float = option(0.0, up_to(0, SHAPE))
        teacher_flip_average: bool = False
        unlabeled_weight: float = option(0.0, up_to(0, SHAPE))

        def check(self) -> None:
            super().check()
            if not self.teachers:
                raise ConfigError(
                    "method.teachers: give the run directories of the trained teachers, e.g. "
                    "method.teachers='[runs/a, runs/b]'"
                )

    def __init__(self, options: Options, num_classes: int, num_unlabeled: int = 0):
        super().__init__(options, num_classes, num_unlabeled)
        self._teachers = [  # not checkpointed
            answering(load_teacher(path, num_classes), self.opts.teacher_flip_average) for path in self.opts.teachers
        ]

    @property
    def unlabeled_views(self) -> tuple[str, ...]:  # type: ignore[override]
        return ("weak",) if self.opts.unlabeled_weight > 0 else ()

    def on_train_start(self, ctx: TrainContext) -> dict[str, Any]:
        self._teachers = [t.to(ctx.device) for t in self._teachers]
        return {"teachers": len(self._teachers)}

    def teacher_targets(self, x: torch.Tensor) -> torch.Tensor:
        """The teachers' averaged softmax at temperature T on images `x`; one pass of each teacher."""
        with torch.no_grad():
            return torch.stack([F.softmax(t(x).float() / self.opts.temperature, dim=1) for t in self._teachers]).mean(0)

    def soft_loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """`T^2 * KL(target || student)` at temperature T, the student's `logits` against the teachers' `target`."""
        temperature = self.opts.temperature
        return F.kl_div(F.log_softmax(logits / temperature, dim=1), target, reduction="batchmean") * temperature**2

    def step(self, model: nn.Module, labeled: Batch, unlabeled: Batch | None, progress: float) -> StepOutput:
        x, y = labeled.views[0], labeled.label
        if self.opts.mixup > 0:
            x, y, _ = mixup(x, F.one_hot(y, self.num_classes).float(), self.opts.mixup)
        if unlabeled is None or self.opts.unlabeled_weight == 0:
            logits = model(x).float()
            soft = self.soft_loss(logits, self.teacher_targets(x))
            logs = {}
        else:
            # One pass over labeled and unlabeled faces together: the teachers are in eval mode, so joining the
            # batches changes none of their answers.
            both = torch.cat([x, unlabeled.views[0]])
            logits_both, target = model(both).float(), self.teacher_targets(both)
            n = len(x)
            logits = logits_both[:n]
            soft_u = self.soft_loss(logits_both[n:], target[n:])
            soft = self.soft_loss(logits, target[:n]) + self.opts.unlabeled_weight * soft_u
            logs = {"loss_kd_u": soft_u.detach()}
        hard = F.cross_entropy(logits, y, label_smoothing=self.opts.label_smoothing)
        loss = self.opts.alpha * soft + (1 - self.opts.alpha) * hard
        return StepOutput(loss, {"loss_kd": soft.detach(), "loss_x": hard.detach(), **logs})
