"""Knowledge distillation: the student moves toward its teachers' averaged predictions, and bad teachers are
clear errors."""

import pytest
import torch

from conftest import TINY_RUN
from semifer.cli import main
from semifer.data import load_dataset
from semifer.engine.evaluate import predict
from semifer.errors import ConfigError
from semifer.methods import build_method
from semifer.methods.base import Batch
from semifer.models import FlipAverage, load_model
from semifer.runtime.checkpoint import save_checkpoint
from semifer.tensorfile import load_torch_file


def permuted_teacher(run, path):
    """`run`'s network with its class outputs rotated by one and sharpened: a teacher that disagrees with the
    labels, so a student that follows it can only have learned it from the teacher."""
    state = load_torch_file(run / "checkpoints" / "last.pt")
    for part in ("model", "ema"):
        for key in ("head.weight", "head.bias"):
            state[part][key] = 5 * torch.roll(state[part][key], 1, dims=0)
    save_checkpoint(state, path)
    return path


def test_the_student_learns_the_teachers_predictions(tiny_run, tmp_path):
    faces = load_dataset("synthetic:?split=test&n=70")
    teacher_path = permuted_teacher(tiny_run, tmp_path / "teacher.pt")
    teacher = build_method({"name": "distill", "teachers": [str(teacher_path)]}, 7)._teachers[0]
    wanted = predict(teacher, faces, 48, torch.device("cpu"), progress=False).argmax(1)
    agreement = {}
    for alpha in (0.0, 1.0):
        name = f"student-{alpha}"
        args = [
            *TINY_RUN,
            "train.epochs=4",
            "model.pretrained=none",
            "method.name=distill",
            f"out_dir={tmp_path}",
            f"method.teachers=[{teacher_path}]",
            f"method.alpha={alpha}",
            f"name={name}",
            "seed=1",
        ]
        assert main(["train", "-c", "demo", *args]) == 0
        student = load_model(tmp_path / name, device="cpu")[0]
        agreement[alpha] = (predict(student, faces, 48, torch.device("cpu"), progress=False).argmax(1) == wanted).mean()
    assert agreement[1.0] > agreement[0.0] + 0.25, agreement  # it follows the teacher, not the labels


def test_teachers_are_required_and_must_match_the_classes(tiny_run, tmp_path):
    with pytest.raises(ConfigError, match="method.teachers"):
        build_method({"name": "distill"}, 7)
    with pytest.raises(ConfigError, match="8 classes|7 classes"):
        build_method({"name": "distill", "teachers": [str(tiny_run)]}, 8)
    (tmp_path / "x.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(Exception, match="x.pt"):
        build_method({"name": "distill", "teachers": [str(tmp_path / "x.pt")]}, 7)


class Recorder(torch.nn.Module):
    """A stand-in network that keeps the last images it saw."""

    def __init__(self):
        super().__init__()
        self.head = torch.nn.Linear(3 * 8 * 8, 7)
        self.seen = None

    def forward(self, x):
        self.seen = x.detach().clone()
        return self.head(x.flatten(1))


@pytest.mark.parametrize("alpha", [0.0, 0.4])
def test_mixup_shows_student_and_teacher_the_same_mixed_images(tiny_run, alpha):
    method = build_method({"name": "distill", "teachers": [str(tiny_run)], "mixup": alpha}, 7)
    teacher, student = Recorder(), Recorder()
    method._teachers = [teacher]
    torch.manual_seed(0)
    x, y = torch.rand(16, 3, 8, 8), torch.arange(16) % 7
    out = method.step(student, Batch([x], y, torch.arange(16)), None, 0.5)
    assert torch.equal(teacher.seen, student.seen)
    assert torch.equal(student.seen, x) == (alpha == 0)
    assert torch.isfinite(out.loss)


def test_mixup_must_not_be_negative(tiny_run):
    with pytest.raises(ConfigError, match="mixup"):
        build_method({"name": "distill", "teachers": [str(tiny_run)], "mixup": -1}, 7)


def test_teacher_flip_average_targets_the_mean_of_the_face_and_its_mirror(tiny_run):
    """A teacher that answers class 0 on a face and class 1 on its mirror gives an even target between them."""

    class LeftOrRight(torch.nn.Module):
        def forward(self, x):
            left = (x[..., : x.shape[-1] // 2].mean((1, 2, 3)) > x[..., x.shape[-1] // 2 :].mean((1, 2, 3))).float()
            logits = torch.full((len(x), 7), -20.0)
            logits[:, 0], logits[:, 1] = 20 * left - 10, 10 - 20 * left
            return logits

    x = torch.zeros(4, 3, 8, 8)
    x[..., :4] = 1.0  # bright on the left
    targets = {}
    for flip in (False, True):
        method = build_method({"name": "distill", "teachers": [str(tiny_run)], "teacher_flip_average": flip}, 7)
        (teacher,) = method._teachers
        assert isinstance(teacher, FlipAverage) == flip
        if flip:
            teacher.model = LeftOrRight()
        else:
            method._teachers = [teacher := LeftOrRight()]
        targets[flip] = torch.softmax(teacher(x).float(), dim=1)
    assert targets[False][:, 0].min() > 0.99
    assert torch.allclose(targets[True][:, :2], torch.full((4, 2), 0.5), atol=1e-3)


def test_unlabeled_faces_add_the_teachers_soft_term_on_them(tiny_run):
    """With `unlabeled_weight`, the student and teacher see the unlabeled weak view too, and the loss grows by
    exactly alpha * weight * T^2 * KL(teacher || student) on those faces; without it they are not drawn. Each
    teacher answers both batches in one pass."""
    torch.manual_seed(0)
    x, y, u = torch.rand(6, 3, 8, 8), torch.arange(6) % 7, torch.rand(10, 3, 8, 8)
    teacher, student = Recorder(), Recorder()
    losses = {}
    for weight in (0.0, 2.0):
        method = build_method({"name": "distill", "teachers": [str(tiny_run)], "unlabeled_weight": weight}, 7)
        assert method.uses_unlabeled == (weight > 0) and method.unlabeled_views == (("weak",) if weight else ())
        method._teachers = [teacher]
        out = method.step(student, Batch([x], y, torch.arange(6)), Batch([u], -torch.ones(10), torch.arange(10)), 0.5)
        losses[weight] = out.loss.item()
        assert len(student.seen) == (16 if weight else 6)
        assert torch.equal(teacher.seen, student.seen)  # one teacher pass over the labeled and unlabeled faces
    t = method.opts.temperature
    with torch.no_grad():
        kl = torch.nn.functional.kl_div(
            torch.log_softmax(student(u) / t, 1), torch.softmax(teacher(u) / t, 1), reduction="batchmean"
        )
    assert kl > 0
    assert losses[2.0] - losses[0.0] == pytest.approx(method.opts.alpha * 2.0 * t**2 * kl.item(), rel=1e-4)
