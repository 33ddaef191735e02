"""Data pipeline throughput: decoded + augmented samples per second against what a training step consumes.

    python -m benchmarks.speed.data_pipeline [--workers 0 1 2] [--batches 30]

paper: JPEG files decoded from disk (synthetic faces written at 100 px, the size of RAF-DB's aligned faces),
then Ada-CM's views at 224 px: labeled images one weak view, unlabeled images two weak + one strong.
cpu: FER2013-sized 48 px faces held in memory (no decoding), same views at 48 px. Batches of 16 (paper) or
64 (cpu) through semifer's own `ViewDataset` and endless loader (persistent workers and a prefetch of 4
batches when workers > 0, pinned memory on CUDA). A step needs one labeled and one unlabeled batch;
`steps/s fed` is what the pipeline can supply with the given workers, to compare with the step rates in the
step-speed table.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from benchmarks.common import command, header, load_json, machine, parser, save_json, write_section
from semifer.data.faceset import FaceSet
from semifer.data.loaders import ViewDataset, endless_loader
from semifer.data.registry import load_dataset
from semifer.data.synthetic import generate_faces, load_synthetic
from semifer.data.views import build_view
from semifer.labels import CANONICAL

SCALES = {"paper": (224, 16), "cpu": (48, 64)}
PIPELINES = {"labeled (1 weak view)": ("weak",), "unlabeled (2 weak + 1 strong)": ("weak", "weak", "strong")}


def jpeg_folder(root: Path, n: int) -> FaceSet:
    """`n` synthetic faces written as 100 px JPEGs in class folders, loaded back as a file-backed set."""
    pixels, labels = generate_faces(n, seed=0, size=100)
    for i, (img, label) in enumerate(zip(pixels, labels, strict=True)):
        folder = root / CANONICAL[int(label)]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.asarray(img, dtype=np.uint8)).convert("RGB").save(folder / f"{i:05d}.jpg", quality=90)
    return load_dataset(f"folder:{root}")


def rate(faces: FaceSet, kinds: tuple[str, ...], size: int, batch: int, workers: int, batches: int) -> float:
    """Samples per second out of the endless loader, after two warm-up batches (worker start-up excluded)."""
    loader = iter(
        endless_loader(ViewDataset(faces, [build_view(k, size) for k in kinds]), batch, seed=0, workers=workers)
    )
    for _ in range(2):
        next(loader)
    start = time.perf_counter()
    for _ in range(batches):
        next(loader)
    return batches * batch / (time.perf_counter() - start)


def main() -> None:
    cli = parser(__doc__)
    cli.add_argument("--workers", nargs="+", type=int, default=[0, 1, 2])
    cli.add_argument("--batches", type=int, default=30)
    cli.add_argument("--images", type=int, default=1024)
    args = cli.parse_args()
    if args.report_only:
        write_section("data_pipeline", table(load_json("data_pipeline")))
        return
    torch.manual_seed(0)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        sets = {"paper": jpeg_folder(Path(tmp), args.images), "cpu": load_synthetic(args.images, size=48)}
        for scale, (size, batch) in SCALES.items():
            for workers in args.workers:
                rates = {
                    name: rate(sets[scale], kinds, size, batch, workers, args.batches)
                    for name, kinds in PIPELINES.items()
                }
                fed = 1.0 / sum(batch / r for r in rates.values())
                row = {
                    "scale": scale,
                    "size": size,
                    "batch": batch,
                    "workers": workers,
                    "samples_per_s": rates,
                    "steps_per_s_fed": fed,
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
    blob = {"command": command(), "machine": machine(), "rows": rows}
    save_json("data_pipeline", blob)
    write_section("data_pipeline", table(blob))


def table(blob: dict[str, Any]) -> str:
    steps = load_json("step_speed")
    consumed = {
        (r["scale"], r.get("precision", "fp32")): r
        for r in steps["rows"]
        if r["method"] == "adacm" and r["toolkit"] == "semifer" and not r.get("compile")
    }
    lines = [
        "### Data pipeline",
        "",
        f"`{blob['command']}`",
        header(blob["machine"]),
        "",
        "Samples/s of decoded + augmented images out of semifer's loader (views as Ada-CM uses them). "
        "paper = 100 px JPEGs from disk -> 224 px, batch 16; cpu = 48 px faces in memory, batch 64. "
        "steps/s fed = one labeled + one unlabeled batch per step; Ada-CM steps/s = what the training step "
        "itself runs at in fp32 and in bf16 (step-speed table, same scale, eager, its latest run, whose machine "
        "may differ; - where not measured). The pipeline keeps up where steps/s fed exceeds the step's.",
        "",
        "| scale | workers | labeled samples/s | unlabeled samples/s (3 views) | steps/s fed | "
        "Ada-CM steps/s fp32 | Ada-CM steps/s bf16 |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in blob["rows"]:
        lab, unl = r["samples_per_s"].values()
        need = [consumed.get((r["scale"], p)) for p in ("fp32", "bf16")]
        need_s = [f"{1 / n['step_seconds_median']:.2f}" if n else "-" for n in need]
        lines.append(
            f"| {r['scale']} | {r['workers']} | {lab:.0f} | {unl:.0f} | {r['steps_per_s_fed']:.2f} | "
            f"{need_s[0]} | {need_s[1]} |"
        )
    lines += ["", "Raw numbers: `benchmarks/out/data_pipeline.json`."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
