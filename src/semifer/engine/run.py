"""One training run from a config: data, split, model, method, trainer, and the run directory's report."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..config import Config, save_config
from ..data.faceset import FaceSet, concat
from ..data.registry import load_dataset
from ..data.splits import Split, add_validation, apply_split, check_labeled_pixels, make_split, validation_part
from ..errors import ConfigError
from ..methods import Method, MethodSpec, resolve_method
from ..models import FERNet, create_model
from ..report.plots import plot_run
from ..runtime import distributed as dist
from ..runtime.seeding import seed_everything
from .evaluate import Metrics, plot_confusion
from .loop import best_on_validation
from .rundir import check_resume_config, claim_run_dir, make_run_dir
from .trainer import TrainData, Trainer


@dataclass
class RunResult:
    """What a run leaves behind, plus the live objects for notebook and test use."""

    run_dir: Path
    final: Metrics | None
    history: list[dict[str, Any]]
    trainer: Trainer | None = None


def prepare_data(cfg: Config, run_dir: Path) -> TrainData:
    """Parse the pool, make (or reload) the split, save it in the run directory, add extra unlabeled faces.

    The extra pools follow the training pool's unlabeled part in `unlabeled`; `extra_from` records where,
    so `data.extra_ratio` can draw each batch's share from them. The run's split.json also records a
    fingerprint of the labeled images' pixels, so a resume on images edited in place is refused.
    """
    pool = load_dataset(cfg.data.train, cfg.data.root).require_nonempty()
    saved = run_dir / "split.json"  # a resumed run keeps its split, checked against the data
    source = cfg.data.split_file or (saved if saved.is_file() else None)
    if source:
        split = Split.load(source)
        if cfg.data.val and not split.validation:
            split = add_validation(pool, split, cfg.data.val)
    else:
        split = make_split(pool, cfg.data.split, cfg.seed, cfg.data.include_labeled_in_unlabeled, cfg.data.val)
        split.dataset = cfg.data.train
    labeled, unlabeled = apply_split(pool, split, str(source or "split"))
    recorded = split if source == saved else Split.load(saved) if saved.is_file() else None
    split.labeled_pixels = check_labeled_pixels(labeled, recorded, saved)
    if dist.is_main():
        split.save(saved)
    extras = [load_dataset(spec, cfg.data.root).require_nonempty() for spec in cfg.data.extra_unlabeled]
    extra_from = len(unlabeled)
    if cfg.data.extra_ratio is not None and not extras:
        raise ConfigError("data.extra_ratio needs data.extra_unlabeled pools to draw from")
    if extras:
        unlabeled = concat([unlabeled, *[e.without_labels() for e in extras]], name="unlabeled")
    test = load_dataset(cfg.data.test, cfg.data.root).require_nonempty() if cfg.data.test else None
    return TrainData(
        labeled.require_nonempty(),
        unlabeled if len(unlabeled) else None,
        test,
        extra_from if extras else None,
        validation_part(pool, split, cfg.data.split_file or "split"),
    )


def build_model(cfg: Config, num_classes: int, run_dir: Path | None = None) -> FERNet:
    """The run's model: `create_model` with the weights the config names (`model.pretrained`,
    `model.init_from`), each load's key report printed and kept in `run_dir`. A config whose head options are
    still unset (not yet filled by `train`) takes its method's (`MethodSpec.fill`)."""
    if any(getattr(cfg.model, key) is None for key in Method.head):
        resolve_method(cfg.method).fill(cfg)
    return create_model(cfg, num_classes, run_dir=run_dir, verbose=True)


def train(
    cfg: Config,
    resume: bool = False,
    progress: bool = True,
    run_dir: Path | None = None,
    stop_after_epoch: int | None = None,
    overwrite: bool = False,
) -> RunResult:
    """Train `cfg` end to end; returns the run directory, the final EMA metrics and the per-epoch history.

    `stop_after_epoch` ends early with a checkpoint (for time-limited jobs); `resume=True` continues it,
    with the run's own configuration. An existing `run_dir` is otherwise used only with `overwrite=True`.
    The method is resolved first (its options checked) and fills in what `cfg` leaves to it, so that
    config.yaml says what ran.
    """
    spec = resolve_method(cfg.method)
    spec.fill(cfg)
    device, rank, world = start_process(cfg)
    run_dir = shared_run_dir(cfg, resume, run_dir)
    with claim_run_dir(run_dir, resume, overwrite, owner=rank == 0):
        return _train_in(cfg, spec, run_dir, resume, progress, stop_after_epoch, device, rank, world)


def start_process(cfg: Config) -> tuple[torch.device, int, int]:
    """This process's device, rank and world size (the process group started under torchrun), and its RNGs
    seeded with `seed + rank`, so ranks draw different augmentations."""
    device = dist.local_device(cfg.train.device)
    rank, world = dist.init_distributed(device)
    seed_everything(cfg.seed + rank)
    return device, rank, world


def shared_run_dir(cfg: Config, resume: bool, run_dir: Path | None) -> Path:
    """The run directory, rank 0's choice on every rank, so ranks never pick different ones."""
    return Path(dist.broadcast_object(str(run_dir or make_run_dir(cfg, resume))))


def _train_in(
    cfg: Config,
    spec: MethodSpec,
    run_dir: Path,
    resume: bool,
    progress: bool,
    stop_after_epoch: int | None,
    device: torch.device,
    rank: int,
    world: int,
) -> RunResult:
    """The run itself, in a directory `train` holds."""
    run_dir.mkdir(parents=True, exist_ok=True)
    if rank == 0:
        if resume:
            check_resume_config(run_dir, cfg.to_dict())
        save_config(cfg, run_dir / "config.yaml")
        notice = spec.own_training_notice(cfg)
        if notice and progress:
            print(notice)
    data = prepare_data(cfg, run_dir)
    model = build_model(cfg, data.labeled.num_classes, run_dir)
    method = spec.build(data.labeled.num_classes, len(data.unlabeled) if data.unlabeled else 0)
    trainer = Trainer(cfg, run_dir, method, model, data, device, rank, world, progress)
    if resume:
        trainer.resume()
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
        summary["best_on_validation"] = {
            "epoch": best["epoch"],
            "val_accuracy": best["val"]["accuracy"],
            "test": best.get("test"),
        }
    (run_dir / "final.json").write_text(json.dumps(summary, indent=1))
    plot_run(history, run_dir / "plots")


def load_faces(spec: str) -> FaceSet:
    return load_dataset(spec).require_nonempty()
