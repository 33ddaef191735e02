"""Reliability of model files (issue: exports, probe, eval, load): model.json is checked against its schema
before anything is built, NaN/inf weights are refused, a damaged or wrong file is one clear error naming it,
an export appears whole or not at all, and fuzzed model files raise only semifer's errors."""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from safetensors.torch import load_file, save_file

import semifer
from semifer.cli import main
from semifer.data import load_dataset
from semifer.errors import CheckpointError, SemiferError
from semifer.inference import export as export_module
from semifer.inference.export import export_model
from semifer.models import BACKBONES, read_state_dict
from semifer.models.model_info import ModelInfo
from semifer.weights import sha256_file

EVAL_DATA = "synthetic:?split=test&n=14"
PROBE_DATA = ["--train", "synthetic:?n=70", "--test", "synthetic:?split=test&n=14"]
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
WORK = Path(tempfile.mkdtemp(prefix="semifer-model-fuzz-"))


@pytest.fixture(scope="module")
def exported(tiny_run, tmp_path_factory) -> Path:
    """A safetensors export of the tiny run (model.json lists the weights' sha256)."""
    out = tmp_path_factory.mktemp("export") / "st"
    export_model(tiny_run, "safetensors", out)
    return out


@pytest.fixture(scope="module")
def onnx_exported(tiny_run, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("export") / "onnx"
    export_model(tiny_run, "onnx", out)
    return out


def copy_export(source: Path, dest: Path, hashes: bool = True, **changes) -> Path:
    """A copy of an export folder, its model.json changed by `changes` (and without `files` unless `hashes`)."""
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(source, dest)
    blob = json.loads((dest / "model.json").read_text())
    blob.update(changes)
    if not hashes:
        blob.pop("files", None)
    (dest / "model.json").write_text(json.dumps(blob))
    return dest


def one_clear_line(capsys, *needles: str) -> str:
    """The CLI's stderr: one `semifer: error:` line holding every needle, no traceback."""
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.startswith("semifer: error: ") and err.count("\n") == 1, err
    for needle in needles:
        assert needle in err, (needle, err)
    return err


def face_image(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "face.png"
    Image.fromarray(load_dataset("synthetic:?split=test&n=1").pixels[0]).save(path)
    return path


# 1. model.json is validated against its schema before anything is built


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("arch", "resnet9000", "'arch' is 'resnet9000', not a known architecture"),
        ("arch", None, "'arch'"),
        ("img_size", 100000, "'img_size' is 100000"),
        ("img_size", "48", "'img_size'"),
        ("img_size", True, "'img_size'"),
        ("classes", [], "'classes' must be a non-empty list"),
        ("classes", "happy", "'classes'"),
        ("classes", ["angry", "disgust", "fear", "happy", "sad", "surprise", "happy"], "repeats ['happy']"),
        ("classes", ["angry", "disgust", "fear", "happy", "sad", "surprise", " "], "non-empty string"),
        ("classes", ["angry", "disgust", "fear", "happy", "sad", "surprise", 7], "non-empty string"),
        ("mean", [0.5, 0.5], "'mean'"),
        ("mean", [0.5, float("nan"), 0.5], "'mean'"),
        ("std", [0.2, 0.0, 0.2], "'std'"),
        ("std", [0.2, "x", 0.2], "'std'"),
        ("colour", "purple", "'colour'"),
        ("head", {"dropout": "high"}, "'head.dropout'"),
        ("head", {"l2norm": 1}, "'head.l2norm'"),
        ("head", {"feature_dropout": 1.5}, "'head.feature_dropout'"),
        ("head", {"bogus": 1}, "'head.bogus' is not a head option"),
        ("head", [], "'head'"),
        ("bgr_quirk", "yes", "'bgr_quirk'"),
        ("files", {"../../etc/passwd": "0" * 64}, "'files'"),
        ("files", {"model.safetensors": "not-a-hash"}, "'files.model.safetensors'"),
        ("evaluations", ["oops"], "'evaluations'"),
    ],
)
def test_model_json_fields_are_checked_before_anything_is_built(exported, tmp_path, field, value, needle):
    folder = copy_export(exported, tmp_path / "bad", **{field: value})
    with pytest.raises(SemiferError) as caught:
        semifer.load(folder, device="cpu")
    message = str(caught.value)
    assert str(folder / "model.json") in message and needle in message and "invalid model description" in message


def test_a_model_json_missing_a_field_or_not_json_is_one_clear_error(exported, tmp_path):
    folder = copy_export(exported, tmp_path / "bad")
    blob = json.loads((folder / "model.json").read_text())
    del blob["classes"]
    (folder / "model.json").write_text(json.dumps(blob))
    with pytest.raises(SemiferError, match="no 'classes' field"):
        ModelInfo.load(folder / "model.json")
    (folder / "model.json").write_bytes(b"\xff\xfe{not json")
    with pytest.raises(SemiferError, match="not valid JSON"):
        semifer.load(folder, device="cpu")


def test_classes_must_match_the_heads_outputs(exported, tmp_path):
    six = ["angry", "disgust", "fear", "happy", "sad", "surprise"]
    for hashes in (True, False):
        folder = copy_export(exported, tmp_path / f"six-{hashes}", hashes=hashes, classes=six)
        with pytest.raises(CheckpointError, match=r"the head has 7 outputs but .*model\.json lists 6 classes"):
            semifer.load(folder, device="cpu")


def test_cli_reports_a_bad_model_json_in_one_line(exported, tmp_path, capsys):
    folder = copy_export(exported, tmp_path / "bad", img_size=100000)
    assert main(["eval", str(folder), "--data", EVAL_DATA]) == 2
    one_clear_line(capsys, "img_size", str(folder / "model.json"))
    folder = copy_export(exported, tmp_path / "bad", arch="resnet9000")
    assert main(["export", str(folder), "--format", "safetensors", "--out", str(tmp_path / "out")]) == 2
    one_clear_line(capsys, "resnet9000")
    assert not (tmp_path / "out").exists()


# 2. non-finite weights are refused at load


def poison(tensors: dict[str, torch.Tensor], value: float = float("nan")) -> tuple[dict[str, torch.Tensor], str]:
    """The tensors with one value of the first float tensor set to NaN/inf, and that tensor's name."""
    name = next(k for k, v in tensors.items() if v.is_floating_point() and v.numel())
    bad = dict(tensors)
    bad[name] = tensors[name].clone().contiguous()
    bad[name].view(-1)[0] = value
    return bad, name


@pytest.mark.parametrize("hashes", [True, False])
def test_an_export_with_nan_weights_is_refused_naming_the_tensor(exported, tmp_path, hashes):
    folder = copy_export(exported, tmp_path / "nan", hashes=hashes)
    bad, name = poison(load_file(folder / "model.safetensors"))
    save_file(bad, str(folder / "model.safetensors"), metadata={"format": "pt"})
    if hashes:  # hashes that match: only the finite check can catch it
        blob = json.loads((folder / "model.json").read_text())
        blob["files"]["model.safetensors"] = sha256_file(folder / "model.safetensors")
        (folder / "model.json").write_text(json.dumps(blob))
    with pytest.raises(CheckpointError, match=f"NaN or inf.*'{name}'") as caught:
        semifer.load(folder, device="cpu")
    assert str(folder / "model.safetensors") in str(caught.value)


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_a_pretrained_backbone_with_inf_is_refused(tmp_path, suffix):
    path = tmp_path / f"backbone{suffix}"
    tensors, name = poison({"conv.weight": torch.ones(4, 3), "bn.num_batches_tracked": torch.tensor(3)}, float("inf"))
    if suffix == ".pt":
        torch.save({"state_dict": tensors}, path)
    else:
        save_file(tensors, str(path))
    with pytest.raises(CheckpointError, match=f"{path}.*NaN or inf.*'{name}'"):
        read_state_dict(path)


def test_a_run_with_nan_weights_is_not_exported(tiny_run, tmp_path, capsys):
    run = tmp_path / "diverged"
    shutil.copytree(tiny_run, run)
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    state["ema"], name = poison(state["ema"])
    state.pop("checksums", None)  # as a checkpoint written before checksums were kept
    torch.save(state, run / "checkpoints" / "last.pt")
    assert main(["export", str(run), "--format", "safetensors", "--out", str(tmp_path / "out")]) == 2
    one_clear_line(capsys, "NaN", name)
    assert not (tmp_path / "out").exists()


def test_an_onnx_graph_with_nan_initializers_is_refused(onnx_exported, tmp_path):
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(onnx_exported / "model.onnx"))
    init = next(
        i
        for i in graph.graph.initializer
        if numpy_helper.to_array(i).dtype == np.float32 and numpy_helper.to_array(i).size
    )
    array = numpy_helper.to_array(init).copy()
    array.flat[0] = np.nan
    init.CopyFrom(numpy_helper.from_array(array, init.name))
    lone = tmp_path / "nan.onnx"
    onnx.save(graph, str(lone))
    with pytest.raises(CheckpointError, match=f"{lone}.*NaN or inf.*'{init.name}'"):
        semifer.load(lone)


def test_an_onnx_graph_whose_classes_do_not_fit_its_outputs_is_refused(onnx_exported, tmp_path):
    import onnx

    graph = onnx.load(str(onnx_exported / "model.onnx"))
    meta = next(p for p in graph.metadata_props if p.key == "semifer")
    blob = json.loads(meta.value)
    blob["classes"] = blob["classes"][:-1]
    meta.value = json.dumps(blob)
    lone = tmp_path / "six.onnx"
    onnx.save(graph, str(lone))
    with pytest.raises(CheckpointError, match="has 7 outputs but its description lists 6 classes"):
        semifer.load(lone)
    meta.value = "{not json"
    onnx.save(graph, str(lone))
    with pytest.raises(SemiferError, match="not valid JSON"):
        semifer.load(lone)


# 3. damaged, tampered and wrong files are one clear error naming the file


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def tamper(path: Path) -> None:
    """Flip one bit in the header of the safetensors file (a tensor's offsets or name)."""
    data = bytearray(path.read_bytes())
    data[40] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("hashes", [True, False])
@pytest.mark.parametrize("damage", [truncate, tamper])
def test_a_damaged_export_is_one_clear_error_everywhere(exported, tmp_path, capsys, hashes, damage):
    folder = copy_export(exported, tmp_path / "damaged", hashes=hashes)
    weights = folder / "model.safetensors"
    damage(weights)
    with pytest.raises(CheckpointError, match=str(weights)):
        semifer.load(folder, device="cpu")
    with pytest.raises(CheckpointError, match=str(weights)):
        semifer.load(weights, device="cpu")
    assert main(["eval", str(folder), "--data", EVAL_DATA]) == 2
    one_clear_line(capsys, str(weights))
    assert main(["export", str(folder), "--format", "safetensors", "--out", str(tmp_path / "out")]) == 2
    one_clear_line(capsys, str(weights))
    assert not (tmp_path / "out").exists()
    assert main(["predict", str(folder), str(face_image(tmp_path / "faces"))]) == 2
    one_clear_line(capsys, str(weights))


def test_a_lone_safetensors_file_is_a_clear_error(exported, tmp_path, capsys):
    lone = tmp_path / "model.safetensors"
    shutil.copy(exported / "model.safetensors", lone)
    with pytest.raises(SemiferError, match="need the model.json of their export"):
        semifer.load(lone)
    lone.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{garbage")
    assert main(["eval", str(lone), "--data", EVAL_DATA]) == 2
    one_clear_line(capsys, str(lone), "model.json")


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("labels.csv", "emotion,pixels,Usage\n0,1 2 3,Training\n"),
        ("model.pt", "emotion,pixels,Usage\n0,1 2 3,Training\n"),
        ("notes.pt", "just some notes\n"),
        ("random.pt", bytes(range(7, 256))),
    ],
    ids=["csv", "csv-as-pt", "text-as-pt", "random-bytes"],
)
def test_a_file_that_is_no_model_is_one_clear_error(tmp_path, capsys, name, content):
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    with pytest.raises(CheckpointError, match=f"{path}: not a model file"):
        semifer.load(path)
    assert main(["eval", str(path), "--data", EVAL_DATA]) == 2
    one_clear_line(capsys, str(path), "not a model file")
    with pytest.raises(CheckpointError, match=f"{path}: not a model file"):
        read_state_dict(path)  # as model.pretrained or model.init_from


def test_a_text_file_as_model_pretrained_stops_training_in_one_line(tmp_path, capsys):
    path = tmp_path / "backbone.pt"
    path.write_text("emotion,pixels,Usage\n0,1 2 3,Training\n")
    assert (
        main(
            [
                "train",
                "-c",
                "demo",
                f"model.pretrained={path}",
                f"out_dir={tmp_path}",
                "data.workers=0",
                "data.train=synthetic:?n=70",
                "data.test=synthetic:?split=test&n=14",
                "data.split=per_class:2",
            ]
        )
        == 2
    )
    one_clear_line(capsys, str(path), "not a model file")


def test_a_weight_file_not_listed_in_model_json_is_refused(tiny_run, tmp_path):
    """Both formats exported to one folder are both listed; a file left from another model's export is not."""
    out = tmp_path / "both"
    export_model(tiny_run, "safetensors", out)
    export_model(tiny_run, "onnx", out)
    blob = json.loads((out / "model.json").read_text())
    assert set(blob["files"]) == {"model.safetensors", "model.onnx"}
    assert semifer.load(out, backend="torch", device="cpu").model is not None
    assert semifer.load(out, backend="onnx").model is None
    del blob["files"]["model.safetensors"]  # as if another model's ONNX graph had been exported here
    (out / "model.json").write_text(json.dumps(blob))
    with pytest.raises(CheckpointError, match="not listed"):
        semifer.load(out, backend="torch", device="cpu")
    assert semifer.load(out).model is None  # auto: the listed graph, not the unlisted weights


# 4. an export appears whole or not at all


def test_export_into_a_path_under_a_file_is_one_clear_error(tiny_run, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert main(["export", str(tiny_run), "--format", "safetensors", "--out", str(blocker / "export")]) == 2
    one_clear_line(capsys, str(blocker / "export"), "cannot write the export folder")
    assert main(["export", str(tiny_run), "--format", "safetensors", "--out", str(blocker)]) == 2
    one_clear_line(capsys, "a file, not a folder")
    assert blocker.read_text() == "not a folder"


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes to read-only folders")
def test_export_into_a_read_only_folder_is_one_clear_error(tiny_run, tmp_path, capsys):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        assert main(["export", str(tiny_run), "--format", "safetensors", "--out", str(folder)]) == 2
        one_clear_line(capsys, "cannot write")
        assert not list(folder.iterdir())
    finally:
        folder.chmod(0o700)


def test_a_full_disk_leaves_no_partial_export_and_the_previous_one_intact(tiny_run, tmp_path, capsys, monkeypatch):
    out = tmp_path / "export"
    export_model(tiny_run, "safetensors", out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    written = []

    def no_space(fd):
        written.append(fd)
        if len(written) == 2:  # the weights were written, the model card hits the full disk
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(export_module.os, "fsync", no_space)
    assert main(["export", str(tiny_run), "--format", "safetensors", "--out", str(out), "--student"]) == 2
    one_clear_line(capsys, "disk full", str(out))
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # no temp file, nothing replaced
    written.clear()
    fresh = tmp_path / "new" / "folders" / "export"
    assert main(["export", str(tiny_run), "--format", "safetensors", "--out", str(fresh)]) == 2
    one_clear_line(capsys, "disk full")
    assert not (tmp_path / "new").exists()  # the folders it made are removed again


def test_a_failed_onnx_check_leaves_no_graph(tiny_run, tmp_path, monkeypatch):
    monkeypatch.setattr(export_module, "ONNX_TOLERANCE", -1.0)
    with pytest.raises(SemiferError, match="was not written"):
        export_model(tiny_run, "onnx", tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"accuracy": 0.5}', ""])
def test_a_malformed_metrics_json_behind_export_eval_is_named(tiny_run, tmp_path, capsys, content):
    folder = tmp_path / "eval-x"
    folder.mkdir()
    (folder / "metrics.json").write_text(content)
    assert (
        main(
            ["export", str(tiny_run), "--format", "safetensors", "--out", str(tmp_path / "out"), "--eval", str(folder)]
        )
        == 2
    )
    one_clear_line(capsys, str(folder / "metrics.json"))
    assert not (tmp_path / "out").exists()


# 5. probe: files that are not backbones, k out of range


def test_probe_refuses_files_that_are_not_backbones(exported, tmp_path, capsys):
    csv = tmp_path / "faces.csv"
    csv.write_text("emotion,pixels,Usage\n0,1 2 3,Training\n")
    noise = tmp_path / "noise.safetensors"
    noise.write_bytes(bytes(range(256)) * 3)
    for argv, needles in [
        ([str(csv)], [str(csv), "not a model file"]),
        ([str(csv), "--arch", "small_cnn"], [str(csv), "not a model file"]),
        ([str(noise)], [str(noise), "truncated or corrupt"]),
        ([str(noise), "--arch", "small_cnn"], [str(noise), "truncated or corrupt"]),
        ([str(exported)], [str(exported), "a folder, not a backbone file"]),
        ([str(tmp_path / "absent.safetensors")], ["backbone file not found"]),
    ]:
        assert main(["probe", *argv, *PROBE_DATA]) == 2, argv
        one_clear_line(capsys, *needles)


@pytest.mark.parametrize("k", ["0", "-3", "71"])
def test_probe_refuses_k_out_of_range(capsys, k):
    assert main(["probe", "random", "--arch", "small_cnn", *PROBE_DATA, "--k", k]) == 2
    one_clear_line(capsys, f"--k {k}", "70 probe-train images")


def test_probe_refuses_an_absurd_image_size(capsys):
    assert main(["probe", "random", "--arch", "small_cnn", *PROBE_DATA, "--k", "3", "--img-size", "100000"]) == 2
    one_clear_line(capsys, "--img-size 100000")


def test_evaluate_refuses_a_bad_batch_size(exported):
    with pytest.raises(SemiferError, match="batch_size"):
        semifer.evaluate(exported, EVAL_DATA, batch_size=0)


# 6. fuzzing: corrupted model files raise only semifer's errors and never load altered weights


def load_or_refuse(path: Path, **kwargs):
    """semifer.load; its refusal must be a SemiferError (anything else fails the test). None when refused."""
    try:
        return semifer.load(path, device="cpu", **kwargs)
    except SemiferError:
        return None


@pytest.fixture(scope="module")
def valid(exported) -> tuple[bytes, dict]:
    return (exported / "model.safetensors").read_bytes(), json.loads((exported / "model.json").read_text())


def fuzz_folder(name: str, weights: bytes, blob: dict | str) -> Path:
    folder = WORK / name
    folder.mkdir(exist_ok=True)
    (folder / "model.safetensors").write_bytes(weights)
    (folder / "model.json").write_text(blob if isinstance(blob, str) else json.dumps(blob))
    return folder


damages = st.one_of(
    st.tuples(st.just("bytes"), st.binary(max_size=400)),
    st.tuples(st.just("truncate"), st.floats(0, 1, exclude_max=True)),
    st.tuples(
        st.just("flip"),
        st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 7)), min_size=1, max_size=3),
    ),
    st.tuples(
        st.just("flip-header"), st.lists(st.tuples(st.integers(0, 600), st.integers(0, 7)), min_size=1, max_size=3)
    ),
)


def damaged(data: bytes, damage: tuple) -> bytes:
    kind, arg = damage
    if kind == "bytes":
        return arg
    if kind == "truncate":
        return data[: int(arg * len(data))]
    out = bytearray(data)
    for where, bit in arg:
        out[int(where * len(out)) if kind == "flip" else where] ^= 1 << bit
    return bytes(out)


@FUZZ
@given(damage=damages, hashes=st.booleans())
def test_fuzzed_exported_weights_are_refused_with_semifer_errors(valid, damage, hashes):
    weights, blob = valid
    bad = damaged(weights, damage)
    description = blob if hashes else {k: v for k, v in blob.items() if k != "files"}
    folder = fuzz_folder("weights", bad, description)
    model = load_or_refuse(folder)
    changed = bad != weights  # two flips of one bit cancel
    if hashes and changed:
        assert model is None, "a changed weights file was loaded although model.json lists its sha256"
        assert load_or_refuse(folder / "model.safetensors") is None
    elif model is not None:
        assert all(torch.isfinite(p).all() for p in model.model.state_dict().values() if p.is_floating_point())


scalars = st.none() | st.booleans() | st.integers(-10, 10**6) | st.floats(allow_nan=True) | st.text(max_size=6)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=10,
)
FIELDS = [
    "format",
    "arch",
    "classes",
    "img_size",
    "colour",
    "head",
    "bgr_quirk",
    "mean",
    "std",
    "files",
    "method",
    "metrics",
    "evaluations",
    "source",
    "semifer_version",
]
field_values = st.one_of(
    json_values,
    st.sampled_from([*BACKBONES, "gray", "rgb", 48, 16, 512, 0, -1]),
    st.lists(st.sampled_from(["happy", "sad", "", "fear", "angry", "disgust", "surprise", "neutral", " "]), max_size=9),
    st.fixed_dictionaries(
        {}, optional={"dropout": json_values, "l2norm": json_values, "attention": json_values, "x": json_values}
    ),
)


@FUZZ
@given(
    changes=st.dictionaries(st.sampled_from(FIELDS), field_values, max_size=3),
    dropped=st.lists(st.sampled_from(FIELDS), max_size=2),
    whole=st.one_of(st.none(), json_values),
    raw=st.one_of(st.none(), st.text(max_size=30)),
)
def test_fuzzed_model_json_raises_only_semifer_errors(valid, changes, dropped, whole, raw):
    weights, blob = valid
    if raw is not None:
        description: dict | str = raw
    elif whole is not None:
        description = json.dumps(whole)
    else:
        description = {k: v for k, v in {**blob, **changes}.items() if k not in dropped}
    model = load_or_refuse(fuzz_folder("description", weights, description))
    if model is not None:  # whatever loads is a consistent model: 7 unique classes for the 7 outputs, sane size
        info = model.info
        assert len(info.classes) == 7 and len(set(info.classes)) == 7 and all(c.strip() for c in info.classes)
        assert info.arch in BACKBONES and 8 <= info.img_size <= 1024 and info.colour in ("gray", "rgb")


@FUZZ
@given(
    data=st.binary(min_size=1, max_size=300),
    suffix=st.sampled_from([".pt", ".pth", ".safetensors", ".onnx", ".csv"]),
    prefix=st.sampled_from([b"", b"PK\x03\x04", b"\x80\x02", b"\x40\x00\x00\x00\x00\x00\x00\x00{"]),
)
def test_random_bytes_as_a_model_file_raise_only_semifer_errors(data, suffix, prefix):
    path = WORK / f"random{suffix}"
    path.write_bytes(prefix + data)
    assert load_or_refuse(path) is None
    if suffix in (".pt", ".safetensors"):
        with pytest.raises(SemiferError):
            read_state_dict(path)
