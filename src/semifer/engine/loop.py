"""The iteration-based training loop, one for every run: it knows optimisation, not objectives. An objective
(`methods.objective`) turns batches into a loss; the loop does the rest: devices, memory layout, mixed
precision, DistributedDataParallel, EMA, the finite-loss guard, the time budget, progress, metrics.jsonl,
TensorBoard, checkpoints and an exact resume. `engine.trainer.Trainer` is the loop on a method,
`engine.pretraining.Pretrainer` the loop on a pretraining objective."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from ..config import Config
from ..data.loaders import endless_loader
from ..errors import ConfigError
from ..methods.objective import Batch, EpochEnd, Objective, RunStart, StepContext, Stream
from ..runtime import distributed as dist
from ..runtime.checkpoint import atomic_write, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from ..runtime.precision import autocast, autocast_dtype, grad_scaler
from .ema import ModelEMA, shrink_weights
from .finite_guard import FiniteLossGuard
from .optim import build_optimizer, build_scheduler
from .rundir import rewrite_metrics
from .tensorboard import TensorBoardLog
from .time_budget import TimeBudget


def best_on_validation(history: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The epoch record with the highest validation accuracy (the earliest on a tie), or None without one."""
    scored = [r for r in history if "val" in r]
    return max(scored, key=lambda r: r["val"]["accuracy"]) if scored else None


def to_batch(raw: dict[str, Any], device: torch.device, channels_last: bool) -> Batch:
    """A loader's batch on the device, its views laid out as the network is."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    views = [v.to(device, non_blocking=True, memory_format=fmt) for v in raw["views"]]
    return Batch(views, raw["label"].to(device, non_blocking=True), raw["index"].to(device, non_blocking=True))


class Loop:
    """Runs `cfg.train.epochs` x `cfg.train.iters_per_epoch` steps of `objective` (fewer when the time budget
    of `minutes` runs out first) and writes the run directory. `minutes_key` names the budget's setting."""

    def __init__(
        self,
        cfg: Config,
        run_dir: Path,
        objective: Objective,
        device: torch.device,
        rank: int = 0,
        world: int = 1,
        progress: bool = True,
        minutes: float | None = None,
        minutes_key: str = "train.minutes",
    ):
        self.cfg, self.run_dir, self.objective = cfg, run_dir, objective
        self.device, self.rank, self.world = device, rank, world
        self.progress = progress and rank == 0
        tc = cfg.train
        self.channels_last = cfg.model.channels_last
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        model = objective.model.to(device, memory_format=fmt)
        if world > 1 and tc.sync_bn:
            if device.type != "cuda":
                raise ConfigError("train.sync_bn needs CUDA devices (PyTorch's SyncBatchNorm is GPU-only)")
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        self.model = objective.model = model
        net = objective.network(model)
        self.train_model: nn.Module = (
            DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)
            if world > 1
            else net
        )
        self.ema = ModelEMA(model, objective.ema) if objective.ema > 0 else None
        if tc.compile:
            model.compile()  # in place, after the EMA copy: the state dict keeps its keys, evaluation stays eager
        self.total_steps = tc.epochs * tc.iters_per_epoch
        self.start_notes = objective.start(RunStart(self.total_steps, device, dist.all_gather_cat))
        self.optimizer = build_optimizer(model, tc)
        for group in self.optimizer.param_groups:
            group.update({k: v for k, v in objective.optimizer_options.items() if k in group})
        try:
            self.budget = TimeBudget(minutes)
        except ValueError as exc:
            raise ConfigError(f"{minutes_key}: {exc}") from None
        self.minutes = minutes
        self.scheduler = build_scheduler(self.optimizer, tc, self.total_steps, self.budget)
        self.amp_dtype = autocast_dtype(device, tc.amp)
        self.scaler = grad_scaler(device, self.amp_dtype)
        self.guard = FiniteLossGuard(tc.on_nonfinite, tc.iters_per_epoch, device)
        self.step = 0
        self.history: list[dict[str, Any]] = []
        self.tensorboard = TensorBoardLog(run_dir / "tensorboard") if cfg.log.tensorboard and rank == 0 else None

    # ----------------------------------------------------------- checkpoints
    def checkpoint_path(self, name: str = "last") -> Path:
        return self.run_dir / "checkpoints" / f"{name}.pt"

    def save(self, best: bool = False) -> None:
        """`checkpoints/last.pt` (and `best.pt` too when asked) and the objective's files, on rank 0."""
        if self.rank != 0:
            return
        state = {
            "config": self.cfg.to_dict(),
            "step": self.step,
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict() if self.ema else None,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": rng_state(),
            "history": self.history,
            "seconds_spent": self.budget.spent,
            **self.objective.checkpoint(),
        }
        save_checkpoint(state, self.checkpoint_path(), *([self.checkpoint_path("best")] if best else []))
        for name, content in self.objective.exports().items():
            atomic_write(self.run_dir / name, lambda fh, content=content: fh.write(content), name)

    def resume(self) -> bool:
        """Continue from `checkpoints/last.pt`; False when the run stopped before writing one, after emptying
        its metrics log, so the run that starts over does not log its epochs twice."""
        if not self.checkpoint_path().is_file():
            if self.rank == 0:
                rewrite_metrics(self.run_dir, [])
            self._say(
                f"{self.run_dir}: no checkpoint to resume from (the run stopped before its first one): "
                "starting over from step 0"
            )
            return False
        state = load_checkpoint(self.checkpoint_path())
        self.model.load_state_dict(state["model"])
        if self.ema and state.get("ema"):
            self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.objective.restore(state)
        set_rng_state(state["rng"])
        self.step, self.history = state["step"], state["history"]
        self.budget.spent_before = state.get("seconds_spent", 0.0)
        if self.rank == 0:
            rewrite_metrics(self.run_dir, self.history)
        self._say(f"resumed {self.run_dir} at step {self.step}")
        return True

    # -------------------------------------------------------------- training
    def fraction_done(self) -> float:
        """The fraction of the run done: by steps, or by the clock when a time budget is further on."""
        return max(self.step / max(1, self.total_steps), self.budget.fraction())

    def _train_step(self, *batches: Batch | None) -> dict[str, torch.Tensor]:
        """One update on the streams' batches; the step's logs, empty when the guard skipped the update."""
        self.train_model.train()
        ctx = StepContext(
            step=self.step,
            progress=self.fraction_done(),
            device=self.device,
            autocast=lambda: autocast(self.device, self.amp_dtype),
            rank=self.rank,
            world=self.world,
            gather=dist.all_gather_with_grad,
            teacher=self.ema.module if self.ema else None,
        )
        out = self.objective.step(self.train_model, batches, ctx)
        if self.guard.skip(out.loss):
            self.scheduler.step()
            return {}
        self.guard.observe(out.loss, self.step + 1)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(out.loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.cfg.train.ema_weight_decay:
            shrink_weights(self.model, 1.0 - self.cfg.train.ema_weight_decay * self.scheduler.get_last_lr()[0])
        self.scheduler.step()
        if self.ema:
            self.ema.update(self.model)
        return {"loss": out.loss.detach(), **out.logs}

    def eval_model(self) -> nn.Module:
        return self.ema.module if self.ema else self.model

    def _loader(self, stream: Stream) -> Iterator[dict[str, Any]]:
        return endless_loader(
            stream.dataset,
            stream.batch_size,
            stream.seed,
            self.cfg.data.workers,
            self.rank,
            self.world,
            start=self.step * stream.batch_size,
            extra_from=stream.extra_from,
            extra_ratio=stream.extra_ratio,
            balanced_labels=stream.balanced_labels,
        )

    def _out_of_time(self) -> bool:
        """Whether the time budget is spent; the ranks of a distributed run read rank 0's clock, so they stop
        at the same step and their schedules give the same learning rate."""
        if self.budget.seconds is None:
            return False
        if self.world > 1:
            spent = torch.tensor([self.budget.spent if self.rank == 0 else 0.0], device=self.device)
            self.budget.hold(float(dist.all_reduce_sum(spent).item()))
        return self.budget.expired()

    def fit(self, stop_after_epoch: int | None = None) -> list[dict[str, Any]]:
        """Train to the end, or until the time budget is spent, or stop after epoch `stop_after_epoch`
        (checkpointed, to resume later)."""
        tc = self.cfg.train
        loaders = [self._loader(stream) for stream in self.objective.streams()]
        for key, value in self.start_notes.items():
            self._say(f"{self.objective.name}: {key}: {value}")
        self.budget.start()
        epochs = min(tc.epochs, stop_after_epoch or tc.epochs)
        epoch, out_of_time = self.step // tc.iters_per_epoch, False
        while epoch < epochs and not (out_of_time := self._out_of_time()):
            sums: dict[str, torch.Tensor] = {}
            first = self.step - epoch * tc.iters_per_epoch
            started, images = time.perf_counter(), 0
            bar = tqdm(
                range(first, tc.iters_per_epoch),
                desc=f"{self.objective.name} {epoch + 1}/{tc.epochs}",
                disable=not self.progress,
                leave=False,
                mininterval=0.5 if sys.stderr.isatty() else 60,
            )
            for it in bar:
                batches = [to_batch(next(loader), self.device, self.channels_last) for loader in loaders]
                logs = self._train_step(*batches)
                for key, value in logs.items():
                    sums[key] = sums.get(key, 0) + value.float()
                self.step += 1
                images += sum(len(b) for b in batches)
                if it % 25 == 0:  # every rank checks together; .item() waits for the device, so only for a bar
                    if self.progress and "loss" in logs:  # refresh=False: a forced one prints a stale count
                        bar.set_postfix(loss=f"{logs['loss'].item():.4f}", refresh=False)
                    self.guard.check(self.checkpoint_path())
                if out_of_time := self._out_of_time():
                    break
            bar.close()
            self.guard.check(self.checkpoint_path())
            self._end_epoch(epoch, first, sums, images, time.perf_counter() - started, out_of_time)
            epoch += 1
        if out_of_time:
            self.save()  # the budget may run out after the epoch's save: record it spent, so a resume stops too
            self._say(f"time budget of {self.minutes:g} min spent after {self.step} of {self.total_steps} steps")
        if self.tensorboard is not None:
            self.tensorboard.close()
        return self.history

    def _end_epoch(
        self, epoch: int, first: int, sums: dict[str, torch.Tensor], images: int, seconds: float, out_of_time: bool
    ) -> None:
        """The epoch's record (metrics.jsonl, TensorBoard, progress line) and checkpoint."""
        tc = self.cfg.train
        steps = max(1, self.step - epoch * tc.iters_per_epoch - first)
        record: dict[str, Any] = {
            "epoch": epoch + 1,
            "step": self.step,
            "lr": self.optimizer.param_groups[0]["lr"],
            "images_per_s": images * self.world / max(seconds, 1e-9),
            "epoch_seconds": seconds,
        }
        record.update({f"train/{k}": float(v.item()) / steps for k, v in sums.items()})
        if not self.history:
            record.update({f"start/{k}": v for k, v in self.start_notes.items()})
        if self.guard.skipped:
            record["train/skipped_steps"] = self.guard.skipped
        end = EpochEnd(
            epoch=epoch + 1,
            epochs=tc.epochs,
            step=self.step,
            progress=self.fraction_done(),
            last=epoch + 1 == tc.epochs or out_of_time,
            main=self.rank == 0,
            run_dir=self.run_dir,
            device=self.device,
            ema_model=self.eval_model(),
            all_reduce_sum=dist.all_reduce_sum,
        )
        record.update(self.objective.end_epoch(end))
        self.history.append(record)
        if self.rank == 0:
            with (self.run_dir / "metrics.jsonl").open("a") as fh:
                fh.write(json.dumps(record) + "\n")
            if self.tensorboard is not None:
                self.tensorboard.log(record)
            self._print_epoch(record)
        self.save(best="val" in record and best_on_validation(self.history) is record)
        dist.barrier()

    def _say(self, text: str) -> None:
        if self.progress:
            tqdm.write(text)

    def _print_epoch(self, record: dict[str, Any]) -> None:
        text = f"{self.objective.name} epoch {record['epoch']}/{self.cfg.train.epochs}"
        text += f"  {self.objective.loss_name} {record.get('train/loss', 0):.4f}  {record['images_per_s']:.0f} img/s"
        if "test" in record:
            text += f"  test acc {100 * record['test']['accuracy']:.2f}%"
        if "val" in record:
            text += f"  val acc {100 * record['val']['accuracy']:.2f}%"
        if self.minutes is not None:  # a clock-bounded run ends on its minutes, not on its epoch count
            text += f"  {self.budget.spent / 60:.3g} of {self.minutes:g} min"
        self._say(text)
