"""The Python API `import semifer` exposes: `load` a trained model, `train` a run, `evaluate` a model.

    import semifer
    run = semifer.train("demo", train__epochs=2)          # dotted keys as `section__key` or {"train.epochs": 2}
    print(semifer.evaluate(run.run_dir, "synthetic:?split=test&n=700").summary())
    model = semifer.load(run.run_dir)
    print(model.predict(["face.png"])[0].label)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .config import Config, load_config
from .data.faceset import FaceSet
from .engine.evaluate import Metrics
from .engine.evaluate import evaluate as evaluate_faces
from .engine.run import RunResult, load_faces
from .engine.run import train as train_run
from .inference.loading import load, open_torch_model

__all__ = ["evaluate", "load", "train"]


def train(config_or_preset: str | Path | Config | dict[str, Any] = "demo", resume: bool = False,
          run_dir: str | Path | None = None, progress: bool = True, **overrides: Any) -> RunResult:
    """Train a preset name, YAML file, Config or mapping; keyword overrides use `__` for the dot
    (`train__epochs=2` is `train.epochs=2`). Returns the run directory, final metrics and history."""
    base = config_or_preset.to_dict() if isinstance(config_or_preset, Config) else config_or_preset
    cfg = load_config(str(base) if isinstance(base, Path) else base,
                      values={k.replace("__", "."): v for k, v in overrides.items()})
    return train_run(cfg, resume=resume, progress=progress, run_dir=Path(run_dir) if run_dir else None)


def evaluate_with_faces(model: str | Path, data: str, use_ema: bool = True, batch_size: int = 256,
                        device: str = "auto", progress: bool = True) -> tuple[Metrics, FaceSet]:
    """Metrics of the model at `model` (run, checkpoint or safetensors export) on the dataset spec `data`,
    and the parsed faces (for their drop counts)."""
    net, info = open_torch_model(model, use_ema=use_ema, device=device)
    faces = load_faces(data)
    device_of = next(net.parameters()).device
    metrics = evaluate_faces(net, faces, info.img_size, device_of, batch_size=batch_size, bgr_quirk=info.bgr_quirk,
                             progress=progress)
    return metrics, faces


def evaluate(model: str | Path, data: str, use_ema: bool = True, batch_size: int = 256, device: str = "auto",
             progress: bool = True) -> Metrics:
    """Accuracy, mean per-class accuracy, macro-F1, per-class accuracy and confusion matrix on `data`."""
    return evaluate_with_faces(model, data, use_ema, batch_size, device, progress)[0]
