"""DTA+SNL and DTM's defining details: selective negative learning's scope, the dynamic threshold's rule,
feature-map attention and dropout, the extra-pool ratio sampler, mixed-storage pools, method wiring."""

from itertools import islice

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from torchvision.models import resnet18

from semifer.config import load_config
from semifer.data.faceset import FaceSet, MixedFaceSet, concat
from semifer.data.loaders import InfiniteSampler, RatioSampler
from semifer.engine.optim import build_optimizer
from semifer.engine.run import build_model, prepare_data
from semifer.errors import ConfigError
from semifer.methods import Batch, build_method
from semifer.methods.thresholds import DynamicThreshold
from semifer.methods.unlabeled_losses import complementary_labels, masked_cross_entropy, selective_negative_loss
from semifer.models import FERNet, load_backbone_weights
from semifer.models.classifier import LocalAttention

# ----------------------------------------------------------------- selective negative learning

PROBS = torch.tensor(
    [
        [0.80, 0.16, 0.03, 0.01],  # uncertain: classes 2 and 3 are complementary
        [0.97, 0.01, 0.01, 0.01],  # confident: never touched
        [0.50, 0.46, 0.02, 0.02],  # uncertain: classes 2 and 3
        [0.40, 0.30, 0.20, 0.10],  # uncertain but no class under 0.05: nothing to learn
    ]
)
UNCERTAIN = torch.tensor([True, False, True, True])


def test_snl_only_on_low_confidence_rows_and_selected_classes():
    torch.manual_seed(0)
    logits = torch.randn(4, 4, requires_grad=True)
    loss = selective_negative_loss(logits, PROBS, UNCERTAIN, threshold=0.05)
    loss.backward()
    p = torch.softmax(logits.detach(), 1)
    by_hand = (
        -(torch.log(1 - p[0, 2]) + torch.log(1 - p[0, 3])) / 2 - (torch.log(1 - p[2, 2]) + torch.log(1 - p[2, 3])) / 2
    ) / 4  # mean over the whole batch
    assert loss.item() == pytest.approx(by_hand.item(), rel=1e-6)
    assert logits.grad[1].abs().sum() == 0 and logits.grad[3].abs().sum() == 0
    assert logits.grad[0].abs().sum() > 0 and logits.grad[2].abs().sum() > 0
    # the gradient is that of -log(1 - p_k) over the selected classes only
    ref = logits.detach().clone().requires_grad_()
    q = torch.softmax(ref, 1)
    (
        -(torch.log(1 - q[0, 2]) + torch.log(1 - q[0, 3])) / 8 - (torch.log(1 - q[2, 2]) + torch.log(1 - q[2, 3])) / 8
    ).backward()
    assert torch.allclose(logits.grad, ref.grad, atol=1e-7)


def test_complementary_labels_threshold_k_and_never_the_argmax():
    chosen = complementary_labels(PROBS, threshold=0.05)
    assert chosen.tolist()[0] == [False, False, True, True] and not chosen[3].any()
    lowest = complementary_labels(PROBS, k=1)
    assert lowest.sum(1).tolist() == [1, 1, 1, 1] and lowest[0, 3] and lowest[3, 3]
    everything = complementary_labels(PROBS, threshold=0.99)
    assert not everything[torch.arange(4), PROBS.argmax(1)].any()
    assert complementary_labels(PROBS, k=10).sum(1).tolist() == [3, 3, 3, 3]


def test_snl_with_k_lowest_uses_one_class_per_row():
    logits = torch.zeros(4, 4)
    loss = selective_negative_loss(logits, PROBS, UNCERTAIN, k=1)
    assert loss.item() == pytest.approx(3 * -np.log(0.75) / 4)  # uniform p = 0.25 on 3 uncertain rows


class Probe(nn.Module):
    """Logits are the first three input channels, scaled by a learnable factor."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x, features=False):
        logits = x[:, :3, 0, 0] * self.scale
        return (logits, logits) if features else logits


def test_dta_snl_loss_is_ce_plus_masked_ce_plus_snl_on_the_strong_view():
    torch.manual_seed(0)
    method = build_method({"name": "dta_snl"}, 3, 16)
    method.policy.thresholds.fill_(0.8)  # the mask uses the thresholds from before this step
    n = 16
    weak, strong, xl = torch.randn(n, 3, 1, 1) * 3, torch.randn(n, 3, 1, 1), torch.randn(n, 3, 1, 1)
    yl = torch.randint(0, 3, (n,))
    out = method.step(
        Probe(),
        Batch([xl], yl, torch.arange(n)),
        Batch([weak, strong], torch.full((n,), -1), torch.arange(n)),
        progress=0.5,
    )
    probs = torch.softmax(weak[:, :, 0, 0], 1)
    conf, pseudo = probs.max(1)
    mask = (conf >= 0.8).float()
    assert 0 < mask.sum() < n
    lx = nn.functional.cross_entropy(xl[:, :, 0, 0], yl)
    lu = masked_cross_entropy(strong[:, :, 0, 0], pseudo, mask)
    ln = selective_negative_loss(strong[:, :, 0, 0], probs, mask < 1, 0.05)
    assert ln > 0
    assert out.loss.item() == pytest.approx((lx + lu + 1.0 * ln).item(), rel=1e-5)
    assert out.logs["loss_c"].item() == pytest.approx(ln.item(), rel=1e-5)


# ----------------------------------------------------------------- dynamic threshold


def test_dynamic_threshold_follows_per_class_confidence_by_hand():
    policy = DynamicThreshold(3, momentum=0.5, class_state="confidence")
    assert torch.allclose(policy.thresholds, torch.full((3,), 1 / 3))
    policy.observe(torch.tensor([0.9, 0.7, 0.6]), torch.tensor([0, 0, 1]), torch.arange(3))
    g = 0.5 / 3 + 0.5 * (0.9 + 0.7 + 0.6) / 3
    s = torch.tensor([0.5 / 3 + 0.5 * 0.8, 0.5 / 3 + 0.5 * 0.6, 1 / 3])  # class 2 unseen: unchanged
    expected = g * s / s.max()
    assert torch.allclose(policy.thresholds, expected)
    assert policy.thresholds[0] > policy.thresholds[1] > policy.thresholds[2]
    conf = torch.tensor([0.5, 0.5, 0.5])
    assert policy.mask(conf, torch.tensor([0, 1, 2])).tolist() == [0.0, 1.0, 1.0]  # 0.533 > 0.5 > 0.44


def test_dynamic_threshold_probability_state_floor_and_determinism():
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.6, 0.3, 0.1]])
    conf, pseudo = probs.max(1)
    policy = DynamicThreshold(3, momentum=0.9, class_state="probability", floor=0.32)
    policy.observe(conf, pseudo, torch.arange(2), probs)
    g = 0.9 / 3 + 0.1 * 0.65
    s = 0.9 / 3 + 0.1 * probs.mean(0)
    assert torch.allclose(policy.thresholds, (g * s / s.max()).clamp(min=0.32))
    assert policy.thresholds[2] == pytest.approx(0.32) and policy.thresholds[1] > 0.32  # floored: 0.31 -> 0.32
    with pytest.raises(ValueError, match="probabilities"):
        policy.observe(conf, pseudo, torch.arange(2))

    def run() -> DynamicThreshold:
        torch.manual_seed(1)
        p = DynamicThreshold(7)
        for _ in range(20):
            pr = torch.softmax(torch.randn(32, 7) * 3, 1)
            c, y = pr.max(1)
            p.observe(c, y, torch.arange(32), pr)
        return p

    a, b = run(), run()
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    assert not torch.allclose(a.thresholds, torch.full((7,), 1 / 7))


# ----------------------------------------------------------------- feature extraction


def test_feature_dropout_drops_whole_channels_in_training_only():
    torch.manual_seed(0)
    p = 0.5
    model = FERNet("small_cnn", 7, feature_dropout=p).train()
    x = torch.randn(4, 3, 32, 32)
    base = model.backbone.forward_map(x)
    out = model.feature_map(x)
    live = base.flatten(2).abs().sum(2) > 0
    zeroed = out.flatten(2).abs().sum(2) == 0
    scaled = torch.isclose(out, base / (1 - p), atol=1e-6).flatten(2).all(2)
    assert (zeroed | scaled).all()
    assert (zeroed & live).any() and (scaled & live & ~zeroed).any()
    model.eval()
    assert torch.equal(model.feature_map(x), model.backbone.forward_map(x))


def test_attention_reweights_the_map_and_is_trained():
    torch.manual_seed(0)
    model = FERNet("small_cnn", 7, attention=True)
    assert isinstance(model.attention, LocalAttention)
    x = torch.randn(4, 3, 32, 32)
    base, out = model.backbone.forward_map(x), model.feature_map(x)
    assert not torch.allclose(base, out)
    live = base > 0
    assert ((out[live] / base[live]) > 1).all() and ((out[live] / base[live]) < 2).all()  # x * (1 + a)
    nn.functional.cross_entropy(model(x), torch.tensor([0, 1, 2, 3])).backward()
    params = list(model.attention.parameters())
    assert params and all(q.grad is not None and q.grad.abs().sum() > 0 for q in params)
    optimised = {id(q) for g in build_optimizer(model, load_config("demo").train).param_groups for q in g["params"]}
    assert all(id(q) in optimised for q in params)
    plain = FERNet("small_cnn", 7)
    assert {k.split(".")[0] for k in plain.state_dict()} == {"backbone", "head"}


def test_resnet18_weights_load_into_the_attention_model(tmp_path):
    path = tmp_path / "resnet18.pth"
    torch.save(resnet18().state_dict(), path)
    model = FERNet("resnet18", 7, attention=True, feature_dropout=0.1)
    report = load_backbone_weights(model.backbone, path, strict=True)
    assert report.missing == [] and report.mismatched == [] and report.unexpected == ["fc.bias", "fc.weight"]
    logits, feature = model.eval()(torch.randn(2, 3, 64, 64), features=True)
    assert logits.shape == (2, 7) and feature.shape == (2, 512)


def test_method_heads_resolve_into_the_model():
    dta = build_model(load_config("demo", ["method.name=dta_snl"]), 7)
    assert isinstance(dta.attention, LocalAttention) and dta.feature_dropout.p == 0.1
    off = build_model(
        load_config("demo", ["method.name=dta_snl", "model.attention=false", "model.feature_dropout=0.0"]), 7
    )
    assert isinstance(off.attention, nn.Identity) and isinstance(off.feature_dropout, nn.Identity)
    cfg = load_config("demo", ["method.name=adacm"])
    adacm = build_model(cfg, 7)
    assert isinstance(adacm.attention, nn.Identity) and cfg.model.dropout == 0.5 and cfg.model.feature_dropout == 0.0


# ----------------------------------------------------------------- data: ratio sampler, mixed pools


def test_ratio_sampler_gives_the_requested_fraction_per_batch_and_rank():
    sampler = RatioSampler(100, split=70, ratio=0.25, seed=0)
    draws = np.array(list(islice(iter(sampler), 4000)))
    extra = draws >= 70
    assert extra.mean() == pytest.approx(0.25, abs=0.005)
    assert all(extra[i : i + 8].sum() == 2 for i in range(0, 4000, 8))
    assert set(draws[~extra]) == set(range(70)) and set(draws[extra]) == set(range(70, 100))
    assert list(islice(iter(RatioSampler(100, 70, 0.25, seed=0, start=5)), 10)) == draws[5:15].tolist()
    ranks = [np.array(list(islice(iter(RatioSampler(100, 70, 0.3, seed=1, rank=r, world=2)), 30))) for r in (0, 1)]
    for r in ranks:
        assert (r >= 70).sum() == 9
    assert not set(ranks[0][ranks[0] >= 70]) & set(ranks[1][ranks[1] >= 70])  # first pass: disjoint shards
    assert set(islice(iter(RatioSampler(10, 10, 0.0)), 50)) <= set(range(10))
    with pytest.raises(ValueError, match="empty"):
        RatioSampler(10, 10, 0.5)
    first = list(islice(iter(InfiniteSampler(10, seed=3)), 10))
    assert first == np.random.default_rng([3, 0]).permutation(10).tolist()  # unchanged by the refactor


def _png_folder(root, n, size=10):
    root.mkdir(parents=True, exist_ok=True)
    images = []
    for i in range(n):
        rgb = np.random.default_rng(i).integers(0, 256, (size, size, 3), dtype=np.uint8)
        Image.fromarray(rgb).save(root / f"face_{i}.png")
        images.append(rgb)
    return images


def test_concat_loads_pixel_and_path_images(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (2, 8, 8), dtype=np.uint8)
    mem = FaceSet("fer", ["a", "b"], np.array([1, 2]), pixels=pixels)
    rgb = _png_folder(tmp_path / "faces", 2)
    files = FaceSet("fr", ["x", "y"], np.array([-1, -1]), paths=[tmp_path / "faces" / f"face_{i}.png" for i in (0, 1)])
    both = concat([mem, files], name="unlabeled")
    assert isinstance(both, MixedFaceSet) and len(both) == 4
    assert both.ids == ["fer/a", "fer/b", "fr/x", "fr/y"] and both.labels.tolist() == [1, 2, -1, -1]
    assert torch.equal(both.load(1), torch.from_numpy(pixels[1]).expand(3, -1, -1))
    assert torch.equal(both.load(3), torch.from_numpy(rgb[1]).permute(2, 0, 1))
    picked = both.subset([3, 0]).without_labels()
    assert picked.labels.tolist() == [-1, -1]
    assert torch.equal(picked.load(0), both.load(3)) and torch.equal(picked.load(1), both.load(0))
    nested = concat([picked, mem], name="again")
    assert torch.equal(nested.load(2), both.load(0)) and len(nested) == 4


def test_prepare_data_records_where_extra_pools_start(tmp_path):
    _png_folder(tmp_path / "fr", 5)
    base = [
        "data.train=synthetic:?n=70",
        "data.test=null",
        "data.split=per_class:2",
        f"data.extra_unlabeled=[unlabeled:{tmp_path / 'fr'}]",
        f"out_dir={tmp_path}",
    ]
    data = prepare_data(load_config("demo", [*base, "data.extra_ratio=0.5"]), tmp_path)
    assert data.extra_from == 70 - 14 and len(data.unlabeled) == 70 - 14 + 5
    assert data.unlabeled.load(data.extra_from).shape == (3, 10, 10)
    with pytest.raises(ConfigError, match="extra_ratio"):
        prepare_data(load_config("demo", [*base[:4], "data.extra_unlabeled=[]", "data.extra_ratio=0.5"]), tmp_path)


# ----------------------------------------------------------------- methods


def test_methods_build_with_their_parts():
    dta = build_method({"name": "dta_snl"}, 7, 100)
    assert isinstance(dta.policy, DynamicThreshold) and dta.policy.class_state == "confidence"
    assert dta.opts.uncertain_loss == "snl" and dta.opts.lambda_c == 1.0
    assert dta.head["attention"] is True and dta.head["feature_dropout"] == 0.1
    dtm = build_method({"name": "dtm"}, 7, 100)
    assert isinstance(dtm.policy, DynamicThreshold) and dtm.policy.class_state == "probability"
    assert dtm.opts.uncertain_loss == "none" and dtm.unlabeled_views == ("weak", "strong")
    fix_snl = build_method({"name": "fixmatch", "uncertain_loss": "snl", "lambda_c": 0.5}, 7, 100)
    assert fix_snl.opts.uncertain_loss == "snl"
    with pytest.raises(ValueError, match="uncertain_loss"):
        build_method({"name": "dtm", "uncertain_loss": "nope"}, 7, 100)
    n = 8
    lb = Batch([torch.randn(n, 3, 1, 1)], torch.randint(0, 3, (n,)), torch.arange(n))
    ulb = Batch([torch.randn(n, 3, 1, 1), torch.randn(n, 3, 1, 1)], torch.full((n,), -1), torch.arange(n))
    dtm3 = build_method({"name": "dtm"}, 3, n)
    before = dtm3.policy.class_states.clone()
    dtm3.step(Probe(), lb, ulb, progress=0.1).loss.backward()
    assert not torch.equal(dtm3.policy.class_states, before)  # observe got the probabilities


# ----------------------------------------------------------------- teacher, balanced sampling, run length
def test_dta_snl_pseudo_labels_come_from_the_teacher():
    torch.manual_seed(1)
    method = build_method({"name": "dta_snl"}, 3, 16)
    assert method.uses_teacher and method.balanced_labeled
    method.policy.thresholds.fill_(0.8)
    n = 16
    weak, strong, xl = torch.randn(n, 3, 1, 1) * 3, torch.randn(n, 3, 1, 1), torch.randn(n, 3, 1, 1)
    yl = torch.randint(0, 3, (n,))
    teacher = Probe()
    with torch.no_grad():
        teacher.scale.fill_(-1.0)  # the teacher ranks the classes the other way round from the student
    labeled, unlabeled = Batch([xl], yl, torch.arange(n)), Batch([weak, strong], torch.full((n,), -1), torch.arange(n))
    out = method.step(Probe(), labeled, unlabeled, progress=0.5, teacher=teacher)
    probs = torch.softmax(-weak[:, :, 0, 0], 1)
    conf, pseudo = probs.max(1)
    mask = (conf >= 0.8).float()
    assert 0 < mask.sum() < n
    lu = masked_cross_entropy(strong[:, :, 0, 0], pseudo, mask)
    assert out.logs["loss_u"].item() == pytest.approx(lu.item(), rel=1e-5)
    assert out.logs["mask"].item() == pytest.approx(mask.mean().item())
    student = method.step(Probe(), labeled, unlabeled, progress=0.5)  # without a teacher: the student's guess
    assert student.logs["loss_u"].item() != pytest.approx(lu.item(), rel=1e-3)


def test_engine_hands_its_ema_model_to_a_teacher_method(tmp_path, monkeypatch):
    from semifer.engine.run import train
    from semifer.methods.dta_snl import DTASNL

    seen = []
    step = DTASNL.step

    def spy(self, model, labeled, unlabeled, progress, teacher=None):
        seen.append((teacher, teacher.training, labeled.label.clone()))
        return step(self, model, labeled, unlabeled, progress, teacher)

    monkeypatch.setattr(DTASNL, "step", spy)
    cfg = load_config(
        None,
        [
            "method.name=dta_snl",
            "data.train=synthetic:?n=210",
            "data.test=synthetic:?split=test&n=21",
            "data.split=fraction:0.2",
            "data.workers=0",
            "train.batch_size=14",
            "train.epochs=1",
            "train.iters_per_epoch=3",
            f"out_dir={tmp_path}",
        ],
    )
    result = train(cfg, progress=False)
    ema = result.trainer.ema.module
    assert len(seen) == 3 and all(t is ema and not training for t, training, _ in seen)
    counts = np.bincount(np.concatenate([y.numpy() for _, _, y in seen]), minlength=7)
    assert counts.tolist() == [6] * 7  # 3 batches of 14: every class twice per batch, whatever the split
    assert result.history[0]["start/dynamic_threshold_momentum"] == pytest.approx(DynamicThreshold.scaled_momentum(3))
    with pytest.raises(ConfigError, match="train.ema"):
        train(
            load_config(
                None,
                [
                    "method.name=dta_snl",
                    "train.ema=0",
                    "data.workers=0",
                    f"out_dir={tmp_path}",
                    "train.epochs=1",
                    "train.iters_per_epoch=1",
                ],
            ),
            progress=False,
        )


def test_class_balanced_sampler_draws_every_class_equally_on_every_rank():
    from semifer.data.loaders import ClassBalancedSampler

    labels = np.array([0] * 50 + [1] * 3 + [2] * 10 + [4] * 7)
    draws = list(islice(iter(ClassBalancedSampler(labels, seed=0)), 40))
    for r in range(10):  # any round of 4 consecutive draws holds each class once
        assert sorted(labels[draws[4 * r : 4 * r + 4]].tolist()) == [0, 1, 2, 4]
    assert len(set(draws[:20]) & set(range(50, 53))) == 3  # the 3 rare images all come back
    ranks = [list(islice(iter(ClassBalancedSampler(labels, 0, rank, 2)), 20)) for rank in (0, 1)]
    assert ranks[0] == draws[0::2][:20] and ranks[1] == draws[1::2][:20]
    assert list(islice(iter(ClassBalancedSampler(labels, 0, 1, 2, start=5)), 10)) == ranks[1][5:15]
    plain = list(islice(iter(InfiniteSampler(len(labels), seed=0)), 40))
    assert np.bincount(labels[plain])[0] > 20  # without it the frequent class dominates
    with pytest.raises(ValueError, match="labeled"):
        ClassBalancedSampler(np.array([0, -1]))


def test_dynamic_threshold_momentum_scales_with_the_run_length():
    short = DynamicThreshold(7)
    note = short.set_run_length(2000)
    assert note["dynamic_threshold_momentum"] == pytest.approx(0.01 ** (1 / 200))
    for _ in range(200):  # after 10 % of the run the 1/C start weighs at most 1 %
        short.observe(torch.full((8,), 0.9), torch.zeros(8, dtype=torch.long), torch.arange(8))
    assert float(short.global_state) == pytest.approx(0.9 - 0.01 * (0.9 - 1 / 7), abs=1e-4)
    long = DynamicThreshold(7)
    long.set_run_length(2**20)
    assert long.momentum == 0.999  # FreeMatch's value at FreeMatch's length
    fixed = DynamicThreshold(7, momentum=0.999)
    fixed.set_run_length(2000)
    assert fixed.momentum == 0.999
    from semifer.methods import TrainContext

    method = build_method({"name": "dtm"}, 7, 10)
    faces = FaceSet("l", ["a"], np.array([0]), pixels=np.zeros((1, 4, 4), dtype=np.uint8))
    method.on_train_start(TrainContext(5000, faces, None, torch.device("cpu")))
    assert method.policy.momentum == pytest.approx(0.01 ** (1 / 500))
