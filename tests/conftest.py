"""Shared test settings: small thread counts so the suite behaves the same on 2 cores."""

import os

import pytest
import torch

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture
def one_thread():
    """Float sums depend on the thread count: runs compared bit for bit (pinned numbers, a killed one-thread
    subprocess) run on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def real_data() -> str:
    """Path of the real data folder (SEMIFER_DATA); tests that need it are skipped without it."""
    root = os.environ.get("SEMIFER_DATA")
    if not root or not os.path.isdir(root):
        pytest.skip("SEMIFER_DATA is not set to the real data folder")
    return root


TINY_RUN = [
    "data.train=synthetic:?n=280",
    "data.test=synthetic:?split=test&n=70",
    "data.split=per_class:20",
    "data.img_size=48",
    "data.workers=0",
    "train.batch_size=16",
    "train.iters_per_epoch=15",
    "train.epochs=1",
    "train.ema=0.9",
]


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A small_cnn trained for a few steps on synthetic faces: the model predict/export/API tests load."""
    from semifer.cli import main

    out = tmp_path_factory.mktemp("tiny_run")
    assert main(["train", "-c", "demo", *TINY_RUN, f"out_dir={out}", "name=tiny"]) == 0
    return out / "tiny"
