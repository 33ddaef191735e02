"""Bridging the Gaps: masked-reconstruction pretraining (stage 0), face mixup, and the two fine-tuning stages."""

import json
import subprocess
import sys

import pytest
import torch
from torch import nn

from semifer.cli import main
from semifer.config import load_config
from semifer.errors import ConfigError
from semifer.methods import Batch, build_method
from semifer.methods.bridging import FaceMixup, pair_iou
from semifer.methods.unlabeled_losses import soft_cross_entropy
from semifer.models import FERNet, load_backbone_weights, read_state_dict
from semifer.pretrain import masked_patch_loss, pretrain_options, random_patch_mask
from semifer.pretrain.masking import hide_patches, pixel_mask

TINY = [
    "data.train=synthetic:?n=140",
    "data.test=synthetic:?split=test&n=35",
    "data.split=per_class:3",
    "data.workers=0",
    "train.batch_size=8",
    "train.iters_per_epoch=2",
    "train.epochs=1",
]
PRETRAIN = [
    "data.train=synthetic:?n=64",
    "data.workers=0",
    "train.epochs=1",
    "train.iters_per_epoch=2",
    "train.batch_size=8",
    "model.arch=small_cnn",
]


# ------------------------------------------------------------------------------------------ masking
@pytest.mark.parametrize("norm_pix", [False, True])
def test_pretraining_loss_sees_masked_patches_only(norm_pix):
    torch.manual_seed(0)
    images, prediction = torch.randn(2, 3, 16, 16), torch.randn(2, 3, 16, 16)
    mask = random_patch_mask(2, 16, 0.75)
    hidden = pixel_mask(mask, 4, 16, 16).expand(-1, 3, -1, -1).bool()
    loss = masked_patch_loss(prediction, images, mask, 4, norm_pix)

    visible_changed = torch.where(hidden, prediction, prediction + 5.0)
    assert torch.equal(masked_patch_loss(visible_changed, images, mask, 4, norm_pix), loss)
    hidden_changed = torch.where(hidden, prediction + 0.5, prediction)
    assert not torch.allclose(masked_patch_loss(hidden_changed, images, mask, 4, norm_pix), loss)

    prediction.requires_grad_(True)
    masked_patch_loss(prediction, images, mask, 4, norm_pix).backward()
    assert torch.all(prediction.grad[~hidden] == 0) and prediction.grad[hidden].abs().sum() > 0


@pytest.mark.parametrize(
    ("patches", "ratio", "hidden"), [(36, 0.75, 27), (196, 0.75, 147), (16, 0.5, 8), (36, 0.6, 22)]
)
def test_mask_ratio_hides_an_exact_number_of_patches_per_image(patches, ratio, hidden):
    torch.manual_seed(0)
    mask = random_patch_mask(5, patches, ratio)
    assert mask.sum(dim=1).tolist() == [hidden] * 5
    assert len({tuple(row.tolist()) for row in mask}) > 1  # each image draws its own patches


def test_hidden_patches_are_zero_and_visible_ones_untouched():
    torch.manual_seed(0)
    images = torch.randn(3, 3, 48, 48)
    mask = random_patch_mask(3, 36, 0.75)
    blanked = hide_patches(images, mask, 8)
    hidden = pixel_mask(mask, 8, 48, 48).expand(-1, 3, -1, -1).bool()
    assert torch.all(blanked[hidden] == 0) and torch.equal(blanked[~hidden], images[~hidden])
    assert hidden[:, 0].float().mean().item() == pytest.approx(0.75)


def test_pretrain_options_patch_defaults_and_errors():
    assert pretrain_options(load_config("pretrain_mae")).patch_size == 8
    assert pretrain_options(load_config("pretrain_mae", ["data.img_size=224"])).patch_size == 16
    with pytest.raises(ConfigError, match="patch_size"):
        pretrain_options(load_config("pretrain_mae", ["pretrain.patch_size=7"]))
    with pytest.raises(ConfigError, match="mask_ratio"):
        pretrain_options(load_config("pretrain_mae", ["pretrain.mask_ratio=1.0"]))
    with pytest.raises(ConfigError, match="nonsense"):
        pretrain_options(load_config("pretrain_mae", ["pretrain.nonsense=1"]))


# ------------------------------------------------------------------------------------ stage 0 runs
def test_pretrain_writes_a_backbone_that_train_starts_from(tmp_path, capsys):
    assert main(["pretrain", *PRETRAIN, f"out_dir={tmp_path}", "name=pre"]) == 0
    run = tmp_path / "pre"
    checkpoint = run / "backbone.safetensors"
    assert "model.pretrained=" in capsys.readouterr().out
    assert (run / "plots" / "reconstructions.png").stat().st_size > 0 and (run / "checkpoints" / "last.pt").is_file()
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 1 and records[0]["step"] == 2 and records[0]["train/loss"] > 0

    net = FERNet("small_cnn", 7)
    report = load_backbone_weights(net.backbone, checkpoint)
    assert not report.missing and not report.unexpected and not report.mismatched
    saved = read_state_dict(checkpoint)
    assert torch.equal(net.backbone.state_dict()["stages.0.0.weight"], saved["stages.0.0.weight"])
    assert not torch.equal(
        FERNet("small_cnn", 7).backbone.state_dict()["stages.0.0.weight"], saved["stages.0.0.weight"]
    )

    # lr 0: the classifier's first conv after a step is still the one it started from
    assert (
        main(
            [
                "train",
                "-c",
                "demo",
                *TINY,
                "train.lr=0",
                f"model.pretrained={checkpoint}",
                f"out_dir={tmp_path}",
                "name=fine",
            ]
        )
        == 0
    )
    trained = torch.load(tmp_path / "fine" / "checkpoints" / "last.pt", weights_only=False)
    assert torch.equal(trained["model"]["backbone.stages.0.0.weight"], saved["stages.0.0.weight"])
    assert "missing" not in (tmp_path / "fine" / "pretrained_load.txt").read_text()

    # resume continues the step count and the metrics file
    assert main(["pretrain", *PRETRAIN, "train.epochs=2", f"out_dir={tmp_path}", "name=pre", "--resume"]) == 0
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [2, 4]


def test_pretrain_help():
    out = subprocess.run(
        [sys.executable, "-m", "semifer", "pretrain", "--help"], capture_output=True, text=True, check=True
    )
    assert "--resume" in out.stdout and "pretrain_mae" in out.stdout


# -------------------------------------------------------------------------------------- face mixup
def _linear(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 7))


def _per_image_ce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return soft_cross_entropy(logits, target, reduction="none")


def _paper_loss(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, lam: float, part: FaceMixup, real_inputs: torch.Tensor
) -> torch.Tensor:
    """The paper's per-pair loss, term by term; `real_inputs` are the images the real terms see."""
    smooth = nn.functional.one_hot(y, 7).float() * (1 - part.label_smoothing) + part.label_smoothing / 7
    mixed = lam * x + (1 - lam) * x.flip(0)
    mixed_term = _per_image_ce(model(mixed), lam * smooth + (1 - lam) * smooth.flip(0))
    real_ce = _per_image_ce(model(real_inputs), smooth)
    return (part.mixed_weight * mixed_term + part.real_weight * (real_ce + real_ce.flip(0))).mean()


def test_face_mixup_mixes_each_image_with_its_reversed_partner():
    x = torch.arange(4, dtype=torch.float32).view(4, 1, 1, 1).expand(4, 3, 2, 2).clone()  # image i is constant i
    original = x.clone()
    y = torch.tensor([0, 1, 2, 3])
    inputs, targets, lam = FaceMixup(label_smoothing=0.0, mixed_weight=1.0, real_weight=0.5)(x, y, 7, lam=0.3)
    assert lam == 0.3 and torch.equal(x, original)
    assert torch.equal(inputs[:4], x)
    assert torch.allclose(inputs[4:, 0, 0, 0], 0.3 * torch.arange(4.0) + 0.7 * torch.arange(3.0, -1, -1))
    # the weights folded into the targets: real rows 4 w = 2, mixed rows 2 m = 2
    assert torch.allclose(targets[4:] / 2, 0.3 * torch.eye(7)[y] + 0.7 * torch.eye(7)[y.flip(0)])
    assert torch.allclose(targets[:4] / 2, torch.eye(7)[y])


def test_face_mixup_real_terms_see_unmixed_images(monkeypatch):
    # image i lights feature i and the model reads class c off feature c: real images are easy (CE ~ 0),
    # mixed ones are not, so real terms computed on in-place-mixed images would give a much larger loss
    y = torch.tensor([0, 1, 2, 3, 4, 5])
    x = 10 * torch.eye(12)[y].view(6, 3, 2, 2)
    model = _linear()
    with torch.no_grad():
        model[1].weight.copy_(torch.eye(7, 12))
        model[1].bias.zero_()
    method = build_method({"name": "bridging_stage1"}, 7)
    monkeypatch.setattr(method.mixup, "sample_lambda", lambda: 0.3)
    out = method.step(model, Batch([x.clone()], y, torch.arange(6)), None, 0.0)
    expected = _paper_loss(model, x, y, 0.3, method.mixup, real_inputs=x)
    in_place_bug = _paper_loss(model, x, y, 0.3, method.mixup, real_inputs=0.3 * x + 0.7 * x.flip(0))
    assert out.loss.item() == pytest.approx(expected.item(), abs=1e-5)
    assert in_place_bug.item() > expected.item() + 1.0
    assert (out.logs["loss_real"] + out.logs["loss_mixed"]).item() == pytest.approx(out.loss.item(), abs=1e-6)


def test_face_mixup_weights_scale_their_terms():
    torch.manual_seed(2)
    x, y = torch.randn(6, 3, 2, 2), torch.tensor([6, 1, 2, 3, 4, 0])
    model = _linear(3)

    def loss(**weights: float) -> float:
        part = FaceMixup(**weights)
        inputs, targets, _ = part(x, y, 7, lam=0.4)
        return soft_cross_entropy(model(inputs), targets).item()

    for mixed, real in [(1.0, 0.5), (2.0, 0.0), (0.0, 1.5), (0.7, 0.3)]:
        part = FaceMixup(mixed_weight=mixed, real_weight=real)
        assert loss(mixed_weight=mixed, real_weight=real) == pytest.approx(
            _paper_loss(model, x, y, 0.4, part, real_inputs=x).item(), abs=1e-5
        )
    only_mixed, only_real = loss(mixed_weight=1.0, real_weight=0.0), loss(mixed_weight=0.0, real_weight=0.5)
    assert loss(mixed_weight=1.0, real_weight=0.5) == pytest.approx(only_mixed + only_real, abs=1e-5)
    assert loss(mixed_weight=3.0, real_weight=0.0) == pytest.approx(3 * only_mixed, abs=1e-5)
    assert loss(mixed_weight=0.0, real_weight=1.0) == pytest.approx(2 * only_real, abs=1e-5)


def test_real_weight_from_face_boxes_is_one_minus_pair_iou():
    boxes = torch.tensor(
        [[0, 0, 10, 10], [0, 0, 10, 10], [5, 0, 15, 10], [0, 0, 10, 10], [20, 20, 30, 30], [0, 0, 10, 10]],
        dtype=torch.float32,
    )
    iou = pair_iou(boxes)  # pairs (0, 5), (1, 4), (2, 3)
    assert torch.allclose(iou, torch.tensor([1.0, 0.0, 1 / 3, 1 / 3, 0.0, 1.0]))
    weights = FaceMixup(real_weight=0.5).real_weights(6, torch.device("cpu"), boxes)
    assert torch.allclose(weights, 1 - iou)
    assert torch.allclose(FaceMixup(real_weight=0.5).real_weights(6, torch.device("cpu")), torch.full((6,), 0.5))


# -------------------------------------------------------------------------------------- the stages
def test_stage1_defaults_and_plain_smoothed_ce_without_mixup():
    method = build_method({"name": "bridging_stage1"}, 7)
    o = method.opts
    assert (o.label_smoothing, o.mixup_alpha, o.real_weight, o.mixed_weight) == (0.1, 1.0, 0.5, 1.0)
    assert method.labeled_views == ("randaugment_m9",) and not method.uses_unlabeled
    assert o.face_boxes == "detect" and not method.uses_teacher
    plain = build_method({"name": "bridging_stage1", "face_mixup": False}, 7)
    x, y = torch.randn(4, 3, 2, 2), torch.tensor([0, 1, 2, 3])
    model = _linear()
    expected = nn.functional.cross_entropy(model(x), y, label_smoothing=0.1)
    assert plain.step(model, Batch([x], y, torch.arange(4)), None, 0.0).loss.item() == pytest.approx(expected.item())


def test_stage2_is_fixmatch_at_the_papers_values_plus_face_mixup():
    method = build_method({"name": "bridging_stage2"}, 7, 10)
    o = method.opts
    assert (o.threshold, o.tau, o.lambda_u, o.weak_views, o.strong_views) == ("fixed", 0.7, 5.0, 1, 1)
    assert method.uses_teacher and method.view_options == {"crop_p": 1.0}
    assert torch.allclose(method.policy.thresholds, torch.full((7,), 0.7))
    assert method.labeled_views == ("weak",) and method.unlabeled_views == ("weak", "strong")

    torch.manual_seed(4)
    x, y = torch.randn(4, 3, 2, 2), torch.tensor([0, 1, 2, 3])
    unlabeled = Batch([torch.randn(6, 3, 2, 2), torch.randn(6, 3, 2, 2)], torch.full((6,), -1), torch.arange(6))
    model = _linear(5)
    out = method.step(model, Batch([x], y, torch.arange(4)), unlabeled, 0.5)
    inputs, targets, _ = method.mixup(x, y, 7, lam=float(out.logs["mixup_lambda"]))
    assert out.logs["loss_x"].item() == pytest.approx(soft_cross_entropy(model(inputs), targets).item(), abs=1e-5)
    assert out.loss.item() == pytest.approx((out.logs["loss_x"] + 5.0 * out.logs["loss_u"]).item(), abs=1e-5)


def test_stage2_pseudo_labels_come_from_the_ema_teacher():
    method = build_method({"name": "bridging_stage2", "face_mixup": False}, 7, 10)
    torch.manual_seed(6)
    x, y = torch.randn(4, 3, 2, 2), torch.tensor([0, 1, 2, 3])
    weak, strong = torch.randn(8, 3, 2, 2), torch.randn(8, 3, 2, 2)
    labeled, unlabeled = Batch([x], y, torch.arange(4)), Batch([weak, strong], torch.full((8,), -1), torch.arange(8))
    student, teacher = _linear(7), _linear(8)
    with torch.no_grad():
        teacher[1].weight.mul_(20)  # a confident teacher that disagrees with the student
    out = method.step(student, labeled, unlabeled, 0.5, teacher=teacher)
    conf, pseudo = torch.softmax(teacher(weak), 1).max(1)
    mask = (conf >= 0.7).float()
    assert 0 < mask.sum() < 8
    assert out.logs["mask"].item() == pytest.approx(mask.mean().item())
    expected = (nn.functional.cross_entropy(student(strong), pseudo, reduction="none") * mask).mean()
    assert out.logs["loss_u"].item() == pytest.approx(expected.item(), rel=1e-5)
    own = method.step(student, labeled, unlabeled, 0.5, teacher=student)
    assert own.logs["mask"].item() != pytest.approx(mask.mean().item())


def test_face_boxes_give_real_weights_one_minus_iou_in_the_step(monkeypatch):
    from semifer.data.face_boxes import detect_face_boxes
    from semifer.data.registry import load_dataset
    from semifer.methods import TrainContext

    faces = load_dataset("synthetic:?n=21")
    boxes, found = detect_face_boxes(faces)
    assert boxes.shape == (21, 4) and found.any()
    assert ((boxes[:, :2] >= 0) & (boxes[:, 2:] <= 1) & (boxes[:, 2:] > boxes[:, :2])).all()
    assert (boxes[~found] == [0, 0, 1, 1]).all()

    method = build_method({"name": "bridging_stage1", "face_boxes": "whole_image"}, 7)
    note = method.on_train_start(TrainContext(10, faces, None, torch.device("cpu")))
    assert "whole image" in note["face_boxes"]
    assert torch.equal(method.face_boxes(torch.tensor([0, 5])), torch.tensor([[0.0, 0, 1, 1], [0, 0, 1, 1]]))

    known = torch.tensor([[0, 0, 0.5, 0.5], [0, 0, 0.5, 0.5], [0.25, 0, 0.75, 0.5], [0, 0, 0.5, 0.5]])
    method.face_boxes.boxes = known  # pairs (0, 3): IoU 1 -> weight 0; (1, 2): IoU 1/3 -> weight 2/3
    monkeypatch.setattr(method.mixup, "sample_lambda", lambda: 0.4)
    torch.manual_seed(5)
    x, y = torch.randn(4, 3, 2, 2), torch.tensor([0, 1, 2, 3])
    model = _linear(9)
    out = method.step(model, Batch([x], y, torch.arange(4)), None, 0.0)
    smooth = nn.functional.one_hot(y, 7).float() * 0.9 + 0.1 / 7
    real_ce = _per_image_ce(model(x), smooth)
    weights = torch.tensor([0.0, 2 / 3, 2 / 3, 0.0])
    assert out.logs["loss_real"].item() == pytest.approx(
        (weights * (real_ce + real_ce.flip(0))).mean().item(), abs=1e-5
    )
    with pytest.raises(ValueError, match="face_boxes"):
        build_method({"name": "bridging_stage1", "face_boxes": "haar"}, 7)


def test_stage2_continues_stage1_with_its_head_and_backbone(tmp_path):
    from semifer.engine.run import build_model

    assert (
        main(
            ["train", "-c", "bridging_stage1", *TINY, "method.face_boxes=whole_image", f"out_dir={tmp_path}", "name=s1"]
        )
        == 0
    )
    last = tmp_path / "s1" / "checkpoints" / "last.pt"
    student = torch.load(last, weights_only=False)["model"]
    cfg = load_config("bridging_stage2", [*TINY, f"model.init_from={last}"])
    model = build_model(cfg, 7)
    start = model.state_dict()
    assert set(start) == set(student) and any(k.startswith("head.") for k in start)
    assert all(torch.equal(start[k], student[k]) for k in student)  # bitwise, head included
    assert (
        main(
            [
                "train",
                "-c",
                "bridging_stage2",
                *TINY,
                f"model.init_from={last}",
                "method.face_boxes=whole_image",
                f"data.split_file={tmp_path / 's1' / 'split.json'}",
                f"out_dir={tmp_path}",
                "name=s2",
            ]
        )
        == 0
    )
    report = (tmp_path / "s2" / "init_load.txt").read_text()
    assert f"loaded {len(student)} tensors" in report and "missing" not in report
    net = FERNet("small_cnn", 7)
    backbone_only = load_backbone_weights(net.backbone, last)
    assert backbone_only.unexpected == ["head.bias", "head.weight"]  # model.pretrained: the backbone alone
