"""Which faces to label, judged by the fine-tuned result: Bridging the Gaps from the built-in representation.

    python benchmarks/selection_finetune.py [--budgets 400] [--seeds 0 1 2] [--epochs 10 --iters 100]

FER2013 Training is the pool, as a simulated person: a face's label is revealed only once it is chosen.
Each selection picks the budget (`uniform` random, the Ada-CM `stratified` protocol, which reads every label to
balance the classes, `kcenter`, `typiclust` on the built-in representation's embedding); the chosen faces are
the labeled set, the rest of Training the unlabeled set, and Bridging the Gaps (stage 1, then stage 2
continuing it, half the epochs each, the `fer2013_ssl` table's recipe) trains from the built-in representation.
Scored on PublicTest; no setting here was chosen on it. Rows are saved as each run ends and a run already
recorded is skipped, so an interrupted benchmark resumes.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch

from fer2013_ssl import fer2013_protocol, recipe
from record import OUT, command, data_root, header, machine, run_row, save_json, stages, write_section
from selection_probe import SELECTIONS, chosen_indices
from semifer.config import load_config
from semifer.data import load_dataset
from semifer.data.splits import Split, pool_fingerprint
from semifer.engine.run import train
from semifer.inference.batch import features
from semifer.models import frozen_model
from semifer.weights import REPRESENTATION

NAME = "selection_finetune"


def selection_split(selection: str, pool, embedding: np.ndarray, budget: int, seed: int) -> Split:
    """The split file of one selection: the chosen faces labeled, every other face of the pool unlabeled."""
    if selection == "stratified":
        return Split.load(fer2013_protocol(budget, seed)[2])
    chosen = chosen_indices(selection, pool, embedding, budget, seed)
    picked = set(chosen)
    labels = pool.labels[chosen]
    counts = {name: int((labels == k).sum()) for k, name in enumerate(pool.classes)}
    return Split(
        protocol=f"select:{selection}:{budget}",
        seed=seed,
        labeled=[pool.ids[i] for i in chosen],
        unlabeled=[pool.ids[i] for i in range(len(pool)) if i not in picked],
        counts=counts,
        dataset="fer2013 Training",
        fingerprint=pool_fingerprint(pool),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budgets", nargs="*", type=int, default=[400])
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    parser.add_argument("--selections", nargs="*", default=list(SELECTIONS), choices=SELECTIONS)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--iters", type=int, default=100)
    parser.add_argument("--out-dir", default="runs/bench-selection")
    parser.add_argument("--report-only", action="store_true", help="rewrite BENCHMARKS.md from the saved JSON")
    args = parser.parse_args()
    path = OUT / f"{NAME}.json"
    if args.report_only:
        report(json.loads(path.read_text()))
        return
    csv = data_root() / "fer2013" / "fer2013.csv.gz"
    train_spec, test_spec = f"fer2013:{csv}?split=Training", f"fer2013:{csv}?split=PublicTest"
    pool = load_dataset(train_spec)
    with torch.inference_mode():
        embedding = np.asarray(features(frozen_model(REPRESENTATION).eval(), pool, 48, progress=False))
    for budget in args.budgets:
        for seed in args.seeds:
            for selection in args.selections:
                blob = json.loads(path.read_text()) if path.exists() else {"rows": []}
                key = (selection, budget, seed, f"{args.epochs}x{args.iters}")
                if any((r["selection"], r["labels"], r["seed"], r["budget"]) == key for r in blob["rows"]):
                    continue
                started = time.perf_counter()
                split = selection_split(selection, pool, embedding, budget, seed)
                split_file = split.save(OUT / "splits" / f"fer2013_{selection}{budget}_seed{seed}.json")
                result = None
                for stage, epochs in stages("bridging", args.epochs):
                    start = (
                        f"model.init_from={result.run_dir / 'checkpoints' / 'last.pt'}"
                        if result is not None
                        else f"model.pretrained={REPRESENTATION}"
                    )
                    cfg = load_config(
                        "fer2013_ssl",
                        [
                            *recipe(stage, train_spec, None, False),
                            start,
                            f"data.train={train_spec}",
                            f"data.test={test_spec}",
                            f"data.split_file={split_file}",
                            f"train.epochs={epochs}",
                            f"train.iters_per_epoch={args.iters}",
                            f"seed={seed}",
                            f"out_dir={args.out_dir}",
                            f"name={stage}-{selection}{budget}-seed{seed}",
                        ],
                    )
                    result = train(cfg, progress=False)
                row = run_row(result, started)
                row.pop("history")
                per_class = [split.counts.get(name, 0) for name in pool.classes]
                blob = json.loads(path.read_text()) if path.exists() else {"rows": []}
                blob["rows"].append(
                    {
                        "selection": selection,
                        "labels": budget,
                        "seed": seed,
                        "budget": key[3],
                        "classes_covered": sum(n > 0 for n in per_class),
                        "smallest_class": min(per_class),
                        "command": command(),
                        "machine": machine(),
                        **row,
                    }
                )
                save_json(NAME, blob)
                print(f"{budget} {selection} seed {seed}: {100 * row['accuracy']:.2f}%", flush=True)
                report(blob)


def report(blob: dict) -> None:
    rows = blob["rows"]
    lines = [
        "### Which faces to label: selections judged by the fine-tuned result",
        "",
        "FER2013 Training as the pool, labels revealed only for the chosen faces; Bridging the Gaps (stage 1 "
        "then stage 2, half the steps each) from the built-in representation on the chosen faces plus the rest "
        "of Training unlabeled; PublicTest accuracy, mean ± sd over seeds (n). *stratified* is the Ada-CM "
        "protocol, which reads every label to balance the classes: a reference a real person cannot use.",
        header(rows[-1]["machine"]),
        "",
        "| labels | steps | " + " | ".join(SELECTIONS) + " |",
        "|---" * (len(SELECTIONS) + 2) + "|",
    ]
    for labels, budget in sorted({(r["labels"], r["budget"]) for r in rows}):
        cells = []
        for selection in SELECTIONS:
            accs = [
                100 * r["accuracy"]
                for r in rows
                if (r["selection"], r["labels"], r["budget"]) == (selection, labels, budget)
            ]
            sd = f" ± {statistics.stdev(accs):.2f}" if len(accs) > 1 else ""
            cells.append(f"{statistics.mean(accs):.2f}{sd} ({len(accs)})" if accs else "-")
        epochs, iters = (int(x) for x in budget.split("x"))
        lines.append(f"| {labels} | {epochs * iters:,} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "| selection | labels | seed | accuracy | classes covered | smallest class | minutes |",
        "|---" * 7 + "|",
    ]
    for r in sorted(rows, key=lambda r: (r["labels"], SELECTIONS.index(r["selection"]), r["seed"])):
        lines.append(
            f"| {r['selection']} | {r['labels']} | {r['seed']} | {100 * r['accuracy']:.2f}% | "
            f"{r['classes_covered']} | {r['smallest_class']} | {r['minutes']:.1f} |"
        )
    lines += ["", f"Command: `{rows[-1]['command']}`. Raw numbers: `benchmarks/out/{NAME}.json`."]
    write_section(NAME, "\n".join(lines))


if __name__ == "__main__":
    main()
