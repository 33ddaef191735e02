"""One training run from a config: data, split, model, method, trainer, and the run directory's report."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import Config, save_config
from ..data.faceset import FaceSet, concat
from ..data.registry import load_dataset
from ..data.splits import Split, add_validation, apply_split, make_split, validation_part
from ..errors import ConfigError
from ..methods import Method, build_method, method_class
from ..models import FERNet, load_backbone_weights
from ..report.plots import plot_run
from . import distributed as dist
from .evaluate import Metrics, plot_confusion
from .trainer import TrainData, Trainer, best_on_validation


@dataclass
class RunResult:
    """What a run leaves behind, plus the live objects for notebook and test use."""

    run_dir: Path
    final: Metrics | None
    history: list[dict[str, Any]]
    trainer: Trainer | None = None


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def make_run_dir(cfg: Config, resume: bool) -> Path:
    """`out_dir/name`, or `name-2`, `name-3`... when that exists and this is not a resume."""
    base = Path(cfg.out_dir) / cfg.name
    if resume or not base.exists():
        return base
    n = 2
    while (base.parent / f"{base.name}-{n}").exists():
        n += 1
    return base.parent / f"{base.name}-{n}"


def prepare_data(cfg: Config, run_dir: Path) -> TrainData:
    """Parse the pool, make (or reload) the split, save it in the run directory, add extra unlabeled faces.

    The extra pools follow the training pool's unlabeled part in `unlabeled`; `extra_from` records where,
    so `data.extra_ratio` can draw each batch's share from them.
    """
    pool = load_dataset(cfg.data.train).require_nonempty()
    if cfg.data.split_file:
        split = Split.load(cfg.data.split_file)
        if cfg.data.val and not split.validation:
            split = add_validation(pool, split, cfg.data.val)
    else:
        split = make_split(pool, cfg.data.split, cfg.seed, cfg.data.include_labeled_in_unlabeled, cfg.data.val)
        split.dataset = cfg.data.train
    if dist.is_main():
        split.save(run_dir / "split.json")
    labeled, unlabeled = apply_split(pool, split, cfg.data.split_file or "split")
    extras = [load_dataset(spec).require_nonempty() for spec in cfg.data.extra_unlabeled]
    extra_from = len(unlabeled)
    if cfg.data.extra_ratio is not None and not extras:
        raise ConfigError("data.extra_ratio needs data.extra_unlabeled pools to draw from")
    if extras:
        unlabeled = concat([unlabeled, *[e.without_labels() for e in extras]], name="unlabeled")
    test = load_dataset(cfg.data.test).require_nonempty() if cfg.data.test else None
    return TrainData(labeled.require_nonempty(), unlabeled if len(unlabeled) else None, test,
                     extra_from if extras else None, validation_part(pool, split, cfg.data.split_file or "split"))


def resolve_head(cfg: Config) -> None:
    """Fill the model's head options left unset (dropout, l2norm, attention, feature_dropout) with the
    method's head, over the base defaults, so config.yaml says what ran."""
    head = {**Method.head, **method_class(cfg.method["name"]).head}
    for key, default in head.items():
        if getattr(cfg.model, key) is None:
            setattr(cfg.model, key, default)


def make_model(cfg: Config, num_classes: int) -> FERNet:
    """The configured FERNet (head resolved from the method), freshly initialised."""
    resolve_head(cfg)
    m = cfg.model
    return FERNet(m.arch, num_classes, m.dropout, m.l2norm, m.attention, m.feature_dropout)


def build_model(cfg: Config, num_classes: int, run_dir: Path | None = None) -> FERNet:
    model = make_model(cfg, num_classes)
    if cfg.model.pretrained:
        report = load_backbone_weights(model.backbone, cfg.model.pretrained, strict=cfg.model.strict_load)
        if dist.is_main():
            print(report)
            if run_dir is not None:
                (run_dir / "pretrained_load.txt").write_text(str(report) + "\n")
    return model


def train(cfg: Config, resume: bool = False, progress: bool = True, run_dir: Path | None = None,
          stop_after_epoch: int | None = None) -> RunResult:
    """Train `cfg` end to end; returns the run directory, the final EMA metrics and the per-epoch history.

    `stop_after_epoch` ends early with a checkpoint (for time-limited jobs); `resume=True` continues it.
    """
    device = dist.local_device(cfg.train.device)
    rank, world = dist.init_distributed(device)
    seed_everything(cfg.seed + rank)
    resolve_head(cfg)
    run_dir = Path(dist.broadcast_object(str(run_dir or make_run_dir(cfg, resume))))
    run_dir.mkdir(parents=True, exist_ok=True)
    if rank == 0:
        save_config(cfg, run_dir / "config.yaml")
    data = prepare_data(cfg, run_dir)
    model = build_model(cfg, data.labeled.num_classes, run_dir)
    method = build_method(cfg.method, data.labeled.num_classes, len(data.unlabeled) if data.unlabeled else 0)
    trainer = Trainer(cfg, run_dir, method, model, data, device, rank, world, progress)
    if resume and trainer.resume() and progress and rank == 0:
        print(f"resumed {run_dir} at step {trainer.step}")
    history = trainer.fit(stop_after_epoch)
    final = trainer.evaluate() if trainer.history and "test" not in trainer.history[-1] else None
    if final is None and history and "test" in history[-1]:
        final = Metrics(**history[-1]["test"], classes=list(data.labeled.classes))
    if rank == 0:
        write_report(run_dir, history, final)
    return RunResult(run_dir, final, history, trainer)


def write_report(run_dir: Path, history: list[dict[str, Any]], final: Metrics | None) -> None:
    """final.json (final-epoch EMA metrics and, with a validation set, the epoch chosen on it) and the plots.

    The test set never chooses anything: the best epoch is the one of `checkpoints/best.pt`, chosen by
    validation accuracy, and its test metrics are reported beside the final epoch's.
    """
    summary: dict[str, Any] = {"epochs": len(history)}
    if final is not None:
        summary["final"] = final.to_dict()
        plot_confusion(final, run_dir / "plots" / "confusion.png")
    best = best_on_validation(history)
    if best is not None:
        summary["best_on_validation"] = {"epoch": best["epoch"], "val_accuracy": best["val"]["accuracy"],
                                         "test": best.get("test")}
    (run_dir / "final.json").write_text(json.dumps(summary, indent=1))
    plot_run(history, run_dir / "plots")


def load_faces(spec: str) -> FaceSet:
    return load_dataset(spec).require_nonempty()
