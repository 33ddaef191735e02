"""FixMatch's fixed threshold, FlexMatch's curriculum and warm-up, Pseudo-Label's ramp, and the run's
cross-rank gather reaching the methods that gather."""

import pytest
import torch

from semifer.methods import Batch, TrainContext, build_method
from semifer.methods.thresholds import FlexMatchThreshold


def test_fixmatch_mask_at_095():
    m = build_method({"name": "fixmatch"}, 3, 10)
    conf = torch.tensor([0.949, 0.95, 0.99])
    assert m.policy.mask(conf, torch.tensor([0, 1, 2])).tolist() == [0.0, 1.0, 1.0]
    assert m.unlabeled_views == ("weak", "strong")


def test_flexmatch_warmup_starts_low_and_rises():
    policy = FlexMatchThreshold(3, num_unlabeled=100, tau=0.95, warmup=True)
    conf = torch.tensor([0.5, 0.5])
    assert policy.mask(conf, torch.tensor([0, 1])).tolist() == [1.0, 1.0]  # nothing learned: thresholds 0
    # 10 of 100 confidently class 0 -> beta_0 = 10 / 90 (the unused count dominates during warm-up)
    policy.observe(torch.full((10,), 0.99), torch.zeros(10, dtype=torch.long), torch.arange(10))
    policy.mask(conf, torch.tensor([0, 1]))
    beta = 10 / 90
    assert policy.thresholds[0].item() == pytest.approx(0.95 * beta / (2 - beta))
    assert policy.thresholds[1].item() == 0.0
    no_warm = FlexMatchThreshold(3, num_unlabeled=100, warmup=False)
    no_warm.observe(torch.full((10,), 0.99), torch.zeros(10, dtype=torch.long), torch.arange(10))
    no_warm.mask(conf, torch.tensor([0, 1]))
    assert no_warm.thresholds[0].item() == pytest.approx(0.95)  # beta_0 = 10/10 without warm-up


def test_flexmatch_only_confident_predictions_are_remembered():
    policy = FlexMatchThreshold(3, num_unlabeled=4, tau=0.95)
    policy.observe(torch.tensor([0.96, 0.5, 0.99, 0.2]), torch.tensor([2, 1, 0, 1]), torch.arange(4))
    assert policy.selected.tolist() == [2, -1, 0, -1]
    policy.observe(torch.tensor([0.1]), torch.tensor([1]), torch.tensor([0]))
    assert policy.selected.tolist() == [2, -1, 0, -1]  # a low-confidence view does not overwrite


def test_pseudolabel_uses_the_weak_view_and_ramps():
    m = build_method({"name": "pseudolabel"}, 3, 10)
    assert m.unlabeled_views == ("weak",)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))
    lb = Batch([torch.randn(4, 3, 2, 2)], torch.tensor([0, 1, 2, 0]), torch.arange(4))
    ulb = Batch([torch.randn(4, 3, 2, 2) * 50], torch.full((4,), -1), torch.arange(4))
    out0 = m.step(model, lb, ulb, progress=0.0)
    assert out0.loss.item() == pytest.approx(out0.logs["loss_x"].item())
    out1 = m.step(model, lb, ulb, progress=1.0)
    assert out1.loss.item() == pytest.approx((out1.logs["loss_x"] + out1.logs["loss_u"]).item())


def test_cross_rank_gathers_reach_the_method_through_its_context():
    def two_ranks(tensor: torch.Tensor) -> torch.Tensor:  # a second rank with the same batch
        return torch.cat([tensor, tensor])

    ctx = TrainContext(100, None, None, torch.device("cpu"), two_ranks)  # type: ignore[arg-type]
    remix = build_method({"name": "remixmatch"}, 3, 10)
    remix.on_train_start(ctx)
    remix.observe(torch.full((4, 3), 1 / 3), torch.tensor([0, 0, 1, 2]))
    assert remix.label_counts.tolist() == [4, 2, 2]  # both ranks' labels counted
    dtm = build_method({"name": "dtm"}, 3, 10)
    dtm.on_train_start(ctx)
    assert dtm.policy.all_gather_cat is two_ranks
    flex = build_method({"name": "flexmatch"}, 3, 10)
    assert flex.policy.all_gather_cat(torch.ones(2)).tolist() == [1.0, 1.0]  # one process until the run starts
    flex.on_train_start(ctx)
    flex.policy.observe(torch.tensor([0.99, 0.2]), torch.tensor([2, 1]), torch.tensor([0, 1]))
    assert flex.policy.selected[:2].tolist() == [2, -1]
