"""What the training loop trains: an objective gives the data streams, the network and the loss of a step; the
loop (`engine.loop.Loop`) does everything else, once for every kind of run.

Supervised and semi-supervised training (`engine.trainer.MethodObjective`, around a `Method`) and the
pretrainings of `semifer.pretrain` (SimCLR, masked reconstruction) are objectives. An objective sees the loop
only through the contexts below, so it never depends on how the loop is written; the contract lives beside
`methods/base.py` so that methods and pretrainings use it without importing the engine.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from .base import Batch, StepOutput

__all__ = ["Batch", "EpochEnd", "Objective", "RunStart", "StepContext", "StepOutput", "Stream"]


@dataclass
class Stream:
    """An endless shuffled stream of training batches (`data.loaders.endless_loader`): `batch_size` items of
    `dataset` per step, drawn from `seed`; the loop shards it over ranks and starts it where a resume left."""

    dataset: Dataset
    batch_size: int
    seed: int
    extra_from: int | None = None
    extra_ratio: float | None = None
    balanced_labels: Sequence[int] | None = None


@dataclass
class RunStart:
    """What an objective may learn about the run before its first step (also on resume); `all_gather_cat`
    concatenates equally shaped tensors of every rank in rank order (no gradient), for per-step statistics
    that must agree across ranks."""

    total_steps: int
    device: torch.device
    all_gather_cat: Callable[[torch.Tensor], torch.Tensor]


@dataclass
class StepContext:
    """One step's services: `progress` is the fraction of the run done (by steps, or by the clock when a time
    budget is further on); `autocast` enters the run's mixed precision; `gather` concatenates a tensor over
    the ranks of a distributed run (rank order), gradients flowing into this rank's part; `teacher` is the
    EMA model when the run keeps one."""

    step: int
    progress: float
    device: torch.device
    autocast: Callable[[], AbstractContextManager]
    rank: int = 0
    world: int = 1
    gather: Callable[[torch.Tensor], torch.Tensor] = lambda tensor: tensor
    teacher: nn.Module | None = None


@dataclass
class EpochEnd:
    """The end of an epoch: `last` when the run ends with it (its steps or its time spent); `main` on the rank
    that writes the run directory; `ema_model` the EMA model, else the trained one."""

    epoch: int
    epochs: int
    step: int
    progress: float
    last: bool
    main: bool
    run_dir: Path
    device: torch.device
    ema_model: nn.Module
    all_reduce_sum: Callable[[torch.Tensor], torch.Tensor]


class Objective:
    """The interface the loop drives. Subclasses set `model` (the trained module: optimised, checkpointed, laid
    out and wrapped by the loop) and implement `streams` and `step`; the other hooks are optional.

    `ema`: the decay of an EMA copy of the model the loop keeps (0: none). `optimizer_options`: settings for
    every optimizer group that has them (MAE's AdamW betas). `name` and `loss_name` label the progress lines.
    """

    name: str = ""
    loss_name: str = "loss"
    model: nn.Module
    ema: float = 0.0
    optimizer_options: dict[str, Any] = {}

    def network(self, model: nn.Module) -> nn.Module:
        """The module `step` calls, around the loop's `model` (DistributedDataParallel wraps this one)."""
        return model

    def streams(self) -> list[Stream]:
        """The batches of a step, one per stream, in the order `step` receives them."""
        raise NotImplementedError

    def start(self, run: RunStart) -> dict[str, Any]:
        """Prepare before the first step (also on resume); returns notes to print and log."""
        return {}

    def step(self, net: nn.Module, batches: Sequence[Batch | None], ctx: StepContext) -> StepOutput:
        """The loss of one step on `batches` (the streams' batches) through `net`; the loop does the update."""
        raise NotImplementedError

    def end_epoch(self, end: EpochEnd) -> dict[str, Any]:
        """Epoch-level work (diagnostics, evaluation, previews); returns entries for the epoch's record."""
        return {}

    def checkpoint(self) -> dict[str, Any]:
        """Entries this objective adds to each checkpoint, beside the loop's own."""
        return {}

    def restore(self, state: dict[str, Any]) -> None:
        """Take back what `checkpoint` added, from a checkpoint's state."""

    def exports(self) -> dict[str, bytes]:
        """Files the run directory gets beside each checkpoint (name -> content), written atomically."""
        return {}
