"""Knowledge distillation: the student moves toward its teachers' averaged predictions, and bad teachers are
clear errors."""

import pytest
import torch
from torch.nn import functional as F

from conftest import TINY_RUN
from semifer.cli import main
from semifer.data import load_dataset
from semifer.engine.evaluate import predict
from semifer.engine.predictor import load_model
from semifer.errors import ConfigError
from semifer.methods import build_method


def test_the_student_learns_the_teachers_predictions(tiny_run, tmp_path):
    faces = load_dataset("synthetic:?split=test&n=70")
    teacher = predict(load_model(tiny_run, device="cpu")[0], faces, 48, torch.device("cpu"), progress=False)
    gaps = {}
    for alpha in (0.0, 1.0):
        name = f"student-{alpha}"
        assert (
            main(
                [
                    "train",
                    "-c",
                    "demo",
                    *TINY_RUN,
                    "train.epochs=2",
                    "model.pretrained=none",
                    "method.name=distill",
                    f"method.teachers=[{tiny_run}]",
                    f"method.alpha={alpha}",
                    "method.temperature=1",
                    f"out_dir={tmp_path}",
                    f"name={name}",
                    "seed=1",
                ]
            )
            == 0
        )
        student = predict(load_model(tmp_path / name, device="cpu")[0], faces, 48, torch.device("cpu"), progress=False)
        gaps[alpha] = F.kl_div(
            torch.log(torch.as_tensor(student) + 1e-8), torch.as_tensor(teacher), reduction="batchmean"
        ).item()
    assert gaps[1.0] < 0.5 * gaps[0.0], gaps  # distilled, not just trained on the labels


def test_teachers_are_required_and_must_match_the_classes(tiny_run, tmp_path):
    with pytest.raises(ConfigError, match="method.teachers"):
        build_method({"name": "distill"}, 7)
    with pytest.raises(ConfigError, match="8 classes|7 classes"):
        build_method({"name": "distill", "teachers": [str(tiny_run)]}, 8)
    (tmp_path / "x.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(Exception, match="x.pt"):
        build_method({"name": "distill", "teachers": [str(tmp_path / "x.pt")]}, 7)
