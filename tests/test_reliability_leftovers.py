"""Reliability leftovers of training: checkpoints carry a checksum and refuse damaged or non-finite weights, a
full disk or a kill during a checkpoint is clean, methods that need unlabeled images say so before training,
a resume checks the labeled images' pixels, and every numeric setting has a finite range."""

from __future__ import annotations

import dataclasses
import errno
import json
import random
import typing

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fixture_layouts import make_class_tree, write_fer2013, write_image
from semifer.cli import main
from semifer.config import Config, load_config
from semifer.engine.run import train
from semifer.errors import CheckpointError, ConfigError, DataError, SemiferError
from semifer.labels import CANONICAL
from semifer.runtime.checkpoint import PARTIAL_SUFFIX, load_checkpoint, save_checkpoint
from tiny_runs import TINY, tiny_config

EVAL_DATA = "synthetic:?split=test&n=14"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return train(tiny_config(tmp_path_factory.mktemp("runs"), "name=tiny"), progress=False).run_dir


def epochs_logged(run_dir):
    return [json.loads(line)["epoch"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def same_content(a, b) -> bool:
    """Two loaded checkpoints hold equal tensors and plain data."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return (
            isinstance(a, torch.Tensor)
            and isinstance(b, torch.Tensor)
            and a.dtype == b.dtype
            and a.shape == b.shape
            and torch.equal(a, b)
        )
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_content(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(same_content(x, y) for x, y in zip(a, b, strict=True))
    return a == b or (a != a and b != b)  # NaN equals NaN here


# ----------------------------------------------------------------------------------- 1: integrity
def test_a_checkpoint_with_flipped_bytes_is_refused_or_loads_unchanged(trained, tmp_path):
    original = (trained / "checkpoints" / "last.pt").read_bytes()
    intact = load_checkpoint(trained)
    refused = 0
    rng = random.Random(0)
    for attempt in range(30):
        data = bytearray(original)
        for position in rng.sample(range(len(data)), 3):
            data[position] ^= 0xFF
        path = tmp_path / f"flipped-{attempt}.pt"
        path.write_bytes(bytes(data))
        try:
            state = load_checkpoint(path)
        except CheckpointError as exc:
            assert str(path) in str(exc)
            refused += 1
        else:  # bytes torch never reads (zip padding, timestamps): the content must still be the original's
            assert same_content(state, intact), f"attempt {attempt} loaded altered content"
    assert refused >= 20


def test_flipped_weight_bytes_are_one_clear_error_naming_the_file_and_the_fix(trained, tmp_path, capsys):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    data = bytearray((trained / "checkpoints" / "last.pt").read_bytes())
    weight = load_checkpoint(trained)["model"]["head.weight"]
    at = bytes(data).find(weight.numpy().tobytes())
    assert at > 0
    data[at + 5] ^= 0x01
    path = run / "checkpoints" / "last.pt"
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"last\.pt: checksum mismatch .*model.* backup"):
        load_checkpoint(path)
    assert main(["eval", str(run), "--data", EVAL_DATA]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "checksum mismatch" in err and "Traceback" not in err


def test_checkpoints_without_a_checksum_still_load(trained, tmp_path, capsys):
    state = torch.load(trained / "checkpoints" / "last.pt", weights_only=True)
    state.pop("checksums", None)
    path = tmp_path / "old.pt"
    torch.save(state, path)
    assert load_checkpoint(path)["step"] == state["step"]
    assert main(["eval", str(path), "--data", EVAL_DATA]) == 0


@pytest.mark.parametrize("resave", ["semifer", "plain torch.save"])
def test_nonfinite_weights_are_refused_by_load_eval_and_predict(trained, tmp_path, capsys, resave):
    state = load_checkpoint(trained)
    state["ema"]["head.weight"][0, 0] = float("nan")
    run = tmp_path / "run"
    path = run / "checkpoints" / "last.pt"
    path.parent.mkdir(parents=True)
    if resave == "semifer":
        save_checkpoint(state, path)
    else:
        state.pop("checksums", None)
        torch.save(state, path)
    with pytest.raises(CheckpointError, match=r"last\.pt: .*NaN or inf.*head\.weight"):
        load_checkpoint(run)
    assert main(["eval", str(run), "--data", EVAL_DATA]) == 2
    assert "NaN or inf" in capsys.readouterr().err
    photo = write_image(tmp_path / "face.png", size=(48, 48))
    assert main(["predict", str(run), str(photo), "--detect", "none"]) == 2
    captured = capsys.readouterr()
    assert "NaN or inf" in captured.err and "nan" not in captured.out


def test_pretraining_checkpoints_carry_checksums_too(tmp_path):
    from semifer.engine.pretraining import pretrain

    overrides = [
        "data.train=synthetic:?n=32",
        "train.epochs=1",
        "train.iters_per_epoch=2",
        "train.batch_size=8",
        "data.workers=0",
        "train.amp=false",
        "pretrain.decoder_dim=32",
    ]
    run = pretrain(load_config("pretrain_mae", overrides), progress=False, run_dir=tmp_path / "mae").run_dir
    path = run / "checkpoints" / "last.pt"
    state = torch.load(path, weights_only=True)
    assert set(state["checksums"]) >= {"model", "optimizer", "config", "step"}
    state["model"][next(iter(state["model"]))].add_(1)
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=r"last\.pt: checksum mismatch in 'model'"):
        pretrain(load_config("pretrain_mae", overrides), resume=True, progress=False, run_dir=run)


# ------------------------------------------------------------------------------ 2: disk full, kill
class FullDisk:
    """A file whose disk fills up after `room` bytes, as a real file raises inside torch's zip writer."""

    def __init__(self, fh, room: int = 4096):
        self.fh, self.room = fh, room

    def write(self, data) -> int:
        size = memoryview(data).nbytes
        if size > self.room:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room -= size
        return self.fh.write(data)

    def flush(self) -> None:
        self.fh.flush()


def test_a_full_disk_during_training_is_one_line_and_keeps_the_previous_checkpoint(tmp_path, monkeypatch, capsys):
    real_save, saves = torch.save, []

    def save(obj, f, *args, **kwargs):
        saves.append(1)
        return real_save(obj, FullDisk(f) if len(saves) == 2 else f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)
    run = tmp_path / "run"
    code = main(["train", "-c", "demo", *TINY, "--run-dir", str(run)])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error" in line.lower()]
    assert code == 2 and "Traceback" not in err
    assert len(errors) == 1 and errors[0].startswith("semifer: error: disk full"), err
    assert "--resume" in errors[0]
    monkeypatch.undo()
    assert load_checkpoint(run)["step"] == 3  # epoch 1's checkpoint, intact
    assert not list(run.rglob(f"*{PARTIAL_SUFFIX}"))


class Killed(BaseException):
    """A stand-in for kill -9: nothing in semifer catches it."""


def test_a_kill_during_the_first_checkpoint_then_resume_does_not_repeat_epochs(tmp_path, monkeypatch, capsys):
    import semifer.engine.loop as loop_module

    def killed_while_saving(state, path, *more):
        path.parent.mkdir(parents=True, exist_ok=True)
        (path.parent / f".{path.name}.k1ll{PARTIAL_SUFFIX}").write_bytes(b"\0" * 100)
        raise Killed

    monkeypatch.setattr(loop_module, "save_checkpoint", killed_while_saving)
    cfg = tiny_config(tmp_path / "a")
    with pytest.raises(Killed):
        train(cfg, progress=False)
    run = tmp_path / "a" / cfg.name
    assert epochs_logged(run) == [1] and not (run / "checkpoints" / "last.pt").exists()
    monkeypatch.undo()
    capsys.readouterr()
    train(tiny_config(tmp_path / "a"), resume=True, run_dir=run)
    assert "starting over" in capsys.readouterr().out
    assert epochs_logged(run) == [1, 2]
    assert not list(run.rglob(f"*{PARTIAL_SUFFIX}"))
    full = train(tiny_config(tmp_path / "b"), progress=False)
    a, b = load_checkpoint(run), load_checkpoint(full.run_dir)
    assert a["step"] == b["step"] == 6 and same_content(a["model"], b["model"])


# -------------------------------------------------------------------------------- 3: no unlabeled
@pytest.mark.parametrize("method", ["fixmatch", "mixmatch"])
def test_a_method_needing_unlabeled_images_on_a_split_leaving_none_is_a_clear_error(tmp_path, capsys, method):
    overrides = [f"method.name={method}", "data.split=all"]
    with pytest.raises(ConfigError, match=rf"{method} .*unlabeled.*data\.split=all"):
        train(tiny_config(tmp_path, *overrides), progress=False, run_dir=tmp_path / "api")
    assert not (tmp_path / "api" / "metrics.jsonl").exists()
    assert main(["train", "-c", "demo", *TINY, *overrides, "--run-dir", str(tmp_path / "cli")]) == 2
    err = capsys.readouterr().err
    assert "semifer: error:" in err and "unlabeled" in err and "Traceback" not in err


# ---------------------------------------------------------------------------- 4: labeled pixels
def csv_pool(tmp_path):
    rows = [(e % 7, "Training") for e in range(28)]
    csv = write_fer2013(tmp_path / "fer.csv", rows)

    def change_pixels():
        write_fer2013(csv, rows, pixels={i: " ".join(["9"] * 48 * 48) for i in range(len(rows))})

    return [f"data.train=fer2013:{csv}?split=Training", "data.split=per_class:2"], change_pixels


def folder_pool(tmp_path):
    root = make_class_tree(tmp_path / "faces", {name: 3 for name in CANONICAL[:7]})

    def change_pixels():
        for image in root.rglob("*.png"):
            write_image(image, value=7)

    return [f"data.train=folder:{root}", "data.split=per_class:2"], change_pixels


@pytest.mark.parametrize("pool", [csv_pool, folder_pool])
def test_resume_after_the_labeled_pixels_changed_in_place_is_refused(tmp_path, pool):
    overrides, change_pixels = pool(tmp_path)
    half = train(tiny_config(tmp_path, *overrides), progress=False, stop_after_epoch=1)
    assert json.loads((half.run_dir / "split.json").read_text())["labeled_pixels"]
    change_pixels()
    with pytest.raises(DataError, match=r"split\.json: the pixels of the labeled images changed"):
        train(tiny_config(tmp_path, *overrides), resume=True, progress=False, run_dir=half.run_dir)
    assert epochs_logged(half.run_dir) == [1]


def test_split_files_without_a_pixel_fingerprint_still_resume(tmp_path):
    overrides, _ = csv_pool(tmp_path)
    half = train(tiny_config(tmp_path, *overrides), progress=False, stop_after_epoch=1)
    saved = half.run_dir / "split.json"
    blob = json.loads(saved.read_text())
    del blob["labeled_pixels"]
    saved.write_text(json.dumps(blob))
    resumed = train(tiny_config(tmp_path, *overrides), resume=True, progress=False, run_dir=half.run_dir)
    assert epochs_logged(resumed.run_dir) == [1, 2]


# ----------------------------------------------------------------------------------- 5: bounds
def walk(cls, prefix, owner, out):
    """The numeric fields of dataclass `cls` (nested ones too) as dotted key -> `owner`, added to `out`."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint):
            walk(hint, f"{prefix}{f.name}.", owner, out)
        elif {int, float} & set(typing.get_args(hint) or (hint,)) or any(
            {int, float} & set(typing.get_args(a)) for a in typing.get_args(hint)
        ):
            out[f"{prefix}{f.name}"] = owner
    return out


def numeric_keys() -> dict[str, str]:
    """Every numeric setting as dotted key -> what it belongs to: a method's name, 'pretrain:<objective>'
    ('pretrain:mae', 'pretrain:simclr', ...), or '' for the config's own sections. A key two objectives share
    belongs to the last one walked."""
    from semifer.methods import METHODS, method_class
    from semifer.pretrain.byol import BYOLOptions
    from semifer.pretrain.mae import PretrainOptions
    from semifer.pretrain.simclr import SimCLROptions

    keys = walk(Config, "", "", {})
    for name in METHODS:
        walk(method_class(name).Options, "method.", name, keys)
    walk(PretrainOptions, "pretrain.", "pretrain:mae", keys)
    walk(SimCLROptions, "pretrain.", "pretrain:simclr", keys)
    walk(BYOLOptions, "pretrain.", "pretrain:byol", keys)
    return keys


PRETRAIN_PRESETS = {
    "pretrain:mae": "pretrain_mae",
    "pretrain:simclr": "pretrain_simclr_fer2013_small",
    "pretrain:byol": "pretrain_byol_fer2013_small",
}


NUMERIC = numeric_keys()


def key_bounds(key: str, owner: str | None = None):
    """The range of a numeric setting: a method option's own (of method `owner`), else the config tables'."""
    from semifer.config_checks import bounds, declared_rules
    from semifer.methods import method_class

    section, _, name = key.rpartition(".")
    if section == "method":
        return declared_rules(method_class(NUMERIC[key] if owner is None else owner).Options, name)[0]
    return bounds(key)


def test_every_numeric_setting_has_a_finite_range():
    from semifer.methods import METHODS, method_class

    keys = [(key, owner) for key, owner in NUMERIC.items() if not key.startswith("method.")]
    keys += [(key, name) for name in METHODS for key in walk(method_class(name).Options, "method.", name, {})]
    unbounded = [
        f"{owner} {key}"
        for key, owner in keys
        if (b := key_bounds(key, owner)) is None or b.low is None or b.highest is None
    ]
    assert not unbounded


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("train.lr=1e300", "train.lr must be <= 1000000; got 1e+300 (allowed range [0, 1000000])"),
        ("data.img_size=100000", "data.img_size must be <= 1024; got 100000 (allowed range [16, 1024])"),
        ("data.img_size=8", "data.img_size must be >= 16; got 8 (allowed range [16, 1024])"),
        ("train.batch_size=1000000", "train.batch_size must be <= 65536"),
        ("train.epochs=100000000000", "train.epochs must be <= 10000000; got 100000000000"),
        ("seed=100000000000000000000", "seed must be <="),
        ("train.weight_decay=1e100", "train.weight_decay must be <="),
        ("method.name=fixmatch method.lambda_u=1e200", "method.lambda_u must be <="),
        ("train.layer_decay=0", "train.layer_decay must be > 0"),
    ],
)
def test_absurd_numbers_are_one_line_naming_the_key_and_the_range(override, needle, capsys):
    from semifer.methods import resolve_method

    with pytest.raises(ConfigError) as info:
        resolve_method(load_config("demo", override.split()).method)
    assert needle in str(info.value) and "\n" not in str(info.value)
    assert main(["train", "-c", "demo", *override.split()]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


def test_pretraining_options_have_bounds_too():
    from semifer.pretrain.mae import pretrain_options
    from semifer.pretrain.simclr import simclr_options

    with pytest.raises(ConfigError, match=r"pretrain\.decoder_dim must be <="):
        pretrain_options(load_config("pretrain_mae", ["pretrain.decoder_dim=1000000000"]))
    with pytest.raises(ConfigError, match=r"pretrain\.proj_hidden must be <="):
        simclr_options(load_config("pretrain_simclr_fer2013_small", ["pretrain.proj_hidden=1000000000"]))


huge = st.one_of(
    st.integers(-(10**40), 10**40),
    st.floats(allow_nan=False, width=64),
    st.sampled_from([0, -1, 1, 10**7 + 1, 65537, 1e300, -1e300, 2**63, 10**400, 0.5]),
)


def accepted(key: str, value) -> object:
    """The value `key` ends up with when the config takes `value`; raises ConfigError when it does not."""
    from semifer.methods import resolve_method
    from semifer.pretrain import objective_class

    owner, name = NUMERIC[key], key.rpartition(".")[2]
    if owner.startswith("pretrain:"):
        cfg = load_config(PRETRAIN_PRESETS[owner], values={key: value})
        return getattr(objective_class(cfg).options(cfg), name)
    cfg = load_config("demo", values={key: value, **({"method.name": owner} if owner else {})})
    section = key.rpartition(".")[0]
    if section == "method":
        teachers = {"teachers": ["runs/teacher"]} if owner == "distill" else {}  # distill needs some
        return getattr(resolve_method({**cfg.method, **teachers}).options, name)
    return getattr(getattr(cfg, section) if section else cfg, name)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key=st.sampled_from(sorted(NUMERIC)), value=huge)
def test_numeric_overrides_raise_only_config_errors_and_keep_values_in_range(key, value):
    try:
        held = accepted(key, value)
    except ConfigError:
        return
    except SemiferError as exc:  # pragma: no cover - a failure message for the property
        pytest.fail(f"{key}={value!r}: {type(exc).__name__}: {exc}")
    numbers = held if isinstance(held, list | tuple) else [held]
    assert all(key_bounds(key).holds(n) for n in numbers if n is not None), f"{key}={value!r} accepted"


def test_init_from_a_damaged_checkpoint_is_refused(tmp_path):
    from semifer.models import FERNet, load_model_weights

    path = tmp_path / "last.pt"
    model = FERNet("small_cnn", 7)
    save_checkpoint({"model": model.state_dict(), "config": {}}, path)
    load_model_weights(FERNet("small_cnn", 7), path)  # intact: loads
    state = torch.load(path, weights_only=True)
    state["model"]["head.bias"] += 1  # changed after semifer wrote it, checksums kept
    torch.save(state, path)
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        load_model_weights(FERNet("small_cnn", 7), path)
