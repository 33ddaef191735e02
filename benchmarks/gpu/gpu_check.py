"""The GPU check's Ada-CM run: ResNet-18 at 224 px on FER2013 (400 labels, the split of the CPU tables),
the authors' recipe (preset `adacm_rafdb_4000`: Adam 5e-4, dropout 0.5, unit feature, EMA 0.999 with the
0.02*lr weight shrink) for the paper's 20 x 800 steps of 16 + 16, or fewer iterations per epoch when the
wall-clock budget left after set-up and the speed table cannot hold them (the row says so).

    python -m benchmarks.gpu.gpu_check --out DIR --deadline UNIX_SECONDS [--data DIR] [--pretrained FILE] [--toy]

Normally called by `benchmarks/gpu/gpu_check.sh`. The budget: the Ada-CM step time of the speed table just run
(`DIR/step_speed.json`, the precision `train.amp=auto` picks, eager) times LOOP_OVERHEAD for the data loader
and logging, plus FIXED_SECONDS for loading FER2013, the per-epoch margin pass and the evaluations, must fit
before the deadline. The row keeps the loop's median img/s beside the table's bare-step samples/s: the data
pipeline keeps up with the GPU where the two are close. `--toy`: synthetic faces, the small CNN at 48 px,
2 x 3 steps of 8 + 8 on the CPU (a smoke test of the whole path). Writes `DIR/gpu_adacm_fer2013.json` in
the SSL tables' row format.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

from benchmarks.common import OUT, command, machine, parser, run_row

EPOCHS, ITERS = 20, 800
LOOP_OVERHEAD = 1.5
FIXED_SECONDS = 60.0
ASSUMED_STEP_SECONDS = 0.1
SPLIT = OUT / "splits" / "fer2013_adacm400_seed0.json"


def fer2013_csv(data: Path) -> Path:
    for name in ("fer2013/fer2013.csv.gz", "fer2013/fer2013.csv", "fer2013.csv.gz", "fer2013.csv"):
        if (data / name).is_file():
            return data / name
    raise SystemExit(
        f"no fer2013/fer2013.csv(.gz) under {data}; pass the data folder as the first argument or set SEMIFER_DATA"
    )


def table_step(out: Path, scale: str) -> dict[str, Any]:
    """The speed table's Ada-CM row in the precision `train.amp=auto` gives here, eager."""
    import torch

    from semifer.runtime.precision import autocast_dtype

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    precision = "bf16" if autocast_dtype(device, "auto") == torch.bfloat16 else "fp32"
    path = out / "step_speed.json"
    rows = json.loads(path.read_text())["rows"] if path.is_file() else []
    match = [r for r in rows if r["scale"] == scale and r["method"] == "adacm" and not r["compile"]]
    best = [r for r in match if r["precision"] == precision] or match
    if not best:  # the table was cut off before its Ada-CM row: assume a slow step rather than stop
        print(f"no eager Ada-CM row at scale {scale} in {path}; assuming {ASSUMED_STEP_SECONDS} s per step")
        return {"step_seconds_median": ASSUMED_STEP_SECONDS, "samples_per_s": None}
    return best[0]


def iterations(seconds_left: float, step: float, epochs: int, full: int) -> int:
    """Iterations per epoch that fit: the full count, or as many as the budget allows."""
    fit = int((seconds_left - FIXED_SECONDS) / (epochs * step * LOOP_OVERHEAD))
    return max(1, min(full, fit))


def overrides(args: argparse.Namespace, iters: int) -> list[str]:
    if args.toy:
        return [
            "data.train=synthetic:?n=210",
            "data.test=synthetic:?split=test&n=70",
            "data.split=per_class:4",
            "data.img_size=48",
            "data.crop_padding=2",
            "data.workers=0",
            "model.arch=small_cnn",
            "train.batch_size=8",
            "train.epochs=2",
            f"train.iters_per_epoch={iters}",
            "train.device=cpu",
            "train.eval_batch_size=64",
        ]
    csv = fer2013_csv(args.data)
    workers = max(1, min(6, (os.cpu_count() or 2) // 2 - 1))  # per stream: labeled and unlabeled
    return [
        f"data.train=fer2013:{csv}?split=Training",
        f"data.test=fer2013:{csv}?split=PublicTest",
        "data.split=adacm:400",
        *([f"data.split_file={SPLIT}"] if SPLIT.is_file() else []),
        f"data.workers={workers}",
        f"train.epochs={EPOCHS}",
        f"train.iters_per_epoch={iters}",
        "train.eval_every=5",
        *([f"model.pretrained={args.pretrained}"] if args.pretrained else []),
    ]


def main() -> None:
    cli = parser(__doc__, report_only=False)
    cli.add_argument("--out", type=Path, required=True)
    cli.add_argument("--deadline", type=float, required=True, help="unix time by which the run must end")
    cli.add_argument("--data", type=Path, default=Path(os.environ.get("SEMIFER_DATA", "shared/data")))
    cli.add_argument("--pretrained", type=Path, help="backbone weights (.pth/.safetensors) to start from")
    cli.add_argument("--toy", action="store_true", help="tiny synthetic run on the CPU")
    args = cli.parse_args()

    import semifer
    from semifer.config import load_config

    epochs, full = (2, 3) if args.toy else (EPOCHS, ITERS)
    measured = table_step(args.out, "toy" if args.toy else "paper")
    step = measured["step_seconds_median"]
    left = args.deadline - time.time()
    iters = full if args.toy else iterations(left, step, epochs, full)
    cfg = load_config(
        "adacm_rafdb_4000", [*overrides(args, iters), "name=gpu-adacm-fer2013", f"out_dir={args.out / 'runs'}"]
    )
    started = time.perf_counter()
    result = semifer.train(cfg, progress=False)
    row: dict[str, Any] = {
        "method": "adacm (own recipe)",
        "command": command(),
        "budget": f"{epochs}x{iters}",
        "labels": len(json.loads((result.run_dir / "split.json").read_text())["labeled"]),
        "seed": cfg.seed,
        "full_budget": f"{epochs}x{full}",
        "scaled": iters < full,
        "budget_note": (
            f"{epochs}x{iters} of {epochs}x{full}: {left:.0f} s were left, a step takes "
            f"{step * 1000:.0f} ms in the speed table"
            if iters < full
            else "full size"
        ),
        **run_row(result, started),
        "wall_seconds": time.perf_counter() - started,
        "step_table_samples_per_s": measured["samples_per_s"],
        "amp": cfg.train.amp,
        "compile": cfg.train.compile,
        "pretrained": str(args.pretrained or ""),
        "overrides": overrides(args, iters),
        "machine": machine(),
    }
    path = args.out / "gpu_adacm_fer2013.json"
    path.write_text(json.dumps({"rows": [row]}, indent=1))
    print(
        f"Ada-CM {row['budget']} ({row['budget_note']}): accuracy {100 * row['accuracy']:.2f}% in "
        f"{row['wall_seconds']:.0f} s; the loop ran at {row['images_per_s_median']:.0f} img/s against "
        f"{measured['samples_per_s'] or 0:.0f} for the bare step (below: the loader or evaluation holds it) "
        f"-> {path}"
    )


if __name__ == "__main__":
    main()
