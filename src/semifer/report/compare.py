"""`semifer compare`: several runs' per-epoch test accuracy and pseudo-label use in one figure."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import SemiferError
from .plots import plot_comparison


def read_history(run_dir: Path) -> list[dict[str, Any]]:
    """The per-epoch records of a run's metrics.jsonl."""
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        raise SemiferError(f"{path}: not found; give run directories written by `semifer train`")
    try:
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except json.JSONDecodeError as exc:
        raise SemiferError(f"{path}, line {exc.lineno}: not JSON ({exc.msg})") from None


def run_labels(runs: list[Path]) -> list[str]:
    """Each run's folder name, with its parent's name too when two runs share a folder name."""
    names = [r.resolve().name for r in runs]
    return [f"{r.resolve().parent.name}/{n}" if names.count(n) > 1 else n for r, n in zip(runs, names, strict=True)]


def compare_runs(runs: list[Path], out: Path, title: str = "") -> Path:
    histories = {label: read_history(run) for label, run in zip(run_labels(runs), runs, strict=True)}
    if not any("test" in r for h in histories.values() for r in h):
        raise SemiferError("none of these runs has a test evaluation in metrics.jsonl; nothing to compare")
    out.parent.mkdir(parents=True, exist_ok=True)
    return plot_comparison(histories, out, title)
