"""`log.tensorboard=true`: the metrics.jsonl scalars as TensorBoard events, or a clear error without the package."""

import json
import sys

import pytest

from semifer.cli import main
from semifer.engine.tensorboard import scalars

TINY = [
    "data.train=synthetic:?n=140",
    "data.test=synthetic:?split=test&n=35",
    "data.split=per_class:3",
    "data.workers=0",
    "train.batch_size=8",
    "train.iters_per_epoch=2",
    "train.epochs=2",
]


def test_scalars_flatten_nested_numbers_and_skip_lists():
    record = {
        "epoch": 3,
        "step": 30,
        "lr": 0.1,
        "train/loss": 1.5,
        "test": {"accuracy": 0.5, "confusion": [[1]], "per_class_accuracy": {"fear": 0.25}},
        "thresholds": {"happy": 0.9},
        "flag": True,
    }
    assert dict(scalars(record)) == {
        "lr": 0.1,
        "train/loss": 1.5,
        "test/accuracy": 0.5,
        "test/per_class_accuracy/fear": 0.25,
        "thresholds/happy": 0.9,
    }


def test_tensorboard_events_hold_the_logged_scalars(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    assert main(["train", "-c", "demo", *TINY, "log.tensorboard=true", f"out_dir={tmp_path}", "name=tb"]) == 0
    history = [json.loads(line) for line in (tmp_path / "tb" / "metrics.jsonl").read_text().splitlines()]
    events = EventAccumulator(str(tmp_path / "tb" / "tensorboard"))
    events.Reload()
    accuracy = events.Scalars("test/accuracy")
    assert [e.step for e in accuracy] == [1, 2]
    assert [e.value for e in accuracy] == pytest.approx([r["test"]["accuracy"] for r in history])
    assert "train/loss" in events.Tags()["scalars"]


def test_missing_tensorboard_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    assert main(["train", "-c", "demo", *TINY, "log.tensorboard=true", f"out_dir={tmp_path}", "name=tb"]) == 2
    err = capsys.readouterr().err
    assert "semifer[tensorboard]" in err and "Traceback" not in err
