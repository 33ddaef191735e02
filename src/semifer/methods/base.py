"""The interface every training method implements; the engine talks to methods only through it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from ..data.faceset import FaceSet


def single_process(tensor: torch.Tensor) -> torch.Tensor:
    """The cross-rank gather of a run in one process: the tensor itself."""
    return tensor


@dataclass
class Batch:
    """One batch on the device: `views[k]` is the k-th view of every image; `label` is -1 when unknown.

    For unlabeled batches the true labels of benchmark datasets are carried for diagnostics only.
    """

    views: list[torch.Tensor]
    label: torch.Tensor
    index: torch.Tensor

    def __len__(self) -> int:
        return len(self.label)


@dataclass
class StepOutput:
    """The loss to minimise and detached scalars to log (averaged over the epoch by the engine)."""

    loss: torch.Tensor
    logs: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass
class TrainContext:
    """What a method may learn about the run before its first step: the run's length and its data, and the
    engine's cross-rank gather for the steps (`all_gather_cat`: equally shaped tensors of every rank,
    concatenated in rank order), so that per-step statistics agree across ranks under DDP."""

    total_steps: int
    labeled: FaceSet
    unlabeled: FaceSet | None
    device: torch.device
    all_gather_cat: Callable[[torch.Tensor], torch.Tensor] = single_process


@dataclass
class EpochContext:
    """Services the engine offers to epoch hooks, without the method seeing the engine itself."""

    epoch: int
    epochs: int
    step: int
    ema_model: nn.Module
    labeled: FaceSet
    device: torch.device
    make_loader: Callable[[FaceSet, tuple[str, ...], bool], Any]
    all_reduce_sum: Callable[[torch.Tensor], torch.Tensor]


@dataclass
class MethodOptions:
    """Base of every method's `Options`: its hyper-parameters, read from the config's `method:` section.

    Subclasses declare each field's range or choices beside it (`config_checks.option`); `check` adds the
    rules that tie several fields together. Both run when the method is resolved, before training.
    """

    def check(self) -> None:
        """Raise ValueError for a combination the fields' own rules allow but the method cannot train with
        (subclasses extend it, calling `super().check()`)."""


class Method(nn.Module):
    """A training recipe: which views it needs and how a step turns batches into a loss.

    Subclasses set `name`, an `Options` dataclass of their hyper-parameters (a `MethodOptions`, read from
    the config's `method:` section by `resolve_method`), the views of labeled and unlabeled images they
    consume, and implement `step`.
    A method is a module so that its state (thresholds, counters) lives in buffers that follow the device
    and the checkpoint; it has no trainable parameters of its own.
    """

    name: ClassVar[str] = ""
    labeled_views: ClassVar[tuple[str, ...]] = ("weak",)
    unlabeled_views: ClassVar[tuple[str, ...]] = ()
    # The paper's training recipe (optimisation, unlabeled ratio mu), as config overrides: the engine never
    # applies it, but says at start when a run trains without it; presets and comparison tools apply it.
    own_training: ClassVar[tuple[str, ...]] = ()
    # The same for short CPU-scale runs (~1,000 steps of a small net), where some recipes need adapting.
    cpu_scale_training: ClassVar[tuple[str, ...]] = ()
    # mu, unlabeled images per labeled one, when train.unlabeled_ratio is not set (FixMatch: 7).
    unlabeled_ratio: ClassVar[float] = 1.0
    # Pseudo-labels from a teacher: the engine passes its EMA model to `step` as `teacher=` (no gradient;
    # in eval mode, or train mode when `teacher_mode` is "train"). Needs train.ema > 0.
    uses_teacher: ClassVar[bool] = False
    teacher_mode: ClassVar[str] = "eval"
    # Labeled batches drawn class-balanced (`ClassBalancedSampler`) unless data.balanced_labeled says otherwise.
    balanced_labeled: ClassVar[bool] = False
    head: ClassVar[dict[str, Any]] = {"dropout": 0.0, "l2norm": False, "attention": False, "feature_dropout": 0.0}

    Options = MethodOptions

    def __init__(self, options: MethodOptions, num_classes: int, num_unlabeled: int = 0):
        super().__init__()
        self.opts: Any = options
        self.num_classes = num_classes
        self.num_unlabeled = num_unlabeled

    @property
    def uses_unlabeled(self) -> bool:
        return bool(self.unlabeled_views)

    @property
    def view_options(self) -> dict[str, Any]:
        """Options of this method's training views: `crop_p`, the weak view's crop probability, when the
        method's Options has it (Ada-CM 0.5; FixMatch, MixMatch and their kin 1.0, as their code)."""
        return {"crop_p": self.opts.crop_p} if hasattr(self.opts, "crop_p") else {}

    def on_train_start(self, ctx: TrainContext) -> dict[str, Any]:
        """Prepare run-level state before the first step (also on resume); returns notes to log."""
        return {}

    def step(self, model: nn.Module, labeled: Batch, unlabeled: Batch | None, progress: float) -> StepOutput:
        """One optimisation step's loss; `progress` is the fraction of training done (0..1).

        Methods with `uses_teacher` take a keyword `teacher: nn.Module` too: the engine's EMA model.
        """
        raise NotImplementedError

    def on_epoch_end(self, ctx: EpochContext) -> dict[str, Any]:
        """Update epoch-level state (e.g. thresholds) and return diagnostics to log."""
        return {}
