"""The pretraining objectives by name (`pretrain.method`): masked face reconstruction, SimCLR or BYOL."""

from __future__ import annotations

from ..config import Config
from ..errors import ConfigError
from .base import PretrainObjective
from .byol import BYOLObjective
from .mae import MAEObjective
from .simclr import SimCLRObjective

PRETRAININGS: dict[str, type[PretrainObjective]] = {
    "mae": MAEObjective,
    "simclr": SimCLRObjective,
    "byol": BYOLObjective,
}


def objective_class(cfg: Config) -> type[PretrainObjective]:
    """The objective `cfg.pretrain['method']` names (default `mae`)."""
    method = cfg.pretrain.get("method", "mae")
    if method not in PRETRAININGS:
        raise ConfigError(f"unknown pretrain.method {method!r}; use one of {', '.join(PRETRAININGS)}")
    return PRETRAININGS[method]
