"""A diverged run stops, resume is refused unless it continues the same run on the
same data and is then exact (loader workers included, across a kill -9), and run directories are never
overwritten by accident."""

from __future__ import annotations

import json
import math
import os
import signal
import time

import pytest
import torch
import yaml

from fixture_layouts import write_fer2013
from semifer.cli import main
from semifer.config import load_config
from semifer.engine.finite_guard import NonFiniteLoss
from semifer.engine.run import train
from semifer.engine.rundir import claim_run_dir
from semifer.errors import ConfigError, DataError
from semifer.methods.base import StepOutput
from semifer.methods.supervised import Supervised
from semifer.runtime.checkpoint import PARTIAL_SUFFIX, load_checkpoint
from tiny_runs import TINY, semifer_process, tiny_config


def epochs_logged(run_dir):
    return [json.loads(line)["epoch"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def weights(run_dir):
    state = load_checkpoint(run_dir)
    return state["step"], {**state["model"], **{f"ema.{k}": v for k, v in state["ema"].items()}}


def assert_same_weights(a, b):
    (step_a, wa), (step_b, wb) = weights(a), weights(b)
    assert step_a == step_b and wa.keys() == wb.keys()
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key


@pytest.fixture
def nan_at_step(monkeypatch):
    """Make the supervised loss NaN at one (1-based) step."""

    def arm(bad_step):
        original, calls = Supervised.step, []

        def step(self, *args):
            out = original(self, *args)
            calls.append(1)
            return StepOutput(out.loss * float("nan"), out.logs) if len(calls) == bad_step else out

        monkeypatch.setattr(Supervised, "step", step)

    return arm


# ------------------------------------------------------------------------------------------- defect 2
def test_a_diverged_run_stops_at_the_first_nonfinite_loss_naming_step_and_checkpoint(tmp_path, nan_at_step):
    nan_at_step(5)  # epoch 2 of 3-step epochs
    cfg = tiny_config(tmp_path, "train.epochs=3", "method.name=supervised")
    with pytest.raises(NonFiniteLoss, match=r"step 5 \(epoch 2\).*last\.pt \(end of epoch 1, step 3\)"):
        train(cfg, progress=False)
    run_dir = tmp_path / cfg.name
    step, saved = weights(run_dir)
    assert step == 3 and all(torch.isfinite(v).all() for v in saved.values() if v.is_floating_point())
    assert epochs_logged(run_dir) == [1] and not (run_dir / "final.json").exists()


def test_huge_lr_exits_nonzero_instead_of_training_on_nan(tmp_path, capsys):
    code = main(["train", "-c", "demo", *TINY, "train.epochs=4", "train.lr=1e6", "--run-dir", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and "NaN or inf at step" in err and "Traceback" not in err


def test_skip_mode_drops_the_bad_batch_and_finishes(tmp_path, nan_at_step):
    nan_at_step(5)
    result = train(tiny_config(tmp_path, "train.on_nonfinite=skip", "method.name=supervised"), progress=False)
    assert result.history[-1]["train/skipped_steps"] == 1
    assert math.isfinite(result.history[-1]["train/loss"])
    _, saved = weights(result.run_dir)
    assert all(torch.isfinite(v).all() for v in saved.values() if v.is_floating_point())


# ------------------------------------------------------------------------------------------- defect 3
def test_resume_with_another_config_is_refused_naming_the_keys(tmp_path):
    half = train(tiny_config(tmp_path), progress=False, stop_after_epoch=1)
    saved = (half.run_dir / "config.yaml").read_text()
    split = (half.run_dir / "split.json").read_text()
    with pytest.raises(ConfigError, match=r"seed \(run: 0, now: 1\).*train\.lr \(run: 0\.\d+, now: 0\.5\)"):
        train(tiny_config(tmp_path, "seed=1", "train.lr=0.5"), resume=True, progress=False, run_dir=half.run_dir)
    assert (half.run_dir / "config.yaml").read_text() == saved
    assert (half.run_dir / "split.json").read_text() == split
    assert yaml.safe_load(saved)["seed"] == 0


def test_resume_by_run_directory_alone_continues_with_the_runs_own_settings(tmp_path, capsys):
    """`semifer train --resume --run-dir DIR` without `-c` reads DIR's config.yaml, so a run whose settings
    were given as overrides continues without typing them again."""
    half = train(tiny_config(tmp_path, "train.lr=0.02", "seed=3"), progress=False, stop_after_epoch=1)
    assert epochs_logged(half.run_dir) == [1]
    assert main(["train", "--resume", "--run-dir", str(half.run_dir)]) == 0
    assert epochs_logged(half.run_dir) == list(range(1, tiny_config(tmp_path).train.epochs + 1))
    assert "run directory" in capsys.readouterr().out
    assert main(["train", "-c", "demo", *TINY, "--resume", "--run-dir", str(half.run_dir)]) == 2  # -c still rules
    assert "seed (run: 3, now: 0)" in capsys.readouterr().err


def test_resume_of_a_run_that_does_not_exist_is_an_error(tmp_path, capsys):
    with pytest.raises(ConfigError, match="no run to resume"):
        train(tiny_config(tmp_path), resume=True, progress=False, run_dir=tmp_path / "nope")
    assert main(["train", "-c", "demo", *TINY, f"out_dir={tmp_path}", "name=never", "--resume"]) == 2
    assert "no run to resume" in capsys.readouterr().err
    assert not (tmp_path / "never").exists()


def test_resume_on_changed_data_is_refused(tmp_path):
    rows = [(e % 7, "Training") for e in range(28)]
    csv = write_fer2013(tmp_path / "fer.csv", rows)
    cfg = [f"data.train=fer2013:{csv}?split=Training", "data.split=per_class:2"]
    half = train(tiny_config(tmp_path, *cfg), progress=False, stop_after_epoch=1)
    write_fer2013(csv, rows[::-1])  # the same ids (row numbers) now hold other faces and labels
    with pytest.raises(DataError, match="drawn from other data"):
        train(tiny_config(tmp_path, *cfg), resume=True, progress=False, run_dir=half.run_dir)


# ------------------------------------------------------------------------------------------- defect 4
def test_resume_is_exact_with_a_loader_worker_and_workers_do_not_change_results(tmp_path):
    full = train(tiny_config(tmp_path / "a", "data.workers=0"), progress=False)
    cfg = tiny_config(tmp_path / "b", "data.workers=1")
    half = train(cfg, progress=False, stop_after_epoch=1)
    resumed = train(cfg, resume=True, progress=False, run_dir=half.run_dir)
    assert_same_weights(full.run_dir, resumed.run_dir)


def test_kill_9_then_resume_with_a_loader_worker_equals_the_uninterrupted_run(tmp_path, one_thread):
    overrides = [*TINY, "data.workers=1", "train.epochs=3", "train.iters_per_epoch=10", "train.eval_every=100"]
    killed_dir = tmp_path / "killed"
    victim = semifer_process("train", "-c", "demo", *overrides, "--run-dir", str(killed_dir))
    full = train(load_config("demo", overrides), progress=False, run_dir=tmp_path / "full")
    deadline = time.monotonic() + 120
    while not (killed_dir / "checkpoints" / "last.pt").is_file() and victim.poll() is None:
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.005)
    os.kill(victim.pid, signal.SIGKILL)
    victim.communicate()
    assert victim.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert load_checkpoint(killed_dir)["step"] < 30
    train(load_config("demo", overrides), resume=True, progress=False, run_dir=killed_dir)
    assert_same_weights(full.run_dir, killed_dir)
    assert epochs_logged(killed_dir) == [1, 2, 3]


# ------------------------------------------------------------------------------------------- defect 5
def test_a_finished_run_is_not_restarted_in_place(tmp_path, capsys):
    run = str(tmp_path / "run")
    assert main(["train", "-c", "demo", *TINY, "--run-dir", run]) == 0
    assert main(["train", "-c", "demo", *TINY, "--run-dir", run]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert epochs_logged(tmp_path / "run") == [1, 2]
    assert main(["train", "-c", "demo", *TINY, "--run-dir", run, "--overwrite"]) == 0
    assert epochs_logged(tmp_path / "run") == [1, 2]


def test_overwrite_never_deletes_a_folder_that_is_not_a_run(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    with pytest.raises(ConfigError, match="not a semifer run directory"):
        train(tiny_config(tmp_path), progress=False, run_dir=tmp_path / "mine", overwrite=True)
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "precious"


def test_two_trainings_cannot_share_a_run_directory(tmp_path):
    half = train(tiny_config(tmp_path), progress=False, stop_after_epoch=1)
    with claim_run_dir(half.run_dir, resume=True), pytest.raises(ConfigError, match="in use by another training"):
        train(tiny_config(tmp_path), resume=True, progress=False, run_dir=half.run_dir)
    assert not (half.run_dir / ".lock").exists()


def test_resume_removes_partial_writes_and_epochs_logged_after_the_checkpoint(tmp_path):
    half = train(tiny_config(tmp_path), progress=False, stop_after_epoch=1)
    partial = half.run_dir / "checkpoints" / f".last.pt.x1y2{PARTIAL_SUFFIX}"
    partial.write_bytes(b"\0" * 1024)
    with (half.run_dir / "metrics.jsonl").open("a") as fh:  # killed between logging epoch 2 and saving it
        fh.write(json.dumps({"epoch": 2, "step": 6}) + "\n")
    resumed = train(tiny_config(tmp_path), resume=True, progress=False, run_dir=half.run_dir)
    assert not partial.exists()
    assert epochs_logged(resumed.run_dir) == [1, 2]
