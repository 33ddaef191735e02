"""Fixed-seed short runs whose final loss and accuracy are pinned: a refactor of the training loop, the model
factory or the method plumbing must give the same numbers. The pins were taken on one CPU; another CPU's
kernels sum in another order, and 60 steps at lr 0.1 carry that to about 1 % of the final loss (0.1-1.3 % on
an AMD EPYC with AVX-512 BF16) and can move one of the 70 test faces across a decision boundary, hence
`LOSS_REL` and one face of slack in the accuracy. On one machine a refactor that keeps the arithmetic gives
the pins far closer."""

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
LOSS_REL = 0.02  # kernels' summation order across CPUs (module docstring), not a refactor's slack
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
    assert run.history[-1]["train/loss"] == pytest.approx(loss, rel=LOSS_REL)
    assert run.final is not None and abs(run.final.accuracy - accuracy) <= 1 / run.final.n + 1e-9


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
    assert result.history[-1]["train/loss"] == pytest.approx(PINNED_PRETRAIN_LOSS[objective], rel=LOSS_REL)
