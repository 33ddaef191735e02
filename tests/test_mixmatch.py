"""MixMatch and ReMixMatch: sharpening, MixUp, interleaving, the ramped unlabeled weight, distribution
alignment and its buffers."""

import pytest
import torch
from torch import nn

from semifer.methods import Batch, build_method
from semifer.methods.mixing import forward_mixed, interleave_index, mixup, running_stats_frozen, sharpen
from semifer.models import FERNet


def batches(n_lab: int, n_unl: int, n_views: int, size: int = 32) -> tuple[Batch, Batch]:
    torch.manual_seed(0)
    labeled = Batch([torch.randn(n_lab, 3, size, size)], torch.arange(n_lab) % 7, torch.arange(n_lab))
    views = [torch.randn(n_unl, 3, size, size) for _ in range(n_views)]
    return labeled, Batch(views, torch.full((n_unl,), -1), torch.arange(n_unl))


def test_sharpen_squares_at_half_temperature_and_peaks_as_t_drops():
    p = torch.tensor([[0.6, 0.3, 0.1]])
    expected = torch.tensor([[0.36, 0.09, 0.01]]) / 0.46
    assert torch.allclose(sharpen(p, 0.5), expected)
    assert sharpen(p, 0.25)[0, 0] > sharpen(p, 0.5)[0, 0] > p[0, 0]
    assert torch.allclose(sharpen(p, 1.0), p)


def test_mixup_weight_favours_the_original_row():
    torch.manual_seed(0)
    x, y = torch.randn(8, 3), torch.eye(8)
    lams = [mixup(x, y, 0.75)[2] for _ in range(300)]
    assert min(lams) >= 0.5 and max(lams) < 1.0
    assert mixup(x, y, 0.0)[2] == 1.0


def test_mixup_mixes_inputs_and_targets_by_the_same_convex_combination():
    torch.manual_seed(1)
    n = 6
    images = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 3, 4, 4)  # image i is constant i
    targets = torch.eye(n)  # image i has class i
    mixed_x, mixed_y, lam = mixup(images, targets, 0.75)
    assert torch.allclose(mixed_y.sum(1), torch.ones(n))
    values = (mixed_y * torch.arange(n, dtype=torch.float32)).sum(1)  # the same weights applied to the values
    assert torch.allclose(mixed_x, values.view(n, 1, 1, 1).expand_as(mixed_x))
    own = mixed_y[torch.arange(n), torch.arange(n)]
    assert torch.all(own >= lam - 1e-6)


def test_interleave_swaps_slices_like_the_official_code():
    index = interleave_index([4, 4, 4])
    # pieces of 4 rows in 3: sizes 1, 1, 2; slice i of group 0 swaps with slice i of group i
    assert [i.tolist() for i in index] == [[0, 5, 10, 11], [4, 1, 6, 7], [8, 9, 2, 3]]
    uneven = torch.cat(interleave_index([3, 7, 7, 7]))
    assert sorted(uneven.tolist()) == list(range(24))


def test_interleaved_forward_returns_rows_in_order_and_updates_bn_once():
    torch.manual_seed(0)
    rowwise = nn.Sequential(nn.Flatten(), nn.Linear(12, 5))
    x = torch.randn(10, 3, 2, 2)
    logits, (extra,) = forward_mixed(rowwise, x, [4, 6], interleave=True, extra=[x[:3]])
    assert torch.allclose(logits, rowwise(x), atol=1e-6) and torch.allclose(extra, rowwise(x[:3]), atol=1e-6)

    bn = nn.BatchNorm1d(3)
    first, second = torch.randn(8, 3) + 5, torch.randn(8, 3) - 5
    with running_stats_frozen(bn, after_passes=1):
        bn(first)
        bn(second)
    reference = nn.BatchNorm1d(3)
    reference(first)
    assert torch.allclose(bn.running_mean, reference.running_mean) and bn.momentum == 0.1
    with running_stats_frozen(bn):
        bn(second)
    assert torch.allclose(bn.running_mean, reference.running_mean)


@pytest.mark.parametrize("interleave", [True, False])
def test_mixmatch_step_trains_the_model_and_ramps_lambda_u(interleave):
    method = build_method({"name": "mixmatch", "interleave": interleave}, 7, 100)
    model = FERNet("small_cnn", 7)
    labeled, unlabeled = batches(8, 8, 2)
    out = method.step(model, labeled, unlabeled, progress=0.0)
    assert out.loss.dim() == 0 and torch.isfinite(out.loss)
    assert {"loss_x", "loss_u"} <= set(out.logs)
    assert out.logs["lambda_u"].item() == 0.0
    assert out.loss.item() == pytest.approx(out.logs["loss_x"].item())
    out.loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)

    mid = method.step(model, labeled, unlabeled, progress=0.2)
    assert mid.logs["lambda_u"].item() == pytest.approx(37.5)  # half way through the 0.4 ramp
    end = method.step(model, labeled, unlabeled, progress=1.0)
    assert end.logs["lambda_u"].item() == pytest.approx(75.0)
    assert end.loss.item() == pytest.approx((end.logs["loss_x"] + 75.0 * end.logs["loss_u"]).item(), rel=1e-5)


def test_remixmatch_alignment_moves_mass_away_from_overpredicted_classes():
    method = build_method({"name": "remixmatch", "p_target": "uniform"}, 3, 100)
    method.p_model_history[:] = torch.tensor([0.6, 0.2, 0.2])
    torch.manual_seed(0)
    probs = torch.softmax(torch.randn(5, 3), dim=1)
    aligned = method.align(probs)
    assert torch.all(aligned[:, 0] < probs[:, 0])
    assert torch.allclose(aligned.sum(1), torch.ones(5))

    labeled_prior = build_method({"name": "remixmatch"}, 3, 100)
    assert torch.allclose(labeled_prior.p_target(), torch.full((3,), 1 / 3))  # nothing seen yet: uniform
    labeled_prior.observe(probs, torch.tensor([0, 0, 0, 1]))
    assert torch.allclose(labeled_prior.p_target(), torch.tensor([0.75, 0.25, 0.0]))


def test_remixmatch_step_updates_its_history_buffer():
    method = build_method({"name": "remixmatch"}, 7, 100)
    model = FERNet("small_cnn", 7)
    labeled, unlabeled = batches(8, 8, 3)
    before = method.p_model_history.clone()
    out = method.step(model, labeled, unlabeled, progress=1.0)
    assert torch.isfinite(out.loss) and {"loss_x", "loss_u", "loss_u1"} <= set(out.logs)
    expected = out.logs["loss_x"] + 1.5 * out.logs["loss_u"] + 0.5 * out.logs["loss_u1"]
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-5)
    out.loss.backward()
    assert model.head.weight.grad is not None
    assert method.history_pos.item() == 1
    assert not torch.equal(method.p_model_history[0], before[0])
    assert torch.equal(method.p_model_history[1:], before[1:])
    assert method.label_counts.sum().item() == 8
    state = method.state_dict()
    assert {"p_model_history", "history_pos", "label_counts"} <= set(state)
    assert torch.equal(state["p_model_history"], method.p_model_history)


def test_methods_are_registered_with_their_views():
    mixmatch = build_method({"name": "mixmatch"}, 7, 100)
    assert mixmatch.unlabeled_views == ("weak", "weak")
    remix = build_method({"name": "remixmatch"}, 7, 100)
    assert remix.unlabeled_views == ("weak", "strong", "strong")
    assert build_method({"name": "remixmatch", "strong_views": 4}, 7, 100).unlabeled_views[1:] == ("strong",) * 4
    with pytest.raises(ValueError, match="rotation head"):
        build_method({"name": "remixmatch", "lambda_rot": 0.5}, 7, 100)
