"""Model files load only tensors and plain data, never run code, and a
corrupt, truncated, empty or half-written file is an error that says so."""

from __future__ import annotations

import errno
import shutil

import numpy as np
import pytest
import torch

from semifer.cli import main
from semifer.engine.run import train
from semifer.errors import CheckpointError
from semifer.models import read_state_dict
from semifer.runtime.checkpoint import PARTIAL_SUFFIX, load_checkpoint, save_checkpoint
from tiny_runs import tiny_config

EVAL_DATA = "synthetic:?split=test&n=14"


class RunsCode:
    """Unpickling this calls open(path, 'w'): a stand-in for any code a doctored file could run."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, "w")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    return train(tiny_config(out, "name=tiny"), progress=False).run_dir


def test_own_checkpoints_hold_only_tensors_and_plain_data(trained):
    state = torch.load(trained / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)
    assert isinstance(state["rng"]["numpy"]["keys"], list) and isinstance(state["rng"]["python"], list)
    assert state["step"] == 6


def test_a_checkpoint_that_would_run_code_is_refused_by_eval_resume_and_pretrained(trained, tmp_path, capsys):
    marker = tmp_path / "code-ran"
    evil_run = tmp_path / "evil"
    shutil.copytree(trained, evil_run)
    state = torch.load(trained / "checkpoints" / "last.pt", weights_only=True)
    torch.save({**state, "extra": RunsCode(marker)}, evil_run / "checkpoints" / "last.pt")

    assert main(["eval", str(evil_run), "--data", EVAL_DATA]) == 2
    err = capsys.readouterr().err
    assert "refused" in err and "pickled Python code" in err and "Traceback" not in err
    with pytest.raises(CheckpointError, match="pickled Python code"):
        train(tiny_config(tmp_path, "name=tiny"), resume=True, progress=False, run_dir=evil_run)
    with pytest.raises(CheckpointError, match="pretrained weights file"):
        read_state_dict(evil_run / "checkpoints" / "last.pt")
    with pytest.raises(CheckpointError, match="pickled Python code"):
        train(tiny_config(tmp_path, f"model.pretrained={evil_run / 'checkpoints' / 'last.pt'}"), progress=False)
    assert not marker.exists()


def test_checkpoints_written_before_plain_rng_states_still_resume(trained, tmp_path):
    """Their numpy RNG state is a tuple holding an array: allowed as data, and restored."""
    old_run = tmp_path / "old"
    shutil.copytree(trained, old_run)
    state = torch.load(trained / "checkpoints" / "last.pt", weights_only=True)
    np.random.seed(123)
    legacy = np.random.get_state()
    state["rng"]["numpy"] = legacy
    torch.save(state, old_run / "checkpoints" / "last.pt")
    train(tiny_config(tmp_path, "name=tiny", "train.epochs=3"), resume=True, progress=False, run_dir=old_run)
    assert np.array_equal(np.random.get_state()[1], legacy[1])  # restored from the tuple (training draws none)
    assert load_checkpoint(old_run)["step"] == 9


@pytest.mark.parametrize(
    ("damage", "needle"),
    [
        (lambda data: data[: len(data) // 2], "truncated or corrupt"),
        (lambda data: b"", "empty"),
        (lambda data: b"not a checkpoint at all" * 4, "corrupt"),
    ],
)
def test_damaged_checkpoints_say_what_is_wrong(trained, tmp_path, capsys, damage, needle):
    path = tmp_path / "last.pt"
    path.write_bytes(damage((trained / "checkpoints" / "last.pt").read_bytes()))
    with pytest.raises(CheckpointError, match=needle):
        load_checkpoint(path)
    assert main(["eval", str(path), "--data", EVAL_DATA]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


def test_damaged_safetensors_backbone_is_a_clear_error(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "backbone.safetensors"
    save_file({"w": torch.zeros(64)}, str(path))
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        read_state_dict(path)


def test_a_full_disk_is_reported_and_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    path = tmp_path / "checkpoints" / "last.pt"
    save_checkpoint({"model": {"w": torch.ones(3)}, "config": {}}, path)
    before = path.read_bytes()

    def no_space(obj, fh):
        fh.write(b"partial bytes")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", no_space)
    with pytest.raises(CheckpointError, match="disk full"):
        save_checkpoint({"model": {"w": torch.zeros(3)}, "config": {}}, path)
    assert path.read_bytes() == before
    assert not list(path.parent.glob(f"*{PARTIAL_SUFFIX}"))
