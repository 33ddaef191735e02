"""semifer: semi-supervised facial expression recognition (Ada-CM and its peers under one protocol).

`semifer.load()` opens the built-in expression classifier (or a trained model: run, checkpoint, export) for
prediction, `semifer.fit(labeled_dir, unlabeled_dir)` trains one on your own faces, `semifer.train(preset,
**overrides)` runs any preset and `semifer.evaluate(model, data_spec)` scores a model; they are imported on
first use so `import semifer` stays cheap.
"""

from __future__ import annotations

from typing import Any

from .version import __version__

__all__ = ["__version__", "evaluate", "fit", "load", "train"]

_API = frozenset({"evaluate", "fit", "load", "train"})


def __getattr__(name: str) -> Any:
    if name in _API:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'semifer' has no attribute {name!r}")
