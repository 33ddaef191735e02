"""Optional TensorBoard copy of the per-epoch scalars in metrics.jsonl (`log.tensorboard=true`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import ConfigError


def scalars(record: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, float]]:
    """Every number in a metrics.jsonl record, nested keys joined by '/' (`test/accuracy`,
    `thresholds/fear`); lists such as the confusion matrix are left to the JSON log."""
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            yield from scalars(value, f"{name}/")
        elif isinstance(value, int | float) and not isinstance(value, bool) and key not in ("epoch", "step"):
            yield name, float(value)


class TensorBoardLog:
    """Writes each epoch's scalars under `log_dir` at step = epoch."""

    def __init__(self, log_dir: Path):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ConfigError(
                "log.tensorboard=true needs the tensorboard package: pip install 'semifer[tensorboard]' "
                "(or leave log.tensorboard=false; metrics.jsonl has the same numbers)"
            ) from None
        self.writer = SummaryWriter(str(log_dir))

    def log(self, record: dict[str, Any]) -> None:
        for name, value in scalars(record):
            self.writer.add_scalar(name, value, record["epoch"])
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
