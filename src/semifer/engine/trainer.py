"""The iteration-based training loop. It knows optimisation, not methods: a method turns batches into a
loss through `Method.step`, and the engine does the rest (devices, AMP, EMA, DDP, logging, checkpoints)."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from ..config import Config
from ..data.faceset import FaceSet
from ..data.loaders import ViewDataset, endless_loader, eval_loader
from ..data.views import build_view
from ..errors import ConfigError
from ..methods.base import Batch, EpochContext, Method, TrainContext
from ..methods.forward import MultiView
from ..runtime import distributed as dist
from ..runtime.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from ..runtime.precision import autocast, autocast_dtype, grad_scaler
from .ema import ModelEMA, shrink_weights
from .evaluate import Metrics, evaluate
from .finite_guard import FiniteLossGuard
from .optim import build_optimizer, build_scheduler
from .rundir import rewrite_metrics
from .tensorboard import TensorBoardLog


@dataclass
class TrainData:
    """`extra_from`: the index in `unlabeled` where the extra (e.g. face-recognition) pools begin;
    `val`: held-out labeled images that choose the best checkpoint (`data.val`)."""

    labeled: FaceSet
    unlabeled: FaceSet | None
    test: FaceSet | None
    extra_from: int | None = None
    val: FaceSet | None = None


def best_on_validation(history: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The epoch record with the highest validation accuracy (the earliest on a tie), or None without one."""
    scored = [r for r in history if "val" in r]
    return max(scored, key=lambda r: r["val"]["accuracy"]) if scored else None


def check_unlabeled(cfg: Config, method: Method, data: TrainData) -> None:
    """A method that learns from unlabeled images needs some: say so before training, naming the split. (A
    trainer built without data, to time steps on hand-made batches, is not checked.)"""
    if data.labeled is None or not method.uses_unlabeled or (data.unlabeled is not None and len(data.unlabeled)):
        return
    d = cfg.data
    split = f"data.split_file={d.split_file}" if d.split_file else f"data.split={d.split}"
    held = f" and data.val={d.val}" if d.val else ""
    raise ConfigError(
        f"method {method.name} learns from unlabeled images, but {split}{held} leaves no image of "
        f"{d.train} unlabeled; label fewer (e.g. data.split=per_class:20), set "
        "data.include_labeled_in_unlabeled=true, or add data.extra_unlabeled pools"
    )


def _to_batch(raw: dict[str, Any], device: torch.device, channels_last: bool) -> Batch:
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    views = [v.to(device, non_blocking=True, memory_format=fmt) for v in raw["views"]]
    return Batch(views, raw["label"].to(device, non_blocking=True), raw["index"].to(device, non_blocking=True))


class Trainer:
    """Runs `cfg.train.epochs` x `cfg.train.iters_per_epoch` steps of `method` and writes the run directory."""

    def __init__(
        self,
        cfg: Config,
        run_dir: Path,
        method: Method,
        model: nn.Module,
        data: TrainData,
        device: torch.device,
        rank: int = 0,
        world: int = 1,
        progress: bool = True,
    ):
        check_unlabeled(cfg, method, data)
        self.cfg, self.run_dir, self.method, self.data = cfg, run_dir, method.to(device), data
        self.device, self.rank, self.world = device, rank, world
        self.progress = progress and rank == 0
        tc = cfg.train
        self.channels_last = cfg.model.channels_last
        model = model.to(device, memory_format=torch.channels_last if self.channels_last else torch.contiguous_format)
        if world > 1 and tc.sync_bn:
            if device.type != "cuda":
                raise ConfigError("train.sync_bn needs CUDA devices (PyTorch's SyncBatchNorm is GPU-only)")
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        self.model = model
        views = MultiView(model)
        self.train_model: nn.Module = (
            DistributedDataParallel(views, device_ids=[device.index] if device.type == "cuda" else None)
            if world > 1
            else views
        )
        self.ema = ModelEMA(model, tc.ema) if tc.ema > 0 else None
        if method.uses_teacher and self.ema is None:
            raise ConfigError(
                f"method {method.name} pseudo-labels with the EMA teacher: set train.ema > 0 (e.g. train.ema=0.999)"
            )
        if tc.compile:
            model.compile()  # in place, after the EMA copy: the state dict keeps its keys, evaluation stays eager
        self.total_steps = tc.epochs * tc.iters_per_epoch
        self.start_notes = method.on_train_start(
            TrainContext(self.total_steps, data.labeled, data.unlabeled, device, dist.all_gather_cat)
        )
        self.optimizer = build_optimizer(model, tc)
        self.scheduler = build_scheduler(self.optimizer, tc, self.total_steps)
        self.amp_dtype = autocast_dtype(device, tc.amp)
        self.scaler = grad_scaler(device, self.amp_dtype)
        self.guard = FiniteLossGuard(tc.on_nonfinite, tc.iters_per_epoch, device)
        self.step = 0
        self.history: list[dict[str, Any]] = []
        self.tensorboard = TensorBoardLog(run_dir / "tensorboard") if cfg.log.tensorboard and rank == 0 else None

    # ----------------------------------------------------------------- data
    def _views(self, kinds: tuple[str, ...]) -> list:
        """One view per name; `data.augment=false` turns every view into the plain test view (ablations)."""
        d = self.cfg.data
        kinds = kinds if d.augment else tuple("test" for _ in kinds)
        extra = {"crop_padding": d.crop_padding, **self.method.view_options}
        return [build_view(k, d.img_size, d.bgr_quirk, **(extra if k != "test" else {})) for k in kinds]

    def _loaders(self) -> tuple[Any, Any]:
        tc, seed = self.cfg.train, self.cfg.seed
        balanced = self.cfg.data.balanced_labeled
        balanced = self.method.balanced_labeled if balanced is None else balanced
        labeled = endless_loader(
            ViewDataset(self.data.labeled, self._views(self.method.labeled_views)),
            tc.batch_size,
            seed,
            self.cfg.data.workers,
            self.rank,
            self.world,
            start=self.step * tc.batch_size,
            balanced_labels=self.data.labeled.labels if balanced else None,
        )
        unlabeled = None
        if self.method.uses_unlabeled and self.data.unlabeled is not None:
            mu = self.method.unlabeled_ratio if tc.unlabeled_ratio is None else tc.unlabeled_ratio
            ub = max(1, round(tc.batch_size * mu))
            unlabeled = endless_loader(
                ViewDataset(self.data.unlabeled, self._views(self.method.unlabeled_views)),
                ub,
                seed + 1,
                self.cfg.data.workers,
                self.rank,
                self.world,
                start=self.step * ub,
                extra_from=self.data.extra_from,
                extra_ratio=self.cfg.data.extra_ratio,
            )
        return labeled, unlabeled

    def _make_loader(self, faces: FaceSet, kinds: tuple[str, ...], train_mode: bool) -> Any:
        """A finite loader for epoch hooks; `train_mode` keeps shuffling and drop_last (Ada-CM's margin pass)."""
        dataset = ViewDataset(faces, self._views(kinds))
        if not train_mode:
            return eval_loader(dataset, self.cfg.train.eval_batch_size, 0)
        return torch.utils.data.DataLoader(
            dataset,
            batch_size=self.cfg.train.batch_size,
            shuffle=True,
            drop_last=len(faces) > self.cfg.train.batch_size,
        )

    # ----------------------------------------------------------- checkpoints
    def checkpoint_path(self, name: str = "last") -> Path:
        return self.run_dir / "checkpoints" / f"{name}.pt"

    def save(self, best: bool = False) -> None:
        """`checkpoints/last.pt`, and `best.pt` too when this epoch is the best on validation so far."""
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
            "method": self.method.state_dict(),
            "rng": rng_state(),
            "history": self.history,
            "classes": list(self.data.labeled.classes),
            "arch": self.cfg.model.arch,
        }
        save_checkpoint(state, self.checkpoint_path(), *([self.checkpoint_path("best")] if best else []))

    def resume(self) -> bool:
        """Continue from `checkpoints/last.pt`; False when the run stopped before writing one, after emptying
        its metrics log, so the run that starts over does not log its epochs twice."""
        if not self.checkpoint_path().is_file():
            if self.rank == 0:
                rewrite_metrics(self.run_dir, [])
            return False
        state = load_checkpoint(self.checkpoint_path())
        self.model.load_state_dict(state["model"])
        if self.ema and state["ema"]:
            self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.method.load_state_dict(state["method"])
        set_rng_state(state["rng"])
        self.step, self.history = state["step"], state["history"]
        if self.rank == 0:
            rewrite_metrics(self.run_dir, self.history)
        return True

    # -------------------------------------------------------------- training
    def _train_step(self, labeled: Batch, unlabeled: Batch | None) -> dict[str, torch.Tensor]:
        self.train_model.train()
        teacher = {"teacher": self._teacher()} if self.method.uses_teacher else {}
        with autocast(self.device, self.amp_dtype):
            out = self.method.step(self.train_model, labeled, unlabeled, self.step / self.total_steps, **teacher)
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

    def _teacher(self) -> nn.Module:
        """The EMA model in the mode the method asks for (its gradients are off)."""
        assert self.ema is not None
        return self.ema.module.train(self.method.teacher_mode == "train")

    def eval_model(self) -> nn.Module:
        return self.ema.module if self.ema else self.model

    def evaluate(self, faces: FaceSet | None = None) -> Metrics | None:
        """Metrics of the evaluation (EMA) model on `faces`, by default the test set."""
        faces = self.data.test if faces is None else faces
        if faces is None or self.rank != 0:
            return None
        return evaluate(
            self.eval_model(),
            faces,
            self.cfg.data.img_size,
            self.device,
            batch_size=self.cfg.train.eval_batch_size,
            bgr_quirk=self.cfg.data.bgr_quirk,
            progress=self.progress,
        )

    def fit(self, stop_after_epoch: int | None = None) -> list[dict[str, Any]]:
        """Train to the end (or stop after epoch `stop_after_epoch`, checkpointed, to resume later)."""
        tc = self.cfg.train
        labeled_iter, unlabeled_iter = self._loaders()
        if self.progress:
            for key, value in self.start_notes.items():
                tqdm.write(f"{self.method.name}: {key}: {value}")
        metrics_file = self.run_dir / "metrics.jsonl"
        start_epoch = self.step // tc.iters_per_epoch
        for epoch in range(start_epoch, min(tc.epochs, stop_after_epoch or tc.epochs)):
            sums: dict[str, torch.Tensor] = {}
            first = self.step - epoch * tc.iters_per_epoch
            started, images = time.perf_counter(), 0
            bar = tqdm(
                range(first, tc.iters_per_epoch),
                desc=f"epoch {epoch + 1}/{tc.epochs}",
                disable=not self.progress,
                leave=False,
                mininterval=0.5 if sys.stderr.isatty() else 60,
            )
            for it in bar:
                lb = _to_batch(next(labeled_iter), self.device, self.channels_last)
                ulb = None
                if unlabeled_iter is not None:
                    ulb = _to_batch(next(unlabeled_iter), self.device, self.channels_last)
                logs = self._train_step(lb, ulb)
                for key, value in logs.items():
                    sums[key] = sums.get(key, 0) + value.float()
                self.step += 1
                images += len(lb) + (len(ulb) if ulb is not None else 0)
                if it % 25 == 0:  # every rank checks together; .item() waits for the device, so only for a bar
                    if self.progress and "loss" in logs:
                        bar.set_postfix(loss=f"{logs['loss'].item():.3f}", refresh=False)
                    self.guard.check(self.checkpoint_path())
            self.guard.check(self.checkpoint_path())
            seconds = time.perf_counter() - started
            steps = max(1, tc.iters_per_epoch - first)
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
            record.update(self.method.on_epoch_end(self._epoch_context(epoch)))
            last = epoch + 1 == tc.epochs
            if (epoch + 1) % tc.eval_every == 0 or last:
                for key, faces in (("test", self.data.test), ("val", self.data.val)):
                    metrics = self.evaluate(faces) if faces is not None else None
                    if metrics is not None:
                        record[key] = {k: v for k, v in metrics.to_dict().items() if k != "classes"}
            self.history.append(record)
            if self.rank == 0:
                with metrics_file.open("a") as fh:
                    fh.write(json.dumps(record) + "\n")
                if self.tensorboard is not None:
                    self.tensorboard.log(record)
                self._print_epoch(record)
            self.save(best="val" in record and best_on_validation(self.history) is record)
            dist.barrier()
        if self.tensorboard is not None:
            self.tensorboard.close()
        return self.history

    def _epoch_context(self, epoch: int) -> EpochContext:
        return EpochContext(
            epoch=epoch + 1,
            epochs=self.cfg.train.epochs,
            step=self.step,
            ema_model=self.eval_model(),
            labeled=self.data.labeled,
            device=self.device,
            make_loader=self._make_loader,
            all_reduce_sum=dist.all_reduce_sum,
        )

    def _print_epoch(self, record: dict[str, Any]) -> None:
        if not self.progress:
            return
        text = f"epoch {record['epoch']}/{self.cfg.train.epochs}  loss {record.get('train/loss', 0):.4f}"
        text += f"  {record['images_per_s']:.0f} img/s"
        if "test" in record:
            text += f"  test acc {100 * record['test']['accuracy']:.2f}%"
        if "val" in record:
            text += f"  val acc {100 * record['val']['accuracy']:.2f}%"
        tqdm.write(text)
