"""The SSL comparison on FER2013 at CPU scale: every method, one split file, one budget, one seed.

    python -m benchmarks.accuracy.fer2013_ssl [--labels 400] [--methods supervised fixmatch ...]
        [--epochs 20 --iters 60] [--seed 1]

Each seed draws its own labeled split and initialisation; rows of several seeds are summarised as the mean
and spread of each method's gain over supervised on the same seeds.

FER2013 Training is the pool, PublicTest the test set, preset `fer2013_ssl` (small_cnn with a plain linear
head, 48 px, 64 labeled + 64 unlabeled images per step, SGD 0.03 cosine, EMA 0.99) for every method;
`--own-recipe` gives each method the head and optimiser of its own code instead (Ada-CM: dropout 0.5, an
L2-normalised feature, Adam). Results are appended as each run ends (re-read first, so runs started side by
side all land), so an interrupted benchmark keeps what it finished; `--skip-done` skips methods already
recorded for the same labels and budget.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from benchmarks.common import (
    OUT,
    add_budget,
    add_start,
    command,
    fer2013_spec,
    fer2013_split_file,
    load_json,
    machine,
    named_start,
    parser,
    rows_header,
    run_row,
    save_json,
    split_protocol,
    stages,
    train_stages,
    upsert_rows,
    write_section,
)
from semifer.config import load_config
from semifer.engine.pretraining import pretrain
from semifer.engine.run import RunResult
from semifer.methods import method_class, plain_head
from semifer.report.plots import plot_comparison

METHODS = (
    "supervised",
    "pseudolabel",
    "mixmatch",
    "remixmatch",
    "fixmatch",
    "flexmatch",
    "adacm",
    "dta_snl",
    "dtm",
    "bridging",
    "pretrain+finetune",
    "pretrain+adacm",
)
PRETRAINED = ("pretrain+finetune", "pretrain+adacm")


def recipe(row: str, train_spec: str, pretrained: Path | None, own: bool) -> list[str]:
    """Overrides that make a table row: the method, the extra pool (DTM) or pretrained backbone, and with
    `own` the head and optimiser of the method's own code (at CPU scale) instead of the table's."""
    method = {"pretrain+finetune": "supervised", "pretrain+adacm": "adacm"}.get(row, row)
    extra = [f'data.extra_unlabeled=["{train_spec}"]', "data.extra_ratio=0.5"] if row == "dtm" else []
    start = [f"model.pretrained={pretrained}"] if row in PRETRAINED else []
    cls = method_class(method)
    training = list(cls.cpu_scale_training) if own else plain_head(method)
    return [f"method.name={method}", *extra, *start, *training]


def fer2013_protocol(labels: int, seed: int) -> tuple[str, str, Path]:
    """The table's data: FER2013 Training as the pool, PublicTest as the test set, and the seed's split
    file of `labels` labels by the Ada-CM protocol (drawn once, then read back by every method)."""
    return fer2013_spec("Training"), fer2013_spec("PublicTest"), fer2013_split_file(labels, seed)


def train_row(
    method: str,
    seed: int,
    labels: int,
    epochs: int,
    iters: int,
    out_dir: str,
    name_of: Callable[[str], str],
    extra: list[str],
    start_file: str | None = None,
    stage1_epochs: int | None = None,
    pretrained: Path | None = None,
    own: bool = False,
) -> tuple[RunResult, list[str]]:
    """Train one row on the table's protocol, stage by stage (`common.train_stages`); only the first stage
    starts from `start_file`. Returns the last stage's result and overrides; `name_of(stage)` names each run."""
    train_spec, test_spec, split_file = fer2013_protocol(labels, seed)

    def row_recipe(stage: str, first: bool) -> list[str]:
        overrides = [*recipe(stage, train_spec, pretrained, own), *extra]
        if first and start_file:
            overrides.append(f"model.pretrained={start_file}")
        elif first and not any(o.startswith("model.pretrained=") for o in overrides):
            overrides.append("model.pretrained=none")  # a scratch row
        return overrides

    protocol = split_protocol(train_spec, test_spec, split_file, iters, seed, out_dir)
    return train_stages("fer2013_ssl", method, epochs, protocol, row_recipe, name_of, stage1_epochs)


def pretrained_backbone(args: argparse.Namespace, train_spec: str) -> Path:
    """Stage 0 (masked face reconstruction) on FER2013 Training without labels, run once and reused."""
    run_dir = Path(args.out_dir) / f"pretrain-{args.pretrain_epochs}x{args.pretrain_iters}"
    checkpoint = run_dir / "backbone.safetensors"
    if not checkpoint.is_file():
        cfg = load_config(
            "pretrain_fer2013_small",
            [
                f"data.train={train_spec}",
                f"train.epochs={args.pretrain_epochs}",
                f"train.iters_per_epoch={args.pretrain_iters}",
                f"seed={args.seed}",
            ],
        )
        checkpoint = pretrain(cfg, run_dir=run_dir).checkpoint
    return checkpoint


def main() -> None:
    cli = parser(__doc__)
    cli.add_argument("--labels", type=int, default=400)
    cli.add_argument("--methods", nargs="+", default=list(METHODS))
    add_budget(cli, 20, 60)
    cli.add_argument("--pretrain-epochs", type=int, default=10)
    cli.add_argument("--pretrain-iters", type=int, default=100)
    cli.add_argument("--seed", type=int, default=0)
    cli.add_argument("--out-dir", default="runs/bench-ssl")
    cli.add_argument("--skip-done", action="store_true")
    cli.add_argument("--extra", nargs="*", default=[], help="overrides applied to every method")
    cli.add_argument("--tag", default="", help="names an ablation row, e.g. --tag 'plain head' (kept apart)")
    cli.add_argument("--stage1-epochs", type=int, help="Bridging: stage 1's share of --epochs (default half)")
    cli.add_argument(
        "--own-recipe",
        action="store_true",
        help="each method's own head and optimiser (Ada-CM: the authors') instead of the table's",
    )
    add_start(cli)
    args = cli.parse_args()
    start_name, start_file = named_start(args.start)

    train_spec = fer2013_protocol(args.labels, args.seed)[0]

    name = f"fer2013_ssl_{args.labels}"
    blob = load_json(name)
    if args.report_only:
        report(blob, args.labels)
        return
    budget = f"{args.epochs}x{args.iters}"

    tag = args.tag or ("own recipe" if args.own_recipe else "")

    def label(method: str) -> str:
        return f"{method} ({tag})" if tag else method

    done = {
        r["method"]
        for r in blob["rows"]
        if r["budget"] == budget and r.get("seed", 0) == args.seed and start_of(r) == start_name
    }
    meta = machine()
    for method in args.methods:
        if args.skip_done and label(method) in done:
            continue
        pretrained = pretrained_backbone(args, train_spec) if method in PRETRAINED else None
        started = time.perf_counter()

        def name_of(stage: str, method: str = method) -> str:  # binds this iteration's method
            suffix = f"-{stage.split('_')[-1]}" if stage != method else ""
            return (
                f"{label(method).replace('+', '-').replace(' ', '-')}{suffix}-{args.labels}-{start_name}"
                f"-seed{args.seed}"
            )

        result, overrides = train_row(
            method,
            args.seed,
            args.labels,
            args.epochs,
            args.iters,
            args.out_dir,
            name_of,
            args.extra,
            start_file,
            args.stage1_epochs,
            pretrained,
            args.own_recipe,
        )
        row = {
            "method": label(method),
            "start": start_name,
            "command": command(),
            "budget": budget,
            "labels": args.labels,
            "seed": args.seed,
            **run_row(result, started),
            "overrides": overrides,
            "stages": dict(stages(method, args.epochs, args.stage1_epochs)),
            "machine": meta,
        }
        blob = upsert_rows(name, [row], row_key)
        if method in PRETRAINED:
            blob["pretrain"] = f"{args.pretrain_epochs}x{args.pretrain_iters} steps of 128 images"
            save_json(name, blob)
        report(blob, args.labels)


def start_of(row: dict) -> str:
    """What a row's network started from: `scratch`, a pretraining named by `--start`, or (the older
    `pretrain+...` rows) the masked convolutional autoencoder."""
    if "start" in row:
        return row["start"]
    return "masked-conv-AE" if row["method"].split(" (")[0] in PRETRAINED else "scratch"


def row_key(row: dict) -> tuple[str, str, int, str]:
    return row["method"], row["budget"], row.get("seed", 0), start_of(row)


def steps(budget: str) -> int:
    """Training steps of an "epochs x iterations" budget."""
    epochs, iters = (int(x) for x in budget.split("x"))
    return epochs * iters


def figure_budget(rows: list[dict]) -> str | None:
    """The budget whose runs compare the most methods, the longest of those: a longer budget run for one or
    two methods does not take the comparison figure over."""
    runs = Counter(r["budget"] for r in rows)
    return max(runs, key=lambda budget: (runs[budget], steps(budget)), default=None)


def report(blob: dict, labels: int) -> None:
    """The BENCHMARKS.md section and, per start, the per-epoch comparison figure of seed 0 (`figure_budget`)."""
    figures = []
    for start in dict.fromkeys(start_of(r) for r in blob["rows"]):
        rows = [r for r in blob["rows"] if r.get("seed", 0) == 0 and "history" in r and start_of(r) == start]
        budget = figure_budget(rows)
        shown = [r for r in rows if r["budget"] == budget]
        if shown:
            suffix = "" if start == "scratch" else f"_{start}"
            figure = OUT / f"fer2013_ssl_{labels}{suffix}_curves.png"
            plot_comparison(
                {r["method"]: r["history"] for r in shown},
                figure,
                f"FER2013, {labels} labels, {budget} steps, seed 0, from {start}",
            )
            figures.append(figure)
    write_section(f"fer2013_ssl_{labels}", table(blob, labels, figures))


def table(blob: dict, labels: int, figures: list[Path] = ()) -> str:
    def order(row: dict) -> tuple[int, str, int, str, int]:
        base = row["method"].split(" (")[0]
        return (
            -steps(row["budget"]),
            start_of(row) != "scratch",
            METHODS.index(base) if base in METHODS else 99,
            row["method"],
            row.get("seed", 0),
        )

    rows = sorted(blob["rows"], key=order)
    lines = [
        f"### SSL methods on FER2013, {labels} labels (CPU scale)",
        "",
        "Each row's command is in the last column.",
        rows_header([r["machine"] for r in rows]),
        f"Pool: FER2013 Training with {labels} labels by the Ada-CM protocol (fear {labels // 10}, other classes "
        f"{labels * 3 // 20}), split file `benchmarks/out/splits/`; test: PublicTest (3,589). Preset `fer2013_ssl`: "
        "small_cnn 48 px with a plain linear head, 64 labeled + 64 unlabeled per step, SGD 0.03 Nesterov, cosine, "
        "wd 5e-4, EMA 0.99, for every method; within a seed every method has the same split and initialisation: "
        "the table compares the SSL algorithms on one network and one optimiser. Rows marked *own recipe* use "
        "instead what only the method's own code chose: for "
        "Ada-CM the authors' head (dropout 0.5, L2-normalised feature) and optimiser (Adam, no schedule, no "
        "weight decay, 0.02*lr weight shrink; lr 2e-3 instead of 5e-4 for this short run, see "
        "AdaCM.cpu_scale_training). DTA+SNL keeps its local attention and feature-map dropout (its method). "
        "Accuracy = final-epoch EMA model; best-over-epochs is selected on the test set "
        "and shown only for comparison with papers that report it. DTM draws half of each unlabeled batch from "
        "an extra pool (FER2013 Training without labels, standing in for a face-recognition set). The pretrain "
        "rows start from a backbone pretrained by masked face reconstruction on FER2013 Training without labels "
        f"(`semifer pretrain -c pretrain_fer2013_small`, {blob.get('pretrain', 'not run')}), a cost outside "
        "the table's budget. A `+distill` row is its method's row followed by a fresh student from the same "
        "start that learns the finished run's mirror-averaged answers on labeled and unlabeled faces "
        "(`distill`, `unlabeled_weight=1`) for the budget again: twice the row's steps. Budgets are epochs x "
        "iterations; compare rows within one budget.",
        "",
        "| method | start | budget (epochs x iters) | seed | accuracy | mean-class acc | macro-F1 "
        "| best over epochs (test-selected) | subset I / mask rate | pseudo-label acc (subset I) | median img/s "
        "| minutes | command |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        frac = f"{100 * r['subset1_fraction']:.1f}%" if r.get("subset1_fraction") is not None else "-"
        pl = r.get("pseudo_label_accuracy_subset1")
        lines.append(
            f"| {r['method']} | {start_of(r)} | {r['budget']} | {r.get('seed', 0)} | {100 * r['accuracy']:.2f}% | "
            f"{100 * r['mean_class_accuracy']:.2f}% | "
            f"{100 * r['macro_f1']:.2f}% | {100 * r['best_over_epochs_test_selected']:.2f}% | {frac} | "
            f"{'-' if pl is None else f'{100 * pl:.1f}%'} | {r['images_per_s_median']:.0f} | {r['minutes']:.1f} | "
            f"`{r['command']}` |"
        )
    lines += seed_summary(rows) + start_summary(rows)
    for figure in figures:
        lines += ["", f"![Test accuracy and pseudo-label use per epoch](benchmarks/out/{figure.name})"]
    lines += ["", f"Raw numbers: `benchmarks/out/fer2013_ssl_{labels}.json`."]
    return "\n".join(lines)


def seed_summary(rows: list[dict]) -> list[str]:
    """Gain over supervised paired by seed (same split, same initialisation), for every method and budget
    with more than one seed: one seed's gain is within the seed-to-seed spread, so the claim rests on these."""
    acc = {(r["method"], r["budget"], r.get("seed", 0), start_of(r)): 100 * r["accuracy"] for r in rows}
    lines = []
    for method, budget, start in dict.fromkeys((r["method"], r["budget"], start_of(r)) for r in rows):
        seeds = sorted(
            s for m, b, s, st in acc if (m, b, st) == (method, budget, start) and ("supervised", b, s, st) in acc
        )
        if method == "supervised" or len(seeds) < 2:
            continue
        gains = [acc[method, budget, s, start] - acc["supervised", budget, s, start] for s in seeds]
        mine = [acc[method, budget, s, start] for s in seeds]
        lines.append(
            f"| {method} | {start} | {budget} | {', '.join(map(str, seeds))} | {statistics.mean(mine):.2f} "
            f"± {statistics.stdev(mine):.2f}% | {', '.join(f'{g:+.2f}' for g in gains)} | "
            f"**{statistics.mean(gains):+.2f}** ± {statistics.stdev(gains):.2f} | {min(gains):+.2f} |"
        )
    if not lines:
        return []
    return [
        "",
        "Across seeds (each seed its own split and initialisation; gain = method minus supervised on the "
        "same seed; ± is the sample standard deviation):",
        "",
        "| method | start | budget | seeds | accuracy (mean ± sd) | gain per seed (points) | mean gain | worst gain |",
        "|---|---|---|---|---|---|---|---|",
        *lines,
    ]


def start_summary(rows: list[dict]) -> list[str]:
    """Scratch vs each pretrained start at every budget that has both: mean accuracy over the seeds run, and
    the gain over supervised from the same start (mean over the seeds both have)."""
    cells: dict[tuple[str, str, str], dict[int, float]] = {}
    for r in rows:
        cells.setdefault((r["budget"], r["method"], start_of(r)), {})[r.get("seed", 0)] = 100 * r["accuracy"]
    lines = []
    for budget in dict.fromkeys(r["budget"] for r in rows):
        starts = list(dict.fromkeys(start_of(r) for r in rows if r["budget"] == budget))
        if len(starts) < 2:
            continue
        block = []
        for method in dict.fromkeys(r["method"] for r in rows if r["budget"] == budget):
            row = [method, budget]
            for start in starts:
                mine, sup = cells.get((budget, method, start), {}), cells.get((budget, "supervised", start), {})
                if not mine:
                    row.append("-")
                    continue
                text = f"{statistics.mean(mine.values()):.2f}% (n={len(mine)})"
                both = [s for s in mine if s in sup]
                if method != "supervised" and both:
                    text += f", {statistics.mean(mine[s] - sup[s] for s in both):+.2f} vs sup."
                row.append(text)
            block.append("| " + " | ".join(row) + " |")
        lines += [
            "",
            f"Scratch vs pretrained start ({budget}; mean over the seeds run; gain over supervised from "
            "the same start, paired by seed):",
            "",
            "| method | budget | " + " | ".join(starts) + " |",
            "|---|---|" + "---|" * len(starts),
            *block,
        ]
    return lines


if __name__ == "__main__":
    main()
