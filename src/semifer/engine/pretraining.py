"""`semifer pretrain`: the pretraining objective `pretrain.method` names (`pretrain.kinds`), run by the
engine's loop, alone or under `torchrun`; the result is a backbone file for `model.pretrained=`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..config import Config, save_config
from ..pretrain.base import BACKBONE_FILE, PretrainObjective
from ..pretrain.kinds import objective_class
from ..runtime import distributed as dist
from .loop import Loop, to_batch
from .run import shared_run_dir, start_process
from .rundir import check_resume_config, claim_run_dir


@dataclass
class PretrainResult:
    """The run directory, the backbone checkpoint for `model.pretrained`, the per-epoch history and the
    step the run started from (non-zero after `resume`)."""

    run_dir: Path
    checkpoint: Path
    history: list[dict[str, Any]]
    start_step: int = 0


class Pretrainer(Loop):
    """The engine's loop on the pretraining objective `pretrain.method` names, bounded by `pretrain.minutes`
    (or `train.minutes`)."""

    objective: PretrainObjective

    def __init__(
        self,
        cfg: Config,
        run_dir: Path,
        progress: bool = True,
        device: torch.device | None = None,
        rank: int = 0,
        world: int = 1,
    ):
        objective = objective_class(cfg)(cfg, run_dir, main=rank == 0)
        minutes, key = objective.opts.minutes, "pretrain.minutes"
        if minutes is None:
            minutes, key = cfg.train.minutes, "train.minutes"
        device = dist.local_device(cfg.train.device) if device is None else device
        super().__init__(cfg, run_dir, objective, device, rank, world, progress, minutes, key)

    def backbone_path(self) -> Path:
        return self.run_dir / BACKBONE_FILE

    def train_step(self, images: torch.Tensor) -> torch.Tensor:
        """One update on a batch of loader images (timings, tests); its loss."""
        n = len(images)
        raw = {"views": [images], "label": torch.full((n,), -1), "index": torch.arange(n)}
        return self._train_step(to_batch(raw, self.device, self.channels_last))["loss"]


def resolve_lr(cfg: Config, opts: Any) -> None:
    """train.lr = base_lr * batch_size / 256 (MAE's and SimCLR's scaling rule) unless base_lr is null;
    recorded in config.yaml."""
    if opts.base_lr is not None:
        cfg.train.lr = opts.base_lr * cfg.train.batch_size / 256


def pretrain(
    cfg: Config,
    resume: bool = False,
    progress: bool = True,
    run_dir: Path | None = None,
    overwrite: bool = False,
    stop_after_epoch: int | None = None,
) -> PretrainResult:
    """Run the pretraining `cfg.pretrain['method']` names (default `mae`); returns where the backbone is.
    `stop_after_epoch` ends early with a checkpoint, which `resume=True` continues, as in `engine.run.train`.

    Under `torchrun` every rank trains on its shard of the pool (DistributedDataParallel) and rank 0 writes
    the run directory, held as in `engine.run.train`: resumed with its own config, or overwritten only when
    asked."""
    device, rank, world = start_process(cfg)
    kind = objective_class(cfg)
    opts = kind.options(cfg)
    resolve_lr(cfg, opts)
    if hasattr(opts, "patch_size"):
        cfg.pretrain = {**cfg.pretrain, "patch_size": opts.patch_size}
    run_dir = shared_run_dir(cfg, resume, run_dir)
    with claim_run_dir(run_dir, resume, overwrite, owner=rank == 0):
        run_dir.mkdir(parents=True, exist_ok=True)
        if rank == 0:
            if resume:
                check_resume_config(run_dir, cfg.to_dict())
            save_config(cfg, run_dir / "config.yaml")
        dist.barrier()
        trainer = Pretrainer(cfg, run_dir, progress, device, rank, world)
        if resume:
            trainer.resume()
        start = trainer.step
        history = trainer.fit(stop_after_epoch)
    return PretrainResult(run_dir, trainer.backbone_path(), history, start)
