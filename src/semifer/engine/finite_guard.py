"""Stopping a run at its first non-finite loss, or skipping such batches, without a host sync per step.

A diverged run (`train.lr=1e6`) would otherwise train on NaN to the end, save NaN weights and report chance
accuracy with exit status 0. The guard notes on the device the first step whose loss is NaN or inf;
`check` reads that note where the loop already waits for the device (the progress bar's loss, every 25
steps, and the end of each epoch). Nothing is saved between two checks, so the checkpoint on disk always
predates the first bad step. In a distributed run the ranks agree: all stop, or all skip the same batch.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import SemiferError
from ..runtime import distributed as dist


class NonFiniteLoss(SemiferError):
    """The loss became NaN or inf: the message names the step and the last good checkpoint."""


class FiniteLossGuard:
    """`mode` "stop" (the default) raises NonFiniteLoss at the next check after the first bad step;
    "skip" reads every step's loss (one sync per step) and drops the update of a batch whose loss is bad."""

    def __init__(self, mode: str, iters_per_epoch: int, device: torch.device):
        self.mode, self.iters_per_epoch = mode, iters_per_epoch
        self.first_bad = torch.full((), -1, dtype=torch.long, device=device)
        self.skipped = 0

    def skip(self, loss: torch.Tensor) -> bool:
        """Whether to drop this step's update: only in skip mode, and only for a non-finite loss."""
        if self.mode != "skip":
            return False
        bad = dist.all_reduce_sum((~torch.isfinite(loss.detach()).all()).float().reshape(1))
        if not bool(bad.item()):
            return False
        self.skipped += 1
        return True

    def observe(self, loss: torch.Tensor, step: int) -> None:
        """Remember `step` (1-based) if it is the first with a non-finite loss; stays on the device."""
        bad = ~torch.isfinite(loss.detach()).all()
        self.first_bad = torch.where(bad & (self.first_bad < 0), step, self.first_bad)

    def check(self, checkpoint: Path) -> None:
        """Raise NonFiniteLoss if a step since the start had a non-finite loss (on any rank)."""
        steps = dist.all_gather_cat(self.first_bad.reshape(1))
        steps = steps[steps >= 0]
        if not len(steps):
            return
        step = int(steps.min())
        epoch = (step - 1) // self.iters_per_epoch + 1
        good = (epoch - 1) * self.iters_per_epoch
        last = (
            f"{checkpoint} (end of epoch {epoch - 1}, step {good})"
            if checkpoint.is_file() and good
            else "none (no epoch finished before it)"
        )
        raise NonFiniteLoss(
            f"the training loss became NaN or inf at step {step} (epoch {epoch}); the run stopped "
            f"and saved nothing after it. Last good checkpoint: {last}. Lower train.lr (or add "
            "train.warmup_iters), or set train.on_nonfinite=skip to drop such batches"
        )
