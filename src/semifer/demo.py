"""`semifer demo`: few labels on the embedded synthetic faces, each method trained the same way."""

from __future__ import annotations

from pathlib import Path

from .config import load_config
from .engine.run import train
from .methods import method_class

DEFAULT_METHODS = ("supervised", "adacm")


def run_demo(out_dir: str = "runs/demo", quick: bool = False, methods: list[str] | None = None) -> dict[str, float]:
    """Train each method on the `demo` preset and print its test accuracy; returns {method: accuracy}."""
    results: dict[str, float] = {}
    for name in methods or DEFAULT_METHODS:
        overrides = [f"method.name={name}", f"out_dir={out_dir}", f"name={name}",
                     *method_class(name).cpu_scale_training]
        if quick:
            overrides += ["train.epochs=2", "train.iters_per_epoch=10", "data.train=synthetic:?n=700",
                          "data.test=synthetic:?split=test&n=210", "data.workers=0"]
        cfg = load_config("demo", overrides)
        print(f"\n== {name}: {cfg.data.split} labels of {cfg.data.train}, "
              f"{cfg.train.epochs}x{cfg.train.iters_per_epoch} iterations ==")
        result = train(cfg, run_dir=Path(out_dir) / name, overwrite=True)  # the demo's own folders
        if result.final is not None:
            results[name] = result.final.accuracy
    print("\nsemifer demo: test accuracy on synthetic faces")
    for name, acc in results.items():
        print(f"  {name:<12} {100 * acc:.2f}%")
    return results
