"""Tiny synthetic training runs shared by the reliability tests (seconds on one CPU thread)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import semifer
from semifer.config import Config, load_config

TINY = [
    "data.train=synthetic:?n=140",
    "data.test=synthetic:?split=test&n=35",
    "data.split=per_class:3",
    "data.workers=0",
    "train.batch_size=8",
    "train.iters_per_epoch=3",
    "train.epochs=2",
    "train.eval_batch_size=64",
]
SRC = str(Path(semifer.__file__).resolve().parents[1])


def tiny_config(out_dir: Path, *extra: str) -> Config:
    return load_config("demo", [*TINY, f"out_dir={out_dir}", *extra])


def start_training_from(backbone: Path, out_dir: Path) -> str:
    """One supervised step on synthetic faces starting from a pretrained `backbone` file; what the run wrote
    about loading it (`pretrained_load.txt`)."""
    from semifer.engine.run import train

    run = train(
        load_config(
            "demo",
            [
                "data.train=synthetic:?n=140",
                "data.test=synthetic:?split=test&n=70",
                "data.split=per_class:2",
                "train.epochs=1",
                "train.iters_per_epoch=1",
                "train.batch_size=8",
                "data.workers=0",
                f"model.pretrained={backbone}",
                f"out_dir={out_dir}",
                "method.name=supervised",
            ],
        ),
        progress=False,
    )
    return (run.run_dir / "pretrained_load.txt").read_text()


def semifer_process(*args: str) -> subprocess.Popen:
    """`python -m semifer ARGS` on one thread, importing this checkout's semifer."""
    env = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "semifer", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
