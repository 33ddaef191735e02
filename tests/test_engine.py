"""The training engine end to end on tiny synthetic data: run directory, resume, EMA, schedules."""

import json

import pytest
import torch

from semifer.config import load_config
from semifer.engine.ema import ModelEMA
from semifer.engine.optim import lr_factor
from semifer.engine.run import train

TINY = [
    "data.train=synthetic:?n=280",
    "data.test=synthetic:?split=test&n=70",
    "data.split=per_class:4",
    "data.workers=0",
    "train.batch_size=8",
    "train.iters_per_epoch=3",
    "train.eval_batch_size=64",
]


def tiny_config(tmp_path, *extra):
    return load_config("demo", [*TINY, f"out_dir={tmp_path}", *extra])


def test_run_directory_holds_everything(tmp_path):
    result = train(tiny_config(tmp_path, "train.epochs=2"), progress=False)
    d = result.run_dir
    for name in (
        "config.yaml",
        "split.json",
        "metrics.jsonl",
        "final.json",
        "checkpoints/last.pt",
        "plots/curves.png",
        "plots/confusion.png",
    ):
        assert (d / name).is_file(), name
    records = [json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    assert {"lr", "images_per_s", "train/loss", "test"} <= set(records[-1])
    assert set(records[-1]["test"]["per_class_accuracy"]) == {
        "neutral",
        "happy",
        "sad",
        "surprise",
        "fear",
        "disgust",
        "anger",
    }
    final = json.loads((d / "final.json").read_text())
    assert final["final"]["accuracy"] == records[-1]["test"]["accuracy"]
    assert set(final) == {"epochs", "final"}  # no validation set: nothing is selected, never on the test set
    assert len(json.loads((d / "split.json").read_text())["labeled"]) == 28


def test_resume_reproduces_an_uninterrupted_run(tmp_path):
    full = train(tiny_config(tmp_path / "a", "train.epochs=2"), progress=False)
    cfg = tiny_config(tmp_path / "b", "train.epochs=2")
    half = train(cfg, progress=False, stop_after_epoch=1)
    assert len(half.history) == 1
    resumed = train(cfg, resume=True, progress=False, run_dir=half.run_dir)
    a = torch.load(full.run_dir / "checkpoints/last.pt", weights_only=False)
    b = torch.load(resumed.run_dir / "checkpoints/last.pt", weights_only=False)
    assert a["step"] == b["step"] == 6
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key


def test_ema_tracks_weights_and_buffers():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    ema = ModelEMA(model, decay=0.9)
    with torch.no_grad():
        model[0].weight.add_(1.0)
        model[1].running_mean.fill_(1.0)
    before = ema.module[0].weight.clone()
    ema.update(model)
    assert torch.allclose(ema.module[0].weight, 0.9 * before + 0.1 * model[0].weight)
    assert torch.allclose(ema.module[1].running_mean, torch.full((2,), 0.1))


def test_lr_schedules():
    cfg = load_config("demo").train
    cfg.warmup_iters = 10
    assert lr_factor(cfg, 0, 100) == pytest.approx(0.1)
    assert lr_factor(cfg, 10, 100) == pytest.approx(1.0)
    assert lr_factor(cfg, 100, 100) == pytest.approx(0.0, abs=1e-9)
    cfg.warmup_iters, cfg.schedule, cfg.milestones, cfg.iters_per_epoch = 0, "step", [2, 4], 10
    assert [lr_factor(cfg, s, 100) for s in (5, 25, 45)] == pytest.approx([1.0, 0.1, 0.01])


def test_adacm_run_logs_margins_and_subsets(tmp_path):
    result = train(
        tiny_config(tmp_path, "train.epochs=2", "method.name=adacm", "train.optimizer=adam", "train.lr=0.0005"),
        progress=False,
    )
    last = result.history[-1]
    assert set(last["thresholds"]) >= {"neutral", "anger"} and min(last["thresholds"].values()) >= 0.8
    assert 0.0 <= last["unlabeled/subset1_fraction"] <= 1.0
    assert "train/loss_c" in last
    assert (result.run_dir / "plots" / "thresholds.png").is_file()
    saved = (result.run_dir / "config.yaml").read_text()
    assert "dropout: 0.5" in saved and "l2norm: true" in saved  # Ada-CM's head, resolved and recorded
