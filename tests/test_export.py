"""`semifer export`: ONNX that matches PyTorch (normalisation inside, any batch size), safetensors + model.json
that predict and the API load, and a model card built from the run's own numbers."""

import json
import shutil

import numpy as np
import pytest

import semifer
from semifer.cli import main
from semifer.data import load_dataset


@pytest.fixture(scope="module")
def onnx_export(tiny_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx")
    assert main(["export", str(tiny_run), "--format", "onnx", "--out", str(out)]) == 0
    return out


def crops(n=9):
    return list(load_dataset(f"synthetic:?split=test&n={n}").pixels)


def test_onnx_matches_pytorch_on_a_batch(tiny_run, onnx_export, capsys):
    torch_model = semifer.load(tiny_run, device="cpu")
    graph = semifer.load(onnx_export, backend="onnx")
    faces = crops(9)
    for batch in (9, 4, 1):  # the batch axis is dynamic: full, ragged and single batches
        expected = torch_model.probabilities(faces, batch_size=batch)
        got = graph.probabilities(faces, batch_size=batch)
        assert np.abs(got - expected).max() < 1e-4
    pixels = np.stack([torch_model.prepare(np.repeat(f[:, :, None], 3, axis=2)) for f in faces])
    logits = graph.backend(pixels)
    assert np.abs(logits - torch_model.backend(pixels)).max() < 1e-4  # normalisation is inside the graph
    assert pixels.dtype == np.uint8 and logits.shape == (9, 7)


def test_export_prints_the_onnxruntime_check(tiny_run, tmp_path, capsys):
    assert main(["export", str(tiny_run / "checkpoints" / "last.pt"), "--format", "onnx", "--out", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "max |logit difference|" in text and (tmp_path / "model.onnx").is_file()
    diff = float(text.split("max |logit difference| ")[1].split()[0])
    assert diff <= 1e-4


def test_a_lone_onnx_file_carries_its_description(onnx_export, tiny_run, tmp_path):
    lone = tmp_path / "elsewhere.onnx"
    shutil.copy(onnx_export / "model.onnx", lone)
    model = semifer.load(lone)
    assert model.classes == list(semifer.load(tiny_run).classes) and model.info.colour == "gray"
    assert model.info.img_size == 48 and model.model is None


def test_safetensors_export_loads_with_the_same_predictions(tiny_run, tmp_path):
    assert (
        main(
            ["eval", str(tiny_run), "--data", "synthetic:?split=test&n=21", "--out", str(tiny_run / "eval-synthetic21")]
        )
        == 0
    )
    out = tmp_path / "st"
    assert main(["export", str(tiny_run), "--format", "safetensors", "--out", str(out)]) == 0
    info = json.loads((out / "model.json").read_text())
    assert info["arch"] == "small_cnn" and info["img_size"] == 48 and info["colour"] == "gray"
    assert info["mean"] == [0.485, 0.456, 0.406] and info["method"]["name"] == "supervised"
    assert info["data"]["labeled"] == 140 and info["data"]["label_counts"]["fear"] == 20
    assert "accuracy" in info["metrics"] and info["evaluations"][0]["data"] == "synthetic:?split=test&n=21"
    faces = crops(9)
    np.testing.assert_allclose(
        semifer.load(out).probabilities(faces), semifer.load(tiny_run).probabilities(faces), atol=1e-6
    )
    card = (out / "MODEL_CARD.md").read_text()
    for needle in (
        "## Data",
        "per_class:20",
        "| fear |",
        "Confusion matrix",
        "synthetic:?split=test&n=21",
        "Intended use and limits",
        "small_cnn",
    ):
        assert needle in card
    # predict and eval open the export too
    metrics = semifer.evaluate(out, "synthetic:?split=test&n=21", progress=False)
    assert metrics.n == 21 and metrics.accuracy == info["evaluations"][0]["accuracy"]


def test_export_errors_are_clear(tiny_run, tmp_path, capsys):
    assert main(["export", str(tmp_path / "nothing"), "--format", "safetensors"]) == 2
    assert "no such model" in capsys.readouterr().err
    assert (
        main(["export", str(tiny_run), "--format", "onnx", "--out", str(tmp_path), "--eval", str(tmp_path / "noeval")])
        == 2
    )
    assert "semifer eval --out" in capsys.readouterr().err


def test_predict_command_runs_the_onnx_graph(tiny_run, onnx_export, tmp_path):
    from PIL import Image

    for i, face in enumerate(crops(6)):
        Image.fromarray(face).save(tmp_path / f"{i}.png")
    by_graph, by_torch = tmp_path / "graph.json", tmp_path / "torch.json"
    assert (
        main(["predict", str(onnx_export / "model.onnx"), str(tmp_path), "--out", str(by_graph), "--threads", "1"]) == 0
    )
    assert main(["predict", str(tiny_run), str(tmp_path), "--out", str(by_torch)]) == 0
    graph, torch_rows = json.loads(by_graph.read_text()), json.loads(by_torch.read_text())
    assert len(graph) == 6
    for a, b in zip(graph, torch_rows, strict=True):
        assert a["source"] == b["source"] and abs(a["p_happy"] - b["p_happy"]) < 1e-4
