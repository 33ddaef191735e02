"""Ada-CM's defining details: margins, subsets, InfoNCE scope and gradients, loss weights."""

import math

import pytest
import torch
from torch import nn

from semifer.methods import Batch, build_method
from semifer.methods.thresholds import AdaptiveMargin, schedule_factor
from semifer.methods.unlabeled_losses import info_nce


def test_schedule_factor_matches_the_official_values():
    for t, value in [(1, 0.731), (2, 0.881), (3, 0.953), (5, 0.993)]:
        assert schedule_factor("paper", t) == pytest.approx(value, abs=1e-3)
    assert schedule_factor("linear", 1) == pytest.approx(1 / 3)
    assert schedule_factor("half", 1) == pytest.approx(1 / 2)
    assert schedule_factor("log2", 1) == pytest.approx(1 / (1 + math.e))


def test_margin_uses_only_correct_predictions_with_floor():
    policy = AdaptiveMargin(3, B=0.97, floor=0.8)
    conf = torch.tensor([1.0, 1.0, 0.2, 0.99, 0.5, 0.9])
    pred = torch.tensor([0, 0, 1, 1, 1, 2])
    label = torch.tensor([0, 0, 0, 1, 2, 1])  # sample 2: wrong (low conf) must not lower class 0
    margin = policy.margins_from(conf, pred, label, t=5)
    assert margin[0] == pytest.approx(0.97 * 1.0 * schedule_factor("paper", 5))
    assert margin[1] == pytest.approx(0.97 * 0.99 * schedule_factor("paper", 5))
    assert margin[2] == pytest.approx(0.8)  # no correct sample of class 2 -> floor
    early = policy.margins_from(conf, pred, label, t=1)
    assert torch.allclose(early, torch.full((3,), 0.8))  # 0.97 * 0.731 < 0.8 -> floor


def test_subset_split_is_per_predicted_class():
    policy = AdaptiveMargin(3)
    policy.thresholds.copy_(torch.tensor([0.9, 0.5, 0.99]))
    conf = torch.tensor([0.95, 0.6, 0.95, 0.85])
    pseudo = torch.tensor([0, 1, 2, 0])
    assert policy.mask(conf, pseudo).tolist() == [1.0, 1.0, 0.0, 0.0]


def test_info_nce_only_on_kept_samples_and_grad_through_both_views():
    torch.manual_seed(0)
    a = torch.nn.functional.normalize(torch.randn(6, 8), dim=1).requires_grad_()
    b = torch.nn.functional.normalize(torch.randn(6, 8), dim=1).requires_grad_()
    keep = torch.tensor([1, 1, 0, 1, 0, 0], dtype=torch.bool)
    loss = info_nce([a, b], keep)
    loss.backward()
    for g in (a.grad, b.grad):
        assert g[keep].abs().sum() > 0 and g[~keep].abs().sum() == 0
    # positives aligned -> lower loss than random
    aligned = info_nce([a.detach(), a.detach()], keep)
    assert aligned < loss
    empty = info_nce([a, b], torch.zeros(6, dtype=torch.bool))
    assert empty.item() == 0.0 and empty.requires_grad
    empty.backward()
    assert torch.isfinite(a.grad).all()


def test_info_nce_masking_equals_the_loss_on_the_kept_subset_alone():
    """Masking (no host sync) must give the loss of the subset-II images taken out on their own."""
    torch.manual_seed(1)
    views = [torch.randn(10, 5) for _ in range(3)]
    keep = torch.rand(10) < 0.5
    alone = info_nce([v[keep] for v in views], torch.ones(int(keep.sum()), dtype=torch.bool))
    assert torch.allclose(info_nce(views, keep), alone, atol=1e-5)


class Probe(nn.Module):
    """Returns fixed logits per view (by a marker in the input) and a learnable unit feature."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x, features=False):
        logits = x[:, :3, 0, 0] * self.scale
        feat = torch.nn.functional.normalize(x[:, 3:, 0, 0] * self.scale, dim=1)
        return (logits, feat) if features else logits


def test_adacm_loss_is_weighted_sum_of_its_parts():
    torch.manual_seed(0)
    method = build_method({"name": "adacm"}, 3, 8)
    method.policy.thresholds.fill_(0.8)
    n = 8
    weak1 = torch.randn(n, 6, 1, 1) * 3
    weak2 = weak1 + 0.1 * torch.randn(n, 6, 1, 1)
    strong = torch.randn(n, 6, 1, 1)
    xl = torch.randn(n, 6, 1, 1)
    yl = torch.randint(0, 3, (n,))
    lb = Batch([xl], yl, torch.arange(n))
    ulb = Batch([weak1, weak2, strong], torch.full((n,), -1), torch.arange(n))
    model = Probe()
    out = method.step(model, lb, ulb, progress=0.5)
    logits_w = [weak1[:, :3, 0, 0], weak2[:, :3, 0, 0]]
    probs = torch.stack([torch.softmax(z, 1) for z in logits_w]).mean(0)
    conf, pseudo = probs.max(1)
    mask = (conf >= 0.8).float()
    assert 0 < mask.sum() < n  # both subsets non-empty in this fixture
    lx = nn.functional.cross_entropy(xl[:, :3, 0, 0], yl)
    lu = (nn.functional.cross_entropy(strong[:, :3, 0, 0], pseudo, reduction="none") * mask).mean()
    feats = [nn.functional.normalize(w[:, 3:, 0, 0], dim=1) for w in (weak1, weak2)]
    lc = info_nce(feats, mask < 1)
    assert out.loss.item() == pytest.approx((0.5 * lx + lu + 0.1 * lc).item(), rel=1e-5)
    assert method.unlabeled_views == ("weak", "weak", "strong")


def test_reproduction_options_are_switches():
    m = build_method({"name": "adacm", "weak_views": 3, "strong_views": 2, "margin_schedule": "log2"}, 7, 10)
    assert m.unlabeled_views == ("weak",) * 3 + ("strong",) * 2
    assert m.policy.schedule == "log2"
    with pytest.raises(ValueError, match="schedule"):
        build_method({"name": "adacm", "margin_schedule": "nope"}, 7, 10)


@pytest.mark.parametrize(("schedule", "maximum"), [("linear", 0.47), ("half", 0.64), ("log2", 0.26)])
def test_reproduction_schedules_equal_a_fixed_floor_margin(schedule, maximum):
    # Even a perfect model (every labeled image right at confidence 1) gets B * schedule(t) < 0.8 for the
    # study's three schedules over Ada-CM's 20 epochs, so the official 0.8 floor holds every margin.
    policy = AdaptiveMargin(3, schedule=schedule)
    conf, label = torch.ones(6), torch.tensor([0, 1, 2, 0, 1, 2])
    peak = max(0.97 * schedule_factor(schedule, t) for t in range(1, 21))
    assert peak == pytest.approx(maximum, abs=0.005)
    for t in range(1, 21):
        assert torch.equal(policy.margins_from(conf, label, label, t), torch.full((3,), 0.8))
    paper = AdaptiveMargin(3, schedule="paper").margins_from(conf, label, label, 2)
    assert (paper > 0.85).all()  # the paper's schedule does lift the margins above the floor
