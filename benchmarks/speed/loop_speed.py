"""Whole training loop throughput (loader + step) for torch threads x loader workers, at CPU scale.

    python -m benchmarks.speed.loop_speed [--methods fixmatch adacm] [--threads 1 2] [--workers 0 1]

The step-speed table times a step on pre-built batches; a real run also decodes and augments its views, in
loader workers or in the main process, on the same cores. This runs `semifer train` (preset `fer2013_ssl`,
in-memory 48 px synthetic faces, so no dataset is needed) for 3 epochs of 40 steps per setting and reports
the median img/s of epochs 2-3 (the first includes worker start-up), next to the bare step's samples/s
from `step_speed.json` when it is there.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.common import command, header, load_json, machine, parser, save_json, write_section


def loop_rate(method: str, threads: int, workers: int, out_dir: Path) -> float:
    run = out_dir / f"{method}-t{threads}-w{workers}"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "semifer",
            "train",
            "-c",
            "fer2013_ssl",
            "data.train=synthetic:?n=4000",
            "data.test=synthetic:?split=test&n=200",
            "data.split=per_class:40",
            f"data.workers={workers}",
            "train.epochs=3",
            "train.iters_per_epoch=40",
            f"method.name={method}",
            f"out_dir={out_dir}",
            f"name={run.name}",
        ],
        env={**os.environ, "OMP_NUM_THREADS": str(threads)},
        check=True,
        capture_output=True,
    )
    history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return statistics.median(r["images_per_s"] for r in history[1:])


def main() -> None:
    cli = parser(__doc__)
    cli.add_argument("--methods", nargs="+", default=["fixmatch", "adacm"])
    cli.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    cli.add_argument("--workers", nargs="+", type=int, default=[0, 1])
    args = cli.parse_args()
    if args.report_only:
        write_section("loop_speed", table(load_json("loop_speed")))
        return
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for method in args.methods:
            for threads in args.threads:
                for workers in args.workers:
                    rate = loop_rate(method, threads, workers, Path(tmp))
                    rows.append({"method": method, "threads": threads, "workers": workers, "images_per_s": rate})
                    print(json.dumps(rows[-1]), flush=True)
    blob = {"command": command(), "machine": machine(), "rows": rows}
    save_json("loop_speed", blob)
    write_section("loop_speed", table(blob))


def table(blob: dict[str, Any]) -> str:
    steps = load_json("step_speed")["rows"]
    bare = {
        r["method"]: r["samples_per_s"]
        for r in steps
        if r["scale"] == "cpu"
        and r["toolkit"] == "semifer"
        and r["torch"] == blob["machine"]["torch"]
        and r.get("precision", "fp32") == "fp32"
        and not r.get("compile")
    }
    lines = [
        "### Training loop throughput (CPU scale)",
        "",
        f"`{blob['command']}`",
        header(blob["machine"]),
        "",
        "`semifer train -c fer2013_ssl` on in-memory 48 px synthetic faces, 3 x 40 steps of 64 + 64 images; "
        "median img/s of epochs 2-3 (labeled + unlabeled images, as the step table counts samples). "
        "threads = OMP_NUM_THREADS of the trainer; workers = loader processes per stream (0: augment in the "
        "training process). bare step = the step-speed table's samples/s for the same method (2 threads, "
        "pre-built batches).",
        "",
        "| method | threads | workers | loop img/s | bare step samples/s | loop / bare |",
        "|---|---|---|---|---|---|",
    ]
    for r in blob["rows"]:
        b = bare.get(r["method"])
        ratio = f"{r['images_per_s'] / b:.2f}" if b else "-"
        lines.append(
            f"| {r['method']} | {r['threads']} | {r['workers']} | {r['images_per_s']:.0f} | "
            f"{'-' if b is None else f'{b:.0f}'} | {ratio} |"
        )
    lines += ["", "Raw numbers: `benchmarks/out/loop_speed.json`."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
