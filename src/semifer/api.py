"""The Python API `import semifer` exposes: `load` a model, `train` a run, `fit` your own faces, `evaluate`.

import semifer
model = semifer.load()                                # the built-in expression classifier
print(model.predict(["face.png"])[0].label)
run = semifer.fit("my_faces/labeled", "my_faces/unlabeled")   # your own faces, few labels
run = semifer.train("demo", train__epochs=2)          # dotted keys as `section__key` or {"train.epochs": 2}
print(semifer.evaluate(run.run_dir, "synthetic:?split=test&n=700").summary())
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
from .errors import SemiferError
from .inference.loading import load
from .models import answering, load_model
from .runtime.precision import answer_dtype, autocast

__all__ = ["evaluate", "fit", "load", "train"]

FIT_STAGES = ("bridging_stage1", "bridging_stage2")


def train(
    config_or_preset: str | Path | Config | dict[str, Any] = "demo",
    resume: bool = False,
    run_dir: str | Path | None = None,
    progress: bool = True,
    **overrides: Any,
) -> RunResult:
    """Train a preset name, YAML file, Config or mapping; keyword overrides use `__` for the dot
    (`train__epochs=2` is `train.epochs=2`). Returns the run directory, final metrics and history."""
    base = config_or_preset.to_dict() if isinstance(config_or_preset, Config) else config_or_preset
    cfg = load_config(
        str(base) if isinstance(base, Path) else base, values={k.replace("__", "."): v for k, v in overrides.items()}
    )
    return train_run(cfg, resume=resume, progress=progress, run_dir=Path(run_dir) if run_dir else None)


def fit(
    labeled: str | Path,
    unlabeled: str | Path | None = None,
    out_dir: str | Path = "runs",
    name: str = "my-faces",
    overrides: list[str] | tuple[str, ...] = (),
    progress: bool = True,
) -> RunResult:
    """Train an expression model on your own faces: a class-folder tree of labeled faces (`happy/...`,
    `sad/...`) plus, optionally, a folder of unlabeled faces. The best method measured at few labels runs from
    the built-in face representation: Bridging the Gaps stage 1 (the labeled faces with face-aware mixup),
    then stage 2 (FixMatch with an EMA teacher on the unlabeled faces) continuing stage 1's network. A tenth
    of the labeled faces is held out as the validation set that picks `checkpoints/best.pt`. Returns the last
    stage's run, which `semifer predict` / `semifer export` take; `overrides` apply to both stages."""
    labeled_dir, runs = Path(labeled).resolve(), Path(out_dir)
    data = {"data.train": f"folder:{labeled_dir}", "data.test": None}
    stage1 = load_config(
        FIT_STAGES[0],
        ["data.split=fraction:0.9", "data.val=fraction:1.0", *overrides],
        values={**data, "out_dir": str(runs), "name": f"{name}-stage1"},
    )
    result = train_run(stage1, progress=progress)
    if unlabeled is None:
        return result
    stage2 = load_config(
        FIT_STAGES[1],
        list(overrides),
        values={
            **data,
            "data.split_file": str(result.run_dir / "split.json"),
            "data.extra_unlabeled": [f"unlabeled:{Path(unlabeled).resolve()}"],
            "model.pretrained": None,
            "model.init_from": str(result.run_dir / "checkpoints" / "last.pt"),
            "out_dir": str(runs),
            "name": name,
        },
    )
    return train_run(stage2, progress=progress)


def evaluate_with_faces(
    model: str | Path,
    data: str,
    use_ema: bool = True,
    batch_size: int = 256,
    device: str = "auto",
    progress: bool = True,
) -> tuple[Metrics, FaceSet]:
    """Metrics of the model at `model` (run, checkpoint or safetensors export) on the dataset spec `data`,
    and the parsed faces (for their drop counts). A damaged or mismatched model is one SemiferError naming the
    file, raised before the dataset is read."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise SemiferError(f"batch_size must be a whole number of 1 or more, got {batch_size!r}")
    net, info = load_model(model, use_ema=use_ema, device=device)
    net = answering(net, info.flip_average)
    faces = load_faces(data)
    device_of = next(net.parameters()).device
    with autocast(device_of, answer_dtype(device_of, info.precision)):  # as `semifer predict` answers
        metrics = evaluate_faces(
            net, faces, info.img_size, device_of, batch_size=batch_size, bgr_quirk=info.bgr_quirk, progress=progress
        )
    return metrics, faces


def evaluate(
    model: str | Path,
    data: str,
    use_ema: bool = True,
    batch_size: int = 256,
    device: str = "auto",
    progress: bool = True,
) -> Metrics:
    """Accuracy, mean per-class accuracy, macro-F1, per-class accuracy and confusion matrix on `data`."""
    return evaluate_with_faces(model, data, use_ema, batch_size, device, progress)[0]
