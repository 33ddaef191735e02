"""A run directory that one training owns at a time and that is never overwritten by accident.

A run takes an exclusive lock (`flock` on `RUN/.lock`, released by the kernel even on kill -9) for as long
as it writes. An existing run is reused only to `--resume` it, with the configuration it started with, or
is cleared first with an explicit `--overwrite`. Temp files of checkpoint writes a killed process left
behind are removed when the run starts again.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from ..config import Config
from ..errors import ConfigError
from ..runtime.checkpoint import remove_partial_writes

LOCK_NAME = ".lock"
RUN_MARKER = "config.yaml"
# Keys that change how a run is executed or where it is written, not what it computes; and train.epochs, so a
# finished run can be extended (its remaining steps follow the schedule of the new length).
RESUME_FREE_KEYS = frozenset(
    {"name", "out_dir", "data.workers", "train.device", "train.eval_batch_size", "train.epochs"}
)
# A key the run's config.yaml lacks was added to semifer after the run started and has its default; only the
# free-form sections list just what was set, so there a key missing on one side is a difference.
FREE_FORM_SECTIONS = ("method.", "pretrain.")
_MISSING = object()

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; runs are still protected from reuse by the checks
    fcntl = None  # type: ignore[assignment]


def make_run_dir(cfg: Config, resume: bool) -> Path:
    """`out_dir/name`, or `name-2`, `name-3`... when that exists and this is not a resume."""
    base = Path(cfg.out_dir) / cfg.name
    if resume or not base.exists():
        return base
    n = 2
    while (base.parent / f"{base.name}-{n}").exists():
        n += 1
    return base.parent / f"{base.name}-{n}"


@contextmanager
def claim_run_dir(run_dir: Path, resume: bool = False, overwrite: bool = False, owner: bool = True) -> Iterator[Path]:
    """Hold `run_dir` for one run: locked, checked for resume/overwrite, cleared of partial writes.

    `owner=False` (the non-zero ranks of a distributed run) skips everything; rank 0 owns the directory.
    """
    if not owner:
        yield run_dir
        return
    if resume and overwrite:
        raise ConfigError("--resume and --overwrite contradict each other; give one")
    is_run = (run_dir / RUN_MARKER).is_file()
    if resume and not is_run:
        raise ConfigError(f"{run_dir}: no run to resume here (no {RUN_MARKER}); drop --resume to start a new run")
    if not resume and _has_content(run_dir):
        if not overwrite:
            raise ConfigError(
                f"{run_dir} already holds a run; continue it with --resume, start it over with "
                "--overwrite, or choose another --run-dir"
            )
        if not is_run:
            raise ConfigError(
                f"{run_dir} is not a semifer run directory (no {RUN_MARKER}); --overwrite will not "
                "delete it: choose another --run-dir"
            )
    run_dir.mkdir(parents=True, exist_ok=True)
    with _lock(run_dir):
        if overwrite:
            _clear(run_dir)
        remove_partial_writes(run_dir)
        yield run_dir


def _has_content(run_dir: Path) -> bool:
    return run_dir.is_dir() and any(p.name != LOCK_NAME for p in run_dir.iterdir())


def _clear(run_dir: Path) -> None:
    for entry in run_dir.iterdir():
        if entry.name == LOCK_NAME:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


@contextmanager
def _lock(run_dir: Path) -> Iterator[None]:
    path = run_dir / LOCK_NAME
    fh = path.open("a+")
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.seek(0)
                holder = fh.read().strip() or "unknown"
                raise ConfigError(
                    f"{run_dir} is in use by another training (pid {holder}); wait for it to "
                    "end or choose another --run-dir"
                ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"{os.getpid()}\n")
        fh.flush()
        try:
            yield
        finally:
            path.unlink(missing_ok=True)
    finally:
        fh.close()


def flatten(blob: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'train': {'lr': 0.1}} -> {'train.lr': 0.1}."""
    out: dict[str, Any] = {}
    for key, value in blob.items():
        if isinstance(value, dict) and value:
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def check_resume_config(run_dir: Path, config: dict[str, Any]) -> None:
    """Refuse to resume with a configuration other than the run's, naming every key that differs."""
    saved = flatten(yaml.safe_load((run_dir / RUN_MARKER).read_text()) or {})
    now = flatten(config)
    differ = sorted(
        k
        for k in set(saved) | set(now)
        if k not in RESUME_FREE_KEYS
        and (k in saved or k.startswith(FREE_FORM_SECTIONS))
        and saved.get(k, _MISSING) != now.get(k, _MISSING)
    )
    if differ:
        shown = "; ".join(f"{k} (run: {_show(saved, k)}, now: {_show(now, k)})" for k in differ[:6])
        more = f"; and {len(differ) - 6} more" if len(differ) > 6 else ""
        raise ConfigError(
            f"{run_dir}: cannot resume with a different configuration: {shown}{more}. Resume with "
            f"the run's own settings ({run_dir / RUN_MARKER}) or start a new run"
        )


def _show(values: dict[str, Any], key: str) -> str:
    return "unset" if key not in values else repr(values[key])


def rewrite_metrics(run_dir: Path, history: list[dict[str, Any]]) -> None:
    """metrics.jsonl as the checkpoint's history: drops an epoch logged but not checkpointed before a kill,
    which the resumed run trains and logs again."""
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(record) + "\n" for record in history))
