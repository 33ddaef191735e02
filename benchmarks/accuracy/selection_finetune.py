"""Which faces to label, judged by the fine-tuned result: Bridging the Gaps from the built-in representation.

    python -m benchmarks.accuracy.selection_finetune [--budgets 400] [--seeds 0 1 2] [--epochs 10 --iters 100]

FER2013 Training is the pool, as a simulated person: a face's label is revealed only once it is chosen.
Each selection picks the budget (`uniform` random, the Ada-CM `stratified` protocol, which reads every label to
balance the classes, `kcenter`, `typiclust` on the built-in representation's embedding, and `uniform+margin` /
`typiclust+margin`, the README's loop in two rounds: half the budget by the first strategy, a model trained on
it by the same recipe, then the other half by its margin within the embedding's clusters, as `semifer select
--strategy margin --model` does); the chosen faces are the labeled set, the rest of Training the unlabeled
set, and Bridging the Gaps (stage 1, then stage 2 continuing it, half the epochs each, the `fer2013_ssl`
table's recipe) trains from the built-in representation.
Scored on PublicTest; no setting here was chosen on it. Rows (with the chosen faces' ids) are saved as each run
ends and a run already recorded is skipped, so an interrupted benchmark resumes; the selections' split files are
drawn again from the embedding (the same faces for the same seed) and not kept in the repository.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from benchmarks.accuracy.fer2013_ssl import recipe
from benchmarks.common import (
    OUT,
    command,
    fer2013_spec,
    fer2013_split_file,
    header,
    load_json,
    machine,
    mean_sd,
    parser,
    run_row,
    split_protocol,
    train_stages,
    upsert_rows,
    write_section,
)
from benchmarks.studies.selection_probe import ONE_ROUND, TWO_ROUNDS, chosen_indices, two_rounds
from semifer.data import load_dataset
from semifer.data.splits import Split, pool_fingerprint
from semifer.inference.batch import features
from semifer.inference.selecting import model_probabilities
from semifer.models import frozen_model
from semifer.weights import REPRESENTATION

NAME = "selection_finetune"
SELECTIONS = (*ONE_ROUND, *TWO_ROUNDS)


def split_of(pool, chosen: list[int], protocol: str, seed: int) -> Split:
    """The chosen faces labeled, every other face of the pool unlabeled."""
    picked = set(chosen)
    labels = pool.labels[chosen]
    counts = {name: int((labels == k).sum()) for k, name in enumerate(pool.classes)}
    return Split(
        protocol=protocol,
        seed=seed,
        labeled=[pool.ids[i] for i in chosen],
        unlabeled=[pool.ids[i] for i in range(len(pool)) if i not in picked],
        counts=counts,
        dataset="fer2013 Training",
        fingerprint=pool_fingerprint(pool),
    )


def finetune(split: Split, name: str, seed: int, specs: tuple[str, str], epochs: int, iters: int, out_dir: str):
    """Bridging the Gaps from the built-in representation on one split (saved under `name`): the run's result."""
    train_spec, test_spec = specs
    split_file = split.save(OUT / "splits" / f"selection_{name}_seed{seed}.json")
    protocol = split_protocol(train_spec, test_spec, split_file, iters, seed, out_dir)

    def stage_recipe(stage: str, first: bool) -> list[str]:
        start = [f"model.pretrained={REPRESENTATION}"] if first else []
        return [*recipe(stage, train_spec, None, False), *start]

    result, _ = train_stages(
        "fer2013_ssl", "bridging", epochs, protocol, stage_recipe, lambda stage: f"{stage}-{name}-seed{seed}"
    )
    return result


def selection_split(selection: str, pool, embedding: np.ndarray, budget: int, seed: int, train) -> Split:
    """The split of one selection; `train(split, name)` fine-tunes the first round of a two-round one."""
    if selection == "stratified":
        return Split.load(fer2013_split_file(budget, seed))
    protocol = f"select:{selection}:{budget}"
    if selection not in TWO_ROUNDS:
        return split_of(pool, chosen_indices(selection, pool, embedding, budget, seed), protocol, seed)
    strategy = selection.split("+")[0]

    def finetuned_probabilities(first: list[int]) -> np.ndarray:
        model = train(split_of(pool, first, f"select:{strategy}:{len(first)}", seed), f"{strategy}{len(first)}")
        return model_probabilities(str(model.run_dir), pool)

    return split_of(pool, two_rounds(selection, pool, embedding, budget, seed, finetuned_probabilities), protocol, seed)


def key(row: dict) -> tuple:
    return row["selection"], row["labels"], row["seed"], row["budget"]


def main() -> None:
    args_parser = parser(__doc__)
    args_parser.add_argument("--budgets", nargs="*", type=int, default=[400])
    args_parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    args_parser.add_argument("--selections", nargs="*", default=list(SELECTIONS), choices=SELECTIONS)
    args_parser.add_argument("--epochs", type=int, default=10)
    args_parser.add_argument("--iters", type=int, default=100)
    args_parser.add_argument("--out-dir", default="runs/bench-selection")
    args = args_parser.parse_args()
    if args.report_only:
        report(load_json(NAME))
        return
    specs = fer2013_spec("Training"), fer2013_spec("PublicTest")
    pool = load_dataset(specs[0])
    with torch.inference_mode():
        embedding = np.asarray(features(frozen_model(REPRESENTATION).eval(), pool, 48, progress=False))
    for budget in args.budgets:
        for seed in args.seeds:
            for selection in args.selections:
                budget_name = f"{args.epochs}x{args.iters}"
                if any(key(r) == (selection, budget, seed, budget_name) for r in load_json(NAME)["rows"]):
                    continue
                started = time.perf_counter()

                def train(split: Split, name: str, seed: int = seed):
                    return finetune(split, name, seed, specs, args.epochs, args.iters, args.out_dir)

                split = selection_split(selection, pool, embedding, budget, seed, train)
                result = train(split, f"{selection}{budget}")
                row = run_row(result, started)
                row.pop("history")
                per_class = [split.counts.get(name, 0) for name in pool.classes]
                new = {
                    "selection": selection,
                    "labels": budget,
                    "seed": seed,
                    "budget": budget_name,
                    "classes_covered": sum(n > 0 for n in per_class),
                    "smallest_class": min(per_class),
                    "labeled_ids": split.labeled,
                    "command": command(),
                    "machine": machine(),
                    **row,
                }
                blob = upsert_rows(NAME, [new], key)
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
            cells.append(mean_sd(accs))
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
