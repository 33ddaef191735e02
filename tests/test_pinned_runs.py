"""Fixed-seed short runs whose final loss and accuracy are pinned: a refactor of the training loop, the model
factory or the method plumbing must give the same numbers, bit for bit up to float summation order."""

from __future__ import annotations

import pytest

from semifer.config import load_config
from semifer.engine.pretraining import pretrain
from semifer.engine.run import train
from tiny_runs import tiny_config

PINNED_TRAIN = {
    "supervised": (1.66397705078125, 0.18571428571428572),
    "fixmatch": (1.5478489875793457, 0.22857142857142856),
    "adacm": (1.0707916259765624, 0.15714285714285714),
}
PINNED_PRETRAIN_LOSS = {"simclr": 3.0751373767852783, "byol": 2.6595239639282227, "mae": 1.2205967903137207}
SHORT = [
    "data.train=synthetic:?n=280&min_strength=0.8",
    "data.test=synthetic:?split=test&n=70&min_strength=0.8",
    "data.split=per_class:6",
    "train.amp=false",
    "train.ema=0.8",
    "train.lr=0.1",
    "train.epochs=3",
    "train.iters_per_epoch=20",
]


@pytest.mark.parametrize("method", sorted(PINNED_TRAIN))
def test_short_training_run_gives_the_pinned_loss_and_accuracy(tmp_path, one_thread, method: str) -> None:
    run = train(tiny_config(tmp_path, *SHORT, f"method.name={method}"), progress=False)
    loss, accuracy = PINNED_TRAIN[method]
    assert run.history[-1]["train/loss"] == pytest.approx(loss, rel=1e-4)
    assert run.final is not None and run.final.accuracy == pytest.approx(accuracy, abs=1e-9)


PRETRAIN = {
    "simclr": (
        "pretrain_simclr_fer2013_small",
        ["data.train=synthetic:?n=96", "train.iters_per_epoch=2", "train.batch_size=16", "train.warmup_iters=1"],
    ),
    "byol": (
        "pretrain_byol_fer2013_small",
        ["data.train=synthetic:?n=96", "train.iters_per_epoch=2", "train.batch_size=16", "train.warmup_iters=1"],
    ),
    "mae": (
        "pretrain_mae",
        ["data.train=synthetic:?n=64", "train.iters_per_epoch=2", "train.batch_size=8", "model.arch=small_cnn"],
    ),
}


@pytest.mark.parametrize("objective", sorted(PRETRAIN))
def test_short_pretraining_gives_the_pinned_loss(tmp_path, one_thread, objective: str) -> None:
    preset, overrides = PRETRAIN[objective]
    cfg = load_config(
        preset, [*overrides, "train.epochs=2", "data.workers=0", "train.amp=false", f"out_dir={tmp_path}"]
    )
    result = pretrain(cfg, progress=False)
    assert result.history[-1]["train/loss"] == pytest.approx(PINNED_PRETRAIN_LOSS[objective], rel=1e-4)
