"""`data.val`: a held-out labeled set, evaluated every epoch, that alone chooses `checkpoints/best.pt`."""

import json

import numpy as np
import torch

import semifer.engine.trainer as trainer_module
from semifer.config import load_config
from semifer.engine.evaluate import compute_metrics
from semifer.engine.run import train

TINY = [
    "data.train=synthetic:?n=280",
    "data.test=synthetic:?split=test&n=70",
    "data.split=per_class:4",
    "data.workers=0",
    "train.batch_size=8",
    "train.iters_per_epoch=2",
    "train.eval_batch_size=64",
]


def test_validation_run_saves_the_split_and_evaluates_every_epoch(tmp_path):
    cfg = load_config("demo", [*TINY, f"out_dir={tmp_path}", "train.epochs=2", "data.val=per_class:3"])
    result = train(cfg, progress=False)
    split = json.loads((result.run_dir / "split.json").read_text())
    val = set(split["validation"])
    assert len(val) == 21 and not val & set(split["labeled"]) and not val & set(split["unlabeled"])
    assert all(r["val"]["n"] == 21 for r in result.history)
    assert result.trainer is not None and len(result.trainer.data.val) == 21
    assert (result.run_dir / "checkpoints" / "best.pt").is_file()


def test_best_checkpoint_is_chosen_on_validation_not_test(tmp_path, monkeypatch):
    """Scripted accuracies whose best epochs differ: validation peaks at epoch 2, test at epoch 1."""
    script = {"test": iter([0.9, 0.1, 0.5]), "val": iter([0.2, 0.6, 0.6])}  # a tie keeps the earlier epoch

    def scripted(model, faces, *args, **kwargs):
        acc = next(script["val" if faces.name.endswith("-val") else "test"])
        right = round(acc * 10)
        return compute_metrics(np.zeros(10, int), np.array([0] * right + [1] * (10 - right)), 7)

    monkeypatch.setattr(trainer_module, "evaluate", scripted)
    cfg = load_config("demo", [*TINY, f"out_dir={tmp_path}", "train.epochs=3", "data.val=per_class:2"])
    result = train(cfg, progress=False)
    final = json.loads((result.run_dir / "final.json").read_text())
    assert final["best_on_validation"]["epoch"] == 2
    assert final["best_on_validation"]["val_accuracy"] == 0.6
    assert final["best_on_validation"]["test"]["accuracy"] == 0.1
    assert final["final"]["accuracy"] == 0.5
    best = torch.load(result.run_dir / "checkpoints" / "best.pt", weights_only=False)
    assert best["step"] == 2 * cfg.train.iters_per_epoch and len(best["history"]) == 2
