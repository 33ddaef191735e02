"""`semifer pretrain`'s entry: the pretraining named by `pretrain.method` (masked reconstruction or SimCLR)."""

from __future__ import annotations

from pathlib import Path

from ..config import Config
from ..errors import ConfigError
from .mae import Pretrainer, PretrainResult
from .mae import pretrain as run_pretraining
from .simclr import SimCLRPretrainer

PRETRAININGS: dict[str, type[Pretrainer]] = {"mae": Pretrainer, "simclr": SimCLRPretrainer}


def pretrain(
    cfg: Config, resume: bool = False, progress: bool = True, run_dir: Path | None = None, overwrite: bool = False
) -> PretrainResult:
    """Run the pretraining `cfg.pretrain['method']` names (default `mae`); returns where the backbone is."""
    method = cfg.pretrain.get("method", "mae")
    if method not in PRETRAININGS:
        raise ConfigError(f"unknown pretrain.method {method!r}; use one of {', '.join(PRETRAININGS)}")
    return run_pretraining(cfg, resume, progress, run_dir, kind=PRETRAININGS[method], overwrite=overwrite)
