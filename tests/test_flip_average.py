"""Mirror-image averaging at prediction: the answer is the mean of the two views' probabilities, it follows the
model wherever it is used (PyTorch, ONNX, `semifer eval`), and an export that switches it says so."""

import json

import numpy as np
import pytest
import torch

import semifer
from semifer.cli import main
from semifer.data import load_dataset
from semifer.errors import SemiferError
from semifer.models import FERNet, FlipAverage, ModelInfo


def test_the_answer_is_the_mean_of_the_face_and_its_mirror():
    torch.manual_seed(0)
    net = FERNet("small_cnn", 7).eval()
    x = torch.rand(5, 3, 48, 48)
    with torch.no_grad():
        net.head.weight.mul_(300)  # a random network's answers are near uniform: make them differ
        averaged = FlipAverage(net)(x).softmax(1)
        wanted = (net(x).softmax(1) + net(x.flip(-1)).softmax(1)) / 2
        symmetric = torch.cat([x[..., :24], x[..., :24].flip(-1)], dim=-1)
        same = FlipAverage(net)(symmetric).softmax(1)
    assert torch.allclose(averaged, wanted, atol=1e-6)
    assert not torch.allclose(averaged, net(x).softmax(1), atol=1e-3)  # the mirror does change the answer
    assert torch.allclose(same, net(symmetric).softmax(1), atol=1e-6)
    assert FlipAverage(net).num_classes == 7


@pytest.fixture(scope="module")
def flipped_exports(tiny_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("flip")
    for fmt in ("safetensors", "onnx"):
        assert main(["export", str(tiny_run), "--format", fmt, "--out", str(out), "--flip-average"]) == 0
    return out


def test_the_export_predicts_with_the_average_in_pytorch_and_onnx(tiny_run, flipped_exports):
    faces = list(load_dataset("synthetic:?split=test&n=9").pixels)
    plain = semifer.load(tiny_run, device="cpu")
    assert plain.info.flip_average is False
    crops = [np.repeat(f[:, :, None], 3, axis=2) for f in faces]
    mirrored = [c[:, ::-1].copy() for c in crops]
    wanted = (plain.probabilities(crops) + plain.probabilities(mirrored)) / 2
    for backend in ("torch", "onnx"):
        model = semifer.load(flipped_exports, backend=backend, device="cpu")
        assert model.info.flip_average is True
        assert np.abs(model.probabilities(crops) - wanted).max() < 1e-4, backend


def test_eval_scores_the_averaged_model_and_the_card_says_so(tiny_run, flipped_exports, monkeypatch):
    import semifer.api

    scored, real = [], semifer.api.evaluate_faces
    monkeypatch.setattr(semifer.api, "evaluate_faces", lambda net, *a, **k: scored.append(net) or real(net, *a, **k))
    data = "synthetic:?split=test&n=35"
    faces = load_dataset(data)
    plain = semifer.load(tiny_run, device="cpu")
    crops = [np.repeat(f[:, :, None], 3, axis=2) for f in faces.pixels]
    averaged = (plain.probabilities(crops) + plain.probabilities([c[:, ::-1].copy() for c in crops])) / 2
    wanted = (averaged.argmax(1) == faces.labels).mean()
    assert semifer.evaluate(flipped_exports, data, device="cpu", progress=False).accuracy == pytest.approx(wanted)
    semifer.evaluate(tiny_run, data, device="cpu", progress=False)
    assert [type(net) for net in scored] == [FlipAverage, FERNet]
    blob = json.loads((flipped_exports / "model.json").read_text())
    assert blob["flip_average"] is True and blob["metrics"] is None  # the run's metrics scored the other model
    assert "mirror image" in (flipped_exports / "MODEL_CARD.md").read_text()


def test_a_description_with_a_non_boolean_flip_is_refused(tiny_run, tmp_path):
    blob = json.loads(semifer.load(tiny_run).info.to_json())
    blob["flip_average"] = "yes"
    with pytest.raises(SemiferError, match="flip_average"):
        ModelInfo.from_dict(blob, "model.json")


def test_the_builtin_classifier_can_be_exported_without_the_average(tmp_path):
    from semifer import weights

    assert semifer.load(weights.CLASSIFIER).info.flip_average is True
    args = ["export", weights.CLASSIFIER, "--format", "safetensors", "--out", str(tmp_path), "--no-flip-average"]
    assert main(args) == 0
    assert semifer.load(tmp_path).info.flip_average is False
