"""The engine's one training loop, tested once for both kinds of run it drives: a (semi-)supervised training
run (`MethodObjective`) and a pretraining run (`SimCLRObjective`, `BYOLObjective`, `MAEObjective`). Exact resume, the
finite-loss guard and the time budget are the loop's, so each holds for both."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F

from semifer.config import Config, load_config
from semifer.engine.finite_guard import NonFiniteLoss
from semifer.engine.pretraining import pretrain
from semifer.engine.run import train
from semifer.engine.trainer import MethodObjective
from semifer.errors import ConfigError
from semifer.methods.objective import StepOutput
from semifer.methods.unlabeled_losses import info_nce
from semifer.pretrain import BYOLObjective, MAEObjective, SimCLRObjective
from semifer.pretrain.simclr import gathered_nt_xent
from tiny_runs import tiny_config

PRETRAIN = [
    "data.train=synthetic:?n=48",
    "data.workers=0",
    "train.iters_per_epoch=3",
    "train.batch_size=8",
    "train.warmup_iters=1",
    "train.amp=false",
    "pretrain.decoder_dim=32",
]


def training(tmp_path, *extra: str) -> Config:
    return tiny_config(tmp_path, "method.name=supervised", *extra)


def simclr(tmp_path, *extra: str) -> Config:
    return load_config("pretrain_simclr_fer2013_small", [*PRETRAIN[:-1], f"out_dir={tmp_path}", *extra])


def byol(tmp_path, *extra: str) -> Config:
    return load_config("pretrain_byol_fer2013_small", [*PRETRAIN[:-1], f"out_dir={tmp_path}", *extra])


def mae(tmp_path, *extra: str) -> Config:
    return load_config("pretrain_mae", [*PRETRAIN, f"out_dir={tmp_path}", *extra])


KINDS: dict[str, tuple[Callable[..., Config], Callable[..., object], type, str]] = {
    "training": (training, train, MethodObjective, "train.minutes"),
    "simclr": (simclr, pretrain, SimCLRObjective, "pretrain.minutes"),
    "byol": (byol, pretrain, BYOLObjective, "pretrain.minutes"),
    "mae": (mae, pretrain, MAEObjective, "pretrain.minutes"),
}


def checkpoint(run_dir) -> dict:
    return torch.load(run_dir / "checkpoints" / "last.pt", weights_only=False)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_run_stopped_after_an_epoch_and_resumed_equals_a_straight_run(tmp_path, kind):
    config, run, _, _ = KINDS[kind]
    straight = run(config(tmp_path / "a", "train.epochs=2"), progress=False)
    half = run(config(tmp_path / "b", "train.epochs=2"), progress=False, stop_after_epoch=1)
    assert [r["epoch"] for r in half.history] == [1]
    resumed = run(config(tmp_path / "b", "train.epochs=2"), resume=True, progress=False, run_dir=half.run_dir)
    a, b = checkpoint(straight.run_dir), checkpoint(resumed.run_dir)
    assert a["step"] == b["step"] == 6
    assert a["model"].keys() == b["model"].keys()
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    losses = [[r["train/loss"] for r in h] for h in (straight.history, resumed.history)]
    assert losses[0] == losses[1]


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_nonfinite_loss_stops_the_run_keeping_the_last_good_checkpoint(tmp_path, kind, monkeypatch):
    config, run, objective, _ = KINDS[kind]
    original, calls = objective.step, []

    def step(self, *args):
        out = original(self, *args)
        calls.append(1)
        return StepOutput(out.loss * float("nan"), out.logs) if len(calls) == 5 else out

    monkeypatch.setattr(objective, "step", step)
    cfg = config(tmp_path, "train.epochs=3")
    with pytest.raises(NonFiniteLoss, match=r"step 5 \(epoch 2\).*last\.pt \(end of epoch 1, step 3\)"):
        run(cfg, progress=False)
    state = checkpoint(tmp_path / cfg.name)
    assert state["step"] == 3
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_run_ends_on_its_time_budget_and_a_resume_does_not_refill_it(tmp_path, kind):
    config, run, _, key = KINDS[kind]
    overrides = ["train.epochs=100000", f"{key}=0.02"]
    result = run(config(tmp_path, *overrides), progress=False)
    last = result.history[-1]
    assert 1 <= last["step"] < 100000 * 3  # stopped by the clock, not the step cap
    assert sum(r["epoch_seconds"] for r in result.history) <= 0.02 * 60 + 5
    assert checkpoint(result.run_dir)["seconds_spent"] >= 0.02 * 60
    again = run(config(tmp_path, *overrides), resume=True, progress=False, run_dir=result.run_dir)
    assert again.history[-1]["step"] == last["step"]
    with pytest.raises(ConfigError, match=key):
        run(config(tmp_path, "train.epochs=2", f"{key}=-1", "name=bad"), progress=False)


def test_gathered_nt_xent_over_ranks_equals_one_process_on_the_whole_batch():
    """Two fake ranks of 4 faces each: the mean of their losses is the loss of the 8 faces in one process,
    and each rank's gradient flows into its own embeddings only."""
    torch.manual_seed(0)
    world, b, temperature = 2, 4, 0.2
    first, second = torch.randn(world * b, 16), torch.randn(world * b, 16)
    whole = info_nce([first, second], torch.ones(world * b, dtype=torch.bool), temperature, temperature)
    losses = []
    for rank in range(world):
        local = slice(rank * b, (rank + 1) * b)
        mine = [first[local].clone().requires_grad_(), second[local].clone().requires_grad_()]
        everyone = iter([F.normalize(first, dim=1), F.normalize(second, dim=1)])

        def gather(t, rank=rank, everyone=everyone):
            parts = list(next(everyone).chunk(world))
            parts[rank] = t
            return torch.cat(parts)

        loss = gathered_nt_xent(*mine, temperature, rank, gather)
        loss.backward()
        assert all(m.grad is not None and m.grad.abs().sum() > 0 for m in mine)
        losses.append(loss.detach())
    assert torch.allclose(torch.stack(losses).mean(), whole, atol=1e-6)
