"""BYOL: the moving-average target, its momentum schedule, the symmetric regression loss, and a pretraining
whose backbone a training run starts from."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from semifer.config import load_config
from semifer.engine.pretraining import Pretrainer, pretrain
from semifer.errors import ConfigError
from semifer.models import create_backbone
from semifer.pretrain.byol import BYOL, byol_options, regression_loss, target_momentum
from semifer.runtime.seeding import seed_everything
from tiny_runs import start_training_from

TINY = [
    "data.train=synthetic:?n=64",
    "train.iters_per_epoch=3",
    "train.batch_size=16",
    "train.warmup_iters=1",
    "data.workers=0",
    "train.amp=false",
]


def byol(tmp_path, *extra: str):
    return load_config("pretrain_byol_fer2013_small", [*TINY, f"out_dir={tmp_path}", *extra])


def test_the_momentum_rises_from_its_base_to_one_along_a_cosine() -> None:
    assert target_momentum(0.99, 0.0) == pytest.approx(0.99)
    assert target_momentum(0.99, 0.5) == pytest.approx(0.995)
    assert target_momentum(0.99, 1.0) == pytest.approx(1.0)
    values = [target_momentum(0.9, p) for p in np.linspace(0, 1, 11)]
    assert values == sorted(values)
    assert target_momentum(0.9, 2.0) == pytest.approx(1.0)  # a run past its schedule keeps the target still


def test_the_regression_loss_is_zero_for_one_direction_and_four_for_opposite_ones() -> None:
    x = torch.randn(5, 8)
    assert regression_loss(3 * x, x).item() == pytest.approx(0.0, abs=1e-6)
    assert regression_loss(-x, x).item() == pytest.approx(4.0, abs=1e-6)
    y = torch.randn(5, 8)
    expected = (2 - 2 * torch.nn.functional.cosine_similarity(x, y)).mean()
    assert regression_loss(x, y).item() == pytest.approx(expected.item(), abs=1e-6)


def test_the_target_follows_the_online_network_by_its_momentum_and_takes_no_gradient() -> None:
    torch.manual_seed(0)
    model = BYOL(create_backbone("small_cnn"), hidden=32, out=16, pred_hidden=32)
    online = [p.detach().clone() for p in model.online_parameters()]
    assert all(torch.equal(t, o) for t, o in zip(model.target_parameters(), online, strict=True))
    with torch.no_grad():
        for p in model.online_parameters():
            p.add_(1.0)
    before = [t.detach().clone() for t in model.target_parameters()]
    model.update_target(0.75)
    for t, b in zip(model.target_parameters(), before, strict=True):
        assert torch.allclose(t, b + 0.25, atol=1e-6)
    model.update_target(1.0)
    for t, b in zip(model.target_parameters(), before, strict=True):
        assert torch.allclose(t, b + 0.25, atol=1e-6)
    images = torch.randn(6, 3, 48, 48)
    loss = model(images, images.flip(-1))
    loss.backward()
    assert torch.isfinite(loss) and 0 <= loss.item() <= 8
    assert all(p.grad is None for p in model.target_parameters())
    assert model.predictor[0].weight.grad is not None and model.backbone.stages[0][0].weight.grad is not None
    assert model.encoder_state_dict().keys() == create_backbone("small_cnn").state_dict().keys()


def test_the_optimiser_holds_the_online_network_only(tmp_path) -> None:
    trainer = Pretrainer(byol(tmp_path), tmp_path / "run")
    held = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    assert not held & {id(p) for p in trainer.model.target_parameters()}
    assert {id(p) for p in trainer.model.predictor.parameters()} <= held


def test_byol_pretraining_moves_the_target_slowly_and_leaves_a_backbone_training_starts_from(tmp_path) -> None:
    cfg = byol(tmp_path, "train.epochs=2")
    seed_everything(cfg.seed)  # as `pretrain` does, so this is the network it starts from
    start = Pretrainer(cfg, tmp_path / "start").model.backbone.stages[0][0].weight.detach().clone()
    result = pretrain(cfg, progress=False)
    assert [r["step"] for r in result.history] == [3, 6]
    assert all(math.isfinite(r["train/loss"]) for r in result.history)
    assert (result.run_dir / "plots" / "views.png").is_file()
    state = torch.load(result.run_dir / "checkpoints" / "last.pt", weights_only=False)["model"]
    online, target = state["backbone.stages.0.0.weight"], state["target_backbone.stages.0.0.weight"]
    assert not torch.equal(target, start)  # the target moved toward the online network, by a little
    assert (target - start).norm() < 0.2 * (online - start).norm()
    assert "loaded" in start_training_from(result.checkpoint, tmp_path)


def test_byol_options_are_checked(tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"pretrain\.momentum must be >= 0 and <= 1"):
        byol_options(byol(tmp_path, "pretrain.momentum=1.5"))
    with pytest.raises(ConfigError, match="temperature"):
        byol_options(byol(tmp_path, "pretrain.temperature=0.1"))
