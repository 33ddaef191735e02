"""Probes of each pretraining on FER2013, before any fine-tuning, and what the pretraining cost.

    python benchmarks/pretrain_probes.py --backbone simclr=runs/pretrain-simclr/backbone.safetensors [--random]

For every named backbone file: k-NN (k=20, cosine) and linear-probe accuracy on PublicTest from frozen
features, the probes fitted on FER2013 Training with its labels (used by the probe only). When the file sits
in a `semifer pretrain` run directory, the pretraining's cost (steps, images, minutes, median img/s) is read
from its metrics.jsonl, and the backbone is copied to `benchmarks/pretrained/NAME.safetensors` (small
files only) so benchmark rows can start from it without pretraining again. `--random` adds a random-init row.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
from pathlib import Path

import torch
import yaml

from record import OUT, command, data_root, header, machine, save_json, write_section
from semifer.engine.run import load_faces
from semifer.pretrain.probes import probe

PRETRAINED_DIR = Path(__file__).parent / "pretrained"
MAX_COMMITTED_BYTES = 2_000_000


def pretraining_cost(backbone: Path) -> dict | None:
    """Steps, images, minutes and median img/s of the pretraining run that wrote `backbone`, if known."""
    metrics = backbone.parent / "metrics.jsonl"
    config = backbone.parent / "config.yaml"
    if not metrics.is_file():
        return None
    history = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    cfg = yaml.safe_load(config.read_text()) if config.is_file() else {}
    return {"steps": history[-1]["step"], "batch_size": cfg.get("train", {}).get("batch_size"),
            "minutes": sum(r["epoch_seconds"] for r in history) / 60,
            "images_per_s_median": statistics.median(r["images_per_s"] for r in history),
            "final_loss": history[-1]["train/loss"], "pretrain": cfg.get("pretrain")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backbone", nargs="*", default=[], metavar="NAME=FILE")
    parser.add_argument("--random", action="store_true", help="also probe a randomly initialised backbone")
    parser.add_argument("--arch", default="small_cnn", help="architecture of the random-init row")
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args()

    results_path = OUT / "pretrain_probes.json"
    blob = json.loads(results_path.read_text()) if results_path.exists() else {"rows": []}
    if not args.report_only:
        csv = data_root() / "fer2013" / "fer2013.csv.gz"
        train = load_faces(f"fer2013:{csv}?split=Training")
        test = load_faces(f"fer2013:{csv}?split=PublicTest")
        torch.manual_seed(0)
        jobs = [(name, Path(path)) for name, path in (item.split("=", 1) for item in args.backbone)]
        if args.random:
            jobs.insert(0, ("random init", None))
        for name, path in jobs:
            result = probe(path, train, test, 48, args.arch if path is None else None, args.k)
            print(f"{name}: {result.summary()}")
            row = {"pretraining": name, "command": command(), **result.to_dict(), "machine": machine()}
            if path is not None:
                row["cost"] = pretraining_cost(path)
                if path.stat().st_size < MAX_COMMITTED_BYTES:
                    PRETRAINED_DIR.mkdir(exist_ok=True)
                    kept = PRETRAINED_DIR / f"{name}.safetensors"
                    if path.resolve() != kept.resolve():
                        shutil.copyfile(path, kept)
                    row["committed_backbone"] = str(kept.relative_to(Path(__file__).parent.parent))
            blob["rows"] = [r for r in blob["rows"] if r["pretraining"] != name] + [row]
            save_json("pretrain_probes", blob)
    if blob["rows"]:
        write_section("pretrain_probes", table(blob["rows"]))


def table(rows: list[dict]) -> str:
    lines = ["## Pretrained representations: probes before fine-tuning (FER2013)", "",
             header(rows[-1]["machine"]),
             "Frozen backbone features of the test view (48 px); k-NN (cosine, majority of k) and a linear probe "
             "(logistic regression on standardised features) fitted on FER2013 Training's 28,540 labels, which "
             "only the probe sees; accuracy on PublicTest (3,589). Cost = the pretraining run's own steps and "
             "time (faces/s; SimCLR draws two views of each face).", "",
             "| pretraining | arch | k-NN acc | linear acc | pretraining steps x batch | minutes | median faces/s "
             "| backbone file | command |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        cost = r.get("cost") or {}
        steps = f"{cost['steps']} x {cost['batch_size']}" if cost else "-"
        minutes = f"{cost['minutes']:.1f}" if cost else "-"
        rate = f"{cost['images_per_s_median']:.0f}" if cost else "-"
        lines.append(f"| {r['pretraining']} | {r['arch']} | {100 * r['knn_accuracy']:.2f}% | "
                     f"{100 * r['linear_accuracy']:.2f}% | {steps} | {minutes} | {rate} | "
                     f"{r.get('committed_backbone', '-')} | `{r['command']}` |")
    lines += ["", "Raw numbers: `benchmarks/out/pretrain_probes.json`."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
