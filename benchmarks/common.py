"""What the benchmark scripts share: their command-line options, the FER2013 protocol's data, training a preset
(one or two stages) through the public API, timing, the machine description, and writing results (raw JSON
under benchmarks/out/, a section of BENCHMARKS.md between `<!-- begin NAME -->` and `<!-- end NAME -->`).

Importing this module needs neither torch nor semifer (the peer scripts run it in venvs that lack them).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import resource
import shlex
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from semifer.engine.run import RunResult

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "out"
PRETRAINED = ROOT / "benchmarks" / "pretrained"


def data_root() -> Path:
    return Path(os.environ.get("SEMIFER_DATA", ROOT.parent / "shared" / "data"))


def fer2013_spec(split: str) -> str:
    """The dataset spec of one FER2013 split (`Training`, `PublicTest`) of the copy under `data_root()`."""
    return f"fer2013:{data_root() / 'fer2013' / 'fer2013.csv.gz'}?split={split}"


def fer2013_split_file(labels: int, seed: int) -> Path:
    """The FER2013 SSL protocol's split file of one seed: `labels` Training faces labeled by the Ada-CM protocol,
    drawn once (on first use) and read back by every row, peer and probe that names the seed."""
    return fer2013_split(f"adacm:{labels}", seed, f"fer2013_adacm{labels}_seed{seed}")


def fer2013_split(protocol: str, seed: int, name: str, include_labeled: bool = False) -> Path:
    """`benchmarks/out/splits/NAME.json`: FER2013 Training split by `protocol` (`semifer.data.splits`) for
    `seed`, drawn once on first use and read back after; `include_labeled` keeps the labeled faces unlabeled too."""
    path = OUT / "splits" / f"{name}.json"
    if not path.exists():
        from semifer.data.registry import load_dataset
        from semifer.data.splits import make_split

        split = make_split(load_dataset(fer2013_spec("Training")), protocol, seed, include_labeled=include_labeled)
        split.dataset = "fer2013 Training"
        split.save(path)
    return path


def parser(doc: str | None, report_only: bool = True) -> argparse.ArgumentParser:
    """A benchmark's argument parser, its docstring as the help; `--report-only` rewrites its BENCHMARKS.md
    section from the saved JSON without measuring anything."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    if report_only:
        parser.add_argument("--report-only", action="store_true", help="rewrite BENCHMARKS.md from the saved JSON")
    return parser


def add_budget(parser: argparse.ArgumentParser, epochs: int, iters: int) -> None:
    """`--epochs` x `--iters`: a training row's budget."""
    parser.add_argument("--epochs", type=int, default=epochs)
    parser.add_argument("--iters", type=int, default=iters, help="iterations per epoch")


def add_seeds(parser: argparse.ArgumentParser, default: list[int]) -> None:
    parser.add_argument("--seeds", nargs="+", type=int, default=default)


def add_start(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--start",
        metavar="NAME=BACKBONE",
        help="start every run from a pretrained backbone file; rows record start=NAME (default: scratch)",
    )


def named_start(spec: str | None) -> tuple[str, str | None]:
    """`--start NAME=FILE` as (NAME, FILE); no start is ("scratch", None)."""
    if not spec:
        return "scratch", None
    name, _, path = spec.partition("=")
    return name, path


def cpu_name() -> str:
    """The CPU model as /proc/cpuinfo names it (torch-free, so peer scripts in other venvs can use it)."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    return cpu


def machine() -> dict[str, Any]:
    import torch

    from semifer.runtime.precision import cpu_has_native_bf16

    cpu = cpu_name()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "cpu_native_bf16": cpu_has_native_bf16(),
        "torch_threads": torch.get_num_threads(),
        "gpu": gpu,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "commit": commit.strip(),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def command(interpreter: str = "python") -> str:
    """This process's command line as a user would retype it from the repository root (with OMP_NUM_THREADS
    when set): `python -m benchmarks.<group>.<name> ...`; a script run from another venv names that venv's
    interpreter."""
    threads = f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']} " if "OMP_NUM_THREADS" in os.environ else ""
    spec = getattr(sys.modules["__main__"], "__spec__", None)
    script = ["-m", spec.name] if spec is not None else [os.path.relpath(sys.argv[0], ROOT)]
    return threads + shlex.join([interpreter, *script, *sys.argv[1:]])


def module_command(module: str, python: str = sys.executable) -> list[str]:
    """The argv that runs benchmark module `module` (e.g. `benchmarks.speed.step_speed`) as a child process;
    run it with `cwd=ROOT` so that `benchmarks` is importable."""
    return [python, "-m", module]


def timings(fn: Callable[[], Any], repeats: int) -> tuple[float, float]:
    """(median, best) seconds of `repeats` calls after one warm-up: on a shared machine the best call is
    the closest to what the code does alone, the median to what a user of the shared machine gets."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times)


# A row named `METHOD+distill` is METHOD's row followed by a student: a fresh network from the row's start that
# learns the finished row's mirror-averaged answers on labeled and unlabeled faces alike (self-training with
# soft targets, `distill` with `unlabeled_weight`), for as many steps again.
STUDENT = "distill"
STUDENT_SUFFIX = "+distill"
STUDENT_RECIPE = ("method.name=distill", "method.unlabeled_weight=1", "method.teacher_flip_average=true")


def stages(row: str, epochs: int, stage1_epochs: int | None = None) -> list[tuple[str, int]]:
    """(method, epochs) of each training stage of a row. Bridging the Gaps is two: stage 1 (labels only),
    then stage 2 (EMA-teacher FixMatch) continuing its whole network, together as many steps as every other
    row. Stage 1 takes the first half of the budget unless `stage1_epochs` says otherwise (the paper's
    100 + 50 epochs give it two thirds). A `+distill` row adds the student stage (`STUDENT`) of `epochs` more."""
    if row == "bridging":
        first = epochs // 2 if stage1_epochs is None else stage1_epochs
        if not 0 < first < epochs:
            raise ValueError(f"stage 1 needs between 1 and {epochs - 1} of the {epochs} epochs, not {first}")
        return [("bridging_stage1", first), ("bridging_stage2", epochs - first)]
    if row.endswith(STUDENT_SUFFIX):
        return [*stages(row.removesuffix(STUDENT_SUFFIX), epochs, stage1_epochs), (STUDENT, epochs)]
    return [(row, epochs)]


def load_json(name: str, default: dict[str, Any] | None = None) -> dict[str, Any]:
    """`benchmarks/out/NAME.json`, or `default` (no rows) when it is not there yet."""
    path = OUT / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else dict(default or {"rows": []})


def save_json(name: str, blob: dict[str, Any]) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}.json"
    path.write_text(json.dumps(blob, indent=1))
    return path


def upsert_rows(
    name: str,
    rows: list[dict[str, Any]],
    key: Callable[[dict[str, Any]], Any],
    default: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Add `rows` to `benchmarks/out/NAME.json` (`default` when it is not there yet), replacing saved rows with
    the same `key`. The file is re-read first, so processes started side by side all land their rows; returns
    the saved blob."""
    blob = load_json(name, default)
    new = {key(row) for row in rows}
    blob["rows"] = [r for r in blob["rows"] if key(r) not in new] + rows
    save_json(name, blob)
    return blob


def write_section(name: str, markdown: str) -> None:
    """Replace (or append) the section between `<!-- begin NAME -->` and `<!-- end NAME -->`."""
    path = ROOT / "BENCHMARKS.md"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    block = f"<!-- begin {name} -->\n{markdown.rstrip()}\n<!-- end {name} -->"
    pattern = re.compile(rf"<!-- begin {re.escape(name)} -->.*?<!-- end {re.escape(name)} -->", re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)


def header(meta: dict[str, Any]) -> str:
    return (
        f"Machine: {meta['cpu']}, {meta['cores']} cores, GPU: {meta['gpu'] or 'none'}; "
        f"Python {meta['python']}, torch {meta['torch']}; commit {meta['commit']}; {meta['date']}."
    )


def rows_header(metas: list[dict[str, Any]]) -> str:
    """The newest row's header, and how many rows ran on each CPU when a table's rows span machines."""
    line = header(max(metas, key=lambda meta: meta["date"]))
    cpus = Counter(meta["cpu"] for meta in metas)
    if len(cpus) > 1:
        line += (
            " Rows per machine: "
            + ", ".join(f"{cpu} {n}" for cpu, n in cpus.items())
            + " (each row's JSON names its own)."
        )
    return line


def mean_sd(values: list[float]) -> str:
    """A table cell of seeds' results: `mean ± sd (n)` (no sd for one value), or `-` for none."""
    if not values:
        return "-"
    sd = f" ± {statistics.stdev(values):.2f}" if len(values) > 1 else ""
    return f"{statistics.mean(values):.2f}{sd} ({len(values)})"


def throughput(history: list[dict[str, Any]]) -> dict[str, float]:
    """Median images/s over epochs (robust to epochs slowed by other jobs) and the total training seconds."""
    rates = sorted(r["images_per_s"] for r in history)
    return {
        "images_per_s_median": rates[len(rates) // 2] if rates else 0.0,
        "train_seconds": sum(r["epoch_seconds"] for r in history),
    }


def peak_rss_mb() -> float:
    """This process's peak resident memory. Linux's VmHWM starts afresh at exec, while `ru_maxrss` keeps the
    high-water mark of the parent that forked the process (a benchmark driver holding data)."""
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def curve_history(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The per-epoch numbers the comparison figure plots, kept in metrics.jsonl form."""
    return [
        {
            "epoch": r["epoch"],
            "unlabeled/subset1_fraction": r.get("unlabeled/subset1_fraction"),
            **({"test": {"accuracy": r["test"]["accuracy"]}} if "test" in r else {}),
        }
        for r in history
    ]


def train_preset(preset: str, overrides: list[str], progress: bool = True) -> RunResult:
    """`semifer.train` of a preset with `KEY=VALUE` overrides, as `semifer train -c PRESET KEY=VALUE ...`."""
    import semifer
    from semifer.config import load_config

    return semifer.train(load_config(preset, overrides), progress=progress)


def split_protocol(train: str, test: str, split_file: str | Path, iters: int, seed: int, out_dir: str) -> list[str]:
    """The overrides that fix a table's protocol: data, split file, steps per epoch, seed and where runs go."""
    return [
        f"data.train={train}",
        f"data.test={test}",
        f"data.split_file={split_file}",
        f"train.iters_per_epoch={iters}",
        f"seed={seed}",
        f"out_dir={out_dir}",
    ]


def train_stages(
    preset: str,
    method: str,
    epochs: int,
    protocol: list[str],
    recipe: Callable[[str, bool], list[str]],
    name_of: Callable[[str], str],
    stage1_epochs: int | None = None,
) -> tuple[RunResult, list[str]]:
    """Train one row stage by stage (`stages`): every stage gets the `protocol` overrides (data, split, seed,
    iterations, out_dir) and `recipe(stage, first)`; a later stage continues the whole network of the one
    before, but for a student, which starts as the first did and learns from the one before (`STUDENT_RECIPE`).
    Returns the last stage's result and its recipe overrides; `name_of(stage)` names each run."""
    result: RunResult | None = None
    overrides: list[str] = []
    for stage, stage_epochs in stages(method, epochs, stage1_epochs):
        student = stage == STUDENT and result is not None
        overrides = recipe(stage, result is None or student)
        if student:
            overrides += [*STUDENT_RECIPE, f"method.teachers=[{result.run_dir}]"]
        elif result is not None:
            overrides.append(f"model.init_from={result.run_dir / 'checkpoints' / 'last.pt'}")
        result = train_preset(preset, [*protocol, f"train.epochs={stage_epochs}", f"name={name_of(stage)}", *overrides])
    assert result is not None  # `stages` gives at least one stage
    return result, overrides


def run_row(result: Any, started: float) -> dict[str, Any]:
    """The fields an SSL table row keeps of a finished `semifer.train` result started at `started`
    (a `time.perf_counter()` reading): final EMA metrics, throughput, pseudo-label use, per-epoch curve."""
    last = result.history[-1]
    accs = [r["test"]["accuracy"] for r in result.history if "test" in r]
    return {
        "minutes": (time.perf_counter() - started) / 60,
        "run_dir": str(result.run_dir),
        "accuracy": result.final.accuracy,
        "mean_class_accuracy": result.final.mean_class_accuracy,
        "macro_f1": result.final.macro_f1,
        "best_over_epochs_test_selected": max(accs),
        "per_class_accuracy": result.final.per_class_accuracy,
        **throughput(result.history),
        "subset1_fraction": last.get("unlabeled/subset1_fraction"),
        "pseudo_label_accuracy_subset1": last.get("unlabeled/pseudo_label_accuracy_subset1"),
        "thresholds": last.get("thresholds"),
        "history": curve_history(result.history),
    }
