"""Run by torchrun in tests: trains a tiny config and saves this rank's margins and weights."""

import sys
from pathlib import Path

import torch

from semifer.config import load_config
from semifer.engine.run import train

out = Path(sys.argv[1])
cfg = load_config("demo", sys.argv[2:])
result = train(cfg, progress=False, run_dir=out / "run")
trainer = result.trainer
rank = trainer.rank
policy = getattr(trainer.method, "policy", None)
torch.save(
    {
        "world": trainer.world,
        "thresholds": None if policy is None else policy.thresholds.cpu(),
        "model": {k: v.cpu() for k, v in trainer.model.state_dict().items()},
        "history": result.history,
    },
    out / f"rank{rank}.pt",
)
