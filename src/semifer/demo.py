"""`semifer demo`: few labels on the embedded synthetic faces, each method on the same labels, network,
optimiser and budget, ending with a table of each method's gain over supervised training."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from .config import load_config
from .engine.run import train
from .methods import plain_head

DEFAULT_METHODS = ("supervised", "fixmatch")
QUICK = (
    "train.epochs=2",
    "train.iters_per_epoch=10",
    "data.train=synthetic:?n=700&size=32",
    "data.test=synthetic:?split=test&n=210&size=32",
    "data.workers=0",
)


@dataclass
class DemoRow:
    method: str
    accuracy: float
    minutes: float


def run_demo(
    out_dir: str = "runs/demo", quick: bool = False, methods: list[str] | None = None, overrides: tuple[str, ...] = ()
) -> list[DemoRow]:
    """Train each method on the `demo` preset, print the comparison table; returns its rows.

    Every method gets the preset's plain head and SGD recipe (`plain_head`): the table compares what the
    unlabeled faces add, not heads or optimisers. `overrides` apply to every method (e.g. `seed=1`).
    """
    rows: list[DemoRow] = []
    for name in methods or DEFAULT_METHODS:
        cfg = load_config(
            "demo",
            [
                f"method.name={name}",
                f"out_dir={out_dir}",
                f"name={name}",
                *plain_head(name),
                *(QUICK if quick else ()),
                *overrides,
            ],
        )
        print(
            f"\n== {name}: {cfg.data.split} labels of {cfg.data.train}, "
            f"{cfg.train.epochs}x{cfg.train.iters_per_epoch} iterations =="
        )
        started = time.perf_counter()
        result = train(cfg, run_dir=Path(out_dir) / name, overwrite=True)  # the demo's own folders
        if result.final is not None:
            rows.append(DemoRow(name, result.final.accuracy, (time.perf_counter() - started) / 60))
    print(demo_table(rows))
    return rows


def demo_table(rows: list[DemoRow]) -> str:
    """The closing table: test accuracy, gain over supervised in points, and minutes per method."""
    base = next((r.accuracy for r in rows if r.method == "supervised"), None)
    lines = [
        "",
        "semifer demo: test accuracy on synthetic faces (same labels, network and budget for each)",
        f"  {'method':<12} {'accuracy':>9} {'gain over supervised':>21} {'minutes':>8}",
    ]
    for r in rows:
        gain = "-" if base is None or r.method == "supervised" else f"{100 * (r.accuracy - base):+.2f} points"
        lines.append(f"  {r.method:<12} {100 * r.accuracy:>8.2f}% {gain:>21} {r.minutes:>8.1f}")
    return "\n".join(lines)
