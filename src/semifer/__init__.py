"""semifer: semi-supervised facial expression recognition (Ada-CM and its peers under one protocol).

`semifer.load(path)` opens a trained model (run, checkpoint or export) for prediction, `semifer.train(preset,
**overrides)` trains one and `semifer.evaluate(model, data_spec)` scores one; they are imported on first use so
`import semifer` stays cheap.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "evaluate", "load", "train"]

_API = frozenset({"evaluate", "load", "train"})


def __getattr__(name: str) -> Any:
    if name in _API:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'semifer' has no attribute {name!r}")
