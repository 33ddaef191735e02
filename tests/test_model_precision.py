"""A model's own precision (`ModelInfo.precision`): an export can say its answers are computed in bf16 where
the hardware computes it natively; `semifer predict` and `semifer eval` then answer so unless told otherwise,
and the description refuses a precision it does not know."""

import json

import numpy as np
import pytest
import torch

import semifer
from semifer.cli import main
from semifer.data import load_dataset
from semifer.errors import SemiferError
from semifer.models import ModelInfo

BF16 = "bf16"


@pytest.fixture(scope="module")
def bf16_export(tiny_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("bf16")
    assert main(["export", str(tiny_run), "--format", "safetensors", "--out", str(out), "--precision", BF16]) == 0
    return out


def crops(n: int) -> tuple[list[np.ndarray], np.ndarray]:
    faces = load_dataset(f"synthetic:?split=test&n={n}")
    return [np.repeat(f[:, :, None], 3, axis=2) for f in faces.pixels], faces.labels


def test_the_export_answers_in_its_own_precision_unless_the_caller_names_one(tiny_run, bf16_export):
    blob = json.loads((bf16_export / "model.json").read_text())
    assert blob["precision"] == BF16 and blob["metrics"] is None  # the run's metrics were computed in fp32
    assert "bf16 autocast" in (bf16_export / "MODEL_CARD.md").read_text()
    assert semifer.load(tiny_run).backend.dtype is None
    assert semifer.load(bf16_export).backend.dtype == torch.bfloat16
    assert semifer.load(bf16_export, precision="fp32").backend.dtype is None
    faces, _ = crops(9)
    own, fp32 = semifer.load(bf16_export).probabilities(faces), semifer.load(tiny_run).probabilities(faces)
    assert not np.array_equal(own, fp32)  # bf16 rounds the activations
    np.testing.assert_allclose(own, semifer.load(tiny_run, precision=BF16).probabilities(faces), atol=1e-6)


def test_eval_scores_the_answers_predict_gives(bf16_export):
    faces, labels = crops(35)
    wanted = (semifer.load(bf16_export).probabilities(faces).argmax(1) == labels).mean()
    data = "synthetic:?split=test&n=35"
    assert semifer.evaluate(bf16_export, data, device="cpu", progress=False).accuracy == pytest.approx(wanted)


def test_an_unknown_precision_is_refused_in_the_description_and_at_export(tiny_run, tmp_path, capsys):
    blob = json.loads(semifer.load(tiny_run).info.to_json())
    blob["precision"] = "fp8"
    with pytest.raises(SemiferError, match="precision.*'fp8'.*fp32, bf16, auto"):
        ModelInfo.from_dict(blob, "model.json")
    from semifer.inference.export import export_model

    with pytest.raises(SemiferError, match="unknown precision 'int4'"):
        export_model(tiny_run, "safetensors", tmp_path / "out", precision="int4")
    assert not (tmp_path / "out").exists()


def test_the_command_line_offers_the_precisions_the_runtime_knows():
    from semifer import cli
    from semifer.runtime import precision

    assert cli.PRECISIONS == precision.PRECISIONS
