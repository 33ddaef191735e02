"""Supervised and semi-supervised training as an objective of the engine's loop (`engine.loop.Loop`): a
`Method` turns batches into a loss through `Method.step`, `MethodObjective` gives the loop the method's
streams of views, its network, its epoch hooks and the evaluation of the EMA model, and `Trainer` is the loop
on it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..config import Config
from ..data.faceset import FaceSet
from ..data.loaders import ViewDataset, eval_loader
from ..data.views import build_view
from ..errors import ConfigError
from ..methods.base import EpochContext, Method, StepOutput, TrainContext
from ..methods.forward import MultiView
from ..methods.objective import Batch, EpochEnd, Objective, RunStart, StepContext, Stream
from .evaluate import Metrics, evaluate
from .loop import Loop


@dataclass
class TrainData:
    """`extra_from`: the index in `unlabeled` where the extra (e.g. face-recognition) pools begin;
    `val`: held-out labeled images that choose the best checkpoint (`data.val`)."""

    labeled: FaceSet
    unlabeled: FaceSet | None
    test: FaceSet | None
    extra_from: int | None = None
    val: FaceSet | None = None


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


class MethodObjective(Objective):
    """Training a classifier with a `Method`: its labeled (and unlabeled) streams of views, its step through
    `MultiView` (so a method's several passes are one DDP forward), its epoch hooks, and the evaluation of the
    EMA model on the test and validation sets."""

    def __init__(self, cfg: Config, method: Method, model: nn.Module, data: TrainData, progress: bool = True):
        if method.uses_teacher and cfg.train.ema <= 0:
            raise ConfigError(
                f"method {method.name} pseudo-labels with the EMA teacher: set train.ema > 0 (e.g. train.ema=0.999)"
            )
        self.cfg, self.method, self.model, self.data, self.progress = cfg, method, model, data, progress
        self.name, self.ema = method.name, max(cfg.train.ema, 0.0)

    def network(self, model: nn.Module) -> nn.Module:
        return MultiView(model)

    def views(self, kinds: tuple[str, ...]) -> list:
        """One view per name; `data.augment=false` turns every view into the plain test view (ablations)."""
        d = self.cfg.data
        kinds = kinds if d.augment else tuple("test" for _ in kinds)
        extra = {"crop_padding": d.crop_padding, **self.method.view_options}
        return [build_view(k, d.img_size, d.bgr_quirk, **(extra if k != "test" else {})) for k in kinds]

    def streams(self) -> list[Stream]:
        tc, d, seed = self.cfg.train, self.cfg.data, self.cfg.seed
        balanced = self.method.balanced_labeled if d.balanced_labeled is None else d.balanced_labeled
        streams = [
            Stream(
                ViewDataset(self.data.labeled, self.views(self.method.labeled_views)),
                tc.batch_size,
                seed,
                balanced_labels=self.data.labeled.labels if balanced else None,
            )
        ]
        if self.method.uses_unlabeled and self.data.unlabeled is not None:
            mu = self.method.unlabeled_ratio if tc.unlabeled_ratio is None else tc.unlabeled_ratio
            streams.append(
                Stream(
                    ViewDataset(self.data.unlabeled, self.views(self.method.unlabeled_views)),
                    max(1, round(tc.batch_size * mu)),
                    seed + 1,
                    extra_from=self.data.extra_from,
                    extra_ratio=d.extra_ratio,
                )
            )
        return streams

    def start(self, run: RunStart) -> dict[str, Any]:
        self.method.to(run.device)
        return self.method.on_train_start(
            TrainContext(run.total_steps, self.data.labeled, self.data.unlabeled, run.device, run.all_gather_cat)
        )

    def step(self, net: nn.Module, batches: Sequence[Batch | None], ctx: StepContext) -> StepOutput:
        labeled, unlabeled = batches[0], batches[1] if len(batches) > 1 else None
        teacher = {}
        if self.method.uses_teacher:  # the EMA model in the mode the method asks for (its gradients are off)
            assert ctx.teacher is not None
            teacher = {"teacher": ctx.teacher.train(self.method.teacher_mode == "train")}
        with ctx.autocast():
            return self.method.step(net, labeled, unlabeled, ctx.progress, **teacher)

    def make_loader(self, faces: FaceSet, kinds: tuple[str, ...], train_mode: bool) -> Any:
        """A finite loader for epoch hooks; `train_mode` keeps shuffling and drop_last (Ada-CM's margin pass)."""
        dataset = ViewDataset(faces, self.views(kinds))
        if not train_mode:
            return eval_loader(dataset, self.cfg.train.eval_batch_size, 0)
        return torch.utils.data.DataLoader(
            dataset,
            batch_size=self.cfg.train.batch_size,
            shuffle=True,
            drop_last=len(faces) > self.cfg.train.batch_size,
        )

    def evaluate(self, model: nn.Module, faces: FaceSet, device: torch.device) -> Metrics:
        return evaluate(
            model,
            faces,
            self.cfg.data.img_size,
            device,
            batch_size=self.cfg.train.eval_batch_size,
            bgr_quirk=self.cfg.data.bgr_quirk,
            progress=self.progress,
        )

    def end_epoch(self, end: EpochEnd) -> dict[str, Any]:
        """The method's epoch hook, then test and validation metrics every `train.eval_every` epochs and at
        the end (on the main rank)."""
        context = EpochContext(
            epoch=end.epoch,
            epochs=end.epochs,
            step=end.step,
            ema_model=end.ema_model,
            labeled=self.data.labeled,
            device=end.device,
            make_loader=self.make_loader,
            all_reduce_sum=end.all_reduce_sum,
        )
        record = self.method.on_epoch_end(context)
        if end.main and (end.epoch % self.cfg.train.eval_every == 0 or end.last):
            for key, faces in (("test", self.data.test), ("val", self.data.val)):
                if faces is not None:
                    metrics = self.evaluate(end.ema_model, faces, end.device)
                    record[key] = {k: v for k, v in metrics.to_dict().items() if k != "classes"}
        return record

    def checkpoint(self) -> dict[str, Any]:
        return {
            "method": self.method.state_dict(),
            "classes": list(self.data.labeled.classes),
            "arch": self.cfg.model.arch,
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.method.load_state_dict(state["method"])


class Trainer(Loop):
    """The engine's loop on a `MethodObjective`: `cfg.train.epochs` x `cfg.train.iters_per_epoch` steps of
    `method` (fewer when `train.minutes` runs out first), written to the run directory."""

    objective: MethodObjective

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
        objective = MethodObjective(cfg, method, model, data, progress and rank == 0)
        super().__init__(cfg, run_dir, objective, device, rank, world, progress, cfg.train.minutes)

    @property
    def method(self) -> Method:
        return self.objective.method

    @property
    def data(self) -> TrainData:
        return self.objective.data

    def evaluate(self, faces: FaceSet | None = None) -> Metrics | None:
        """Metrics of the evaluation (EMA) model on `faces`, by default the test set (on rank 0)."""
        faces = self.data.test if faces is None else faces
        if faces is None or self.rank != 0:
            return None
        return self.objective.evaluate(self.eval_model(), faces, self.device)
