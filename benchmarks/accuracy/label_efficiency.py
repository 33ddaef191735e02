"""The label-efficiency curve on FER2013: accuracy against the share of Training's labels, supervised against
semi-supervised, both from the same start.

    python -m benchmarks.accuracy.label_efficiency [--fractions 0.01 0.05 0.1 0.25 1.0]
        [--methods supervised bridging] [--start face-simclr-small=face-simclr-small] [--seeds 0 1 2]
        [--min-steps 1000] [--epochs-over-labels 20]

Each fraction P labels max(1, round(P * n_c)) faces of every class (Bridging the Gaps' `fraction:P` protocol),
drawn once per seed; every Training face is in the unlabeled set (the labeled ones included, as in FixMatch), so
the 100 % point is defined for the semi-supervised method too. The budget grows with the labels: the larger of
`--min-steps` and `--epochs-over-labels` passes over the labeled set at batch 64, so a large labeled set is not
cut short; each rule (floor, passes) draws its own curve, and a run whose budget two rules share (every label)
serves both. Preset `fer2013_ssl`, plain linear head; PublicTest, final EMA model; seeds beyond the first run only
at fractions up to `--seeded-up-to` (the small budgets, where seeds disagree most). Rows (`fraction`, `method`,
`start`, `seed`, `accuracy`) land in benchmarks/out/label_efficiency.json as each run ends; the section and the
figure are rewritten from it.
"""

from __future__ import annotations

import math
import statistics
import time
from pathlib import Path

from benchmarks.accuracy.fer2013_ssl import recipe
from benchmarks.common import (
    OUT,
    add_start,
    command,
    fer2013_spec,
    fer2013_split,
    load_json,
    machine,
    mean_sd,
    named_start,
    parser,
    rows_header,
    run_row,
    split_protocol,
    train_stages,
    upsert_rows,
    write_section,
)
from semifer.data.splits import Split

NAME = "label_efficiency"
BATCH = 64


def split_file(fraction: float, seed: int) -> Path:
    """The labeled faces of one (fraction, seed), every Training face unlabeled; drawn once, then reused."""
    return fer2013_split(f"fraction:{fraction}", seed, f"fer2013_fraction{fraction:g}_seed{seed}", include_labeled=True)


def budget_epochs(labels: int, min_steps: int, epochs_over_labels: float, iters: int) -> int:
    """Epochs of `iters` steps: enough for `epochs_over_labels` passes over the labeled set, at least
    `min_steps`, rounded up to an even number (Bridging splits them between its two stages)."""
    steps = max(min_steps, epochs_over_labels * labels / BATCH)
    return 2 * math.ceil(steps / iters / 2)


def key(row: dict) -> tuple:
    return row["fraction"], row["method"], row["start"], row["seed"], row["budget"]


Rule = tuple[int, float]  # (--min-steps, --epochs-over-labels)


def rules(rows: list[dict]) -> list[Rule]:
    """The budget rules the rows ran under, smallest floor first."""
    return sorted({(r["min_steps"], r["epochs_over_labels"]) for r in rows})


def under(rows: list[dict], rule: Rule) -> list[dict]:
    """The rows whose budget is the one `rule` gives their labeled set, whichever rule they ran under."""
    chosen = []
    for r in rows:
        iters = int(r["budget"].split("x")[1])
        if r["budget"] == f"{budget_epochs(r['labels'], rule[0], rule[1], iters)}x{iters}":
            chosen.append(r)
    return chosen


def rule_name(rule: Rule) -> str:
    return f"the larger of {rule[0]:,} steps and {rule[1]:g} passes"


def main() -> None:
    cli = parser(__doc__)
    cli.add_argument("--fractions", nargs="+", type=float, default=[0.01, 0.05, 0.1, 0.25, 1.0])
    cli.add_argument("--methods", nargs="+", default=["supervised", "bridging"])
    cli.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    cli.add_argument("--seeded-up-to", type=float, default=0.1, help="larger fractions run the first seed only")
    cli.add_argument("--min-steps", type=int, default=1000)
    cli.add_argument("--epochs-over-labels", type=float, default=20)
    cli.add_argument("--iters", type=int, default=100, help="iterations per epoch")
    cli.add_argument("--out-dir", default="runs/bench-label-efficiency")
    add_start(cli)
    args = cli.parse_args()
    if args.report_only:
        report(load_json(NAME))
        return
    start_name, start_file = named_start(args.start)
    train_spec = fer2013_spec("Training")
    for fraction in args.fractions:
        seeds = args.seeds if fraction <= args.seeded_up_to else args.seeds[:1]
        for seed in seeds:
            split = split_file(fraction, seed)
            labels = len(Split.load(split).labeled)
            epochs = budget_epochs(labels, args.min_steps, args.epochs_over_labels, args.iters)
            for method in args.methods:
                budget = f"{epochs}x{args.iters}"
                if any(key(r) == (fraction, method, start_name, seed, budget) for r in load_json(NAME)["rows"]):
                    continue
                started = time.perf_counter()

                def stage_recipe(stage: str, first: bool) -> list[str]:
                    start = start_file if first and start_file else "none"
                    return [*recipe(stage, train_spec, None, False), f"model.pretrained={start}"]

                test_spec = fer2013_spec("PublicTest")
                protocol = split_protocol(train_spec, test_spec, split, args.iters, seed, args.out_dir)
                tag = f"{fraction:g}-{start_name}-seed{seed}"
                result, _ = train_stages(
                    "fer2013_ssl", method, epochs, protocol, stage_recipe, lambda stage, tag=tag: f"{stage}-{tag}"
                )
                row = run_row(result, started)
                row.pop("history")
                new = {
                    "fraction": fraction,
                    "labels": labels,
                    "method": method,
                    "start": start_name,
                    "seed": seed,
                    "budget": budget,
                    "min_steps": args.min_steps,
                    "epochs_over_labels": args.epochs_over_labels,
                    "command": command(),
                    "machine": machine(),
                    **row,
                }
                blob = upsert_rows(NAME, [new], key)
                print(f"{fraction:g} {method} seed {seed}: {100 * row['accuracy']:.2f}%", flush=True)
                report(blob)


def summary(rows: list[dict], by_budget: bool = False) -> dict[tuple, list[float]]:
    """(start, method, fraction), and the budget when `by_budget`, -> the seeds' accuracies (%)."""
    groups: dict[tuple, list[float]] = {}
    for r in rows:
        group = (r["start"], r["method"], r["fraction"]) + ((r["budget"],) if by_budget else ())
        groups.setdefault(group, []).append(100 * r["accuracy"])
    return groups


def plot(rows: list[dict]) -> str:
    """One line per (start, method) under each budget rule: colour by method, dashes for all but the largest
    floor."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    colours: dict[tuple[str, str], str] = {}
    every = rules(rows)
    for rule in every:
        groups = summary(under(rows, rule))
        for start, method in sorted({(s, m) for s, m, _ in groups}):
            fractions = sorted(f for s, m, f in groups if (s, m) == (start, method))
            values = [groups[start, method, f] for f in fractions]
            colour = colours.setdefault((start, method), f"C{len(colours)}")
            ax.errorbar(
                [100 * f for f in fractions],
                [statistics.mean(v) for v in values],
                yerr=[statistics.stdev(v) if len(v) > 1 else 0 for v in values],
                marker="o",
                capsize=3,
                color=colour,
                linestyle="-" if rule == every[-1] else "--",
                label=f"{method} ({start}), at least {rule[0]:,} steps",
            )
    ax.set_xscale("log")
    ax.set_xlabel("share of FER2013 Training labels (%)")
    ax.set_ylabel("PublicTest accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = OUT / f"{NAME}.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path.name


def gaps(groups: dict[tuple, list[float]], budget: str = "") -> list[str]:
    """What the curve says in numbers: the unlabeled faces' gain at each share (paired means), and how close
    each method's 10 % point comes to supervised with every label; `budget` names the rule in each line."""
    lines = []
    for start in sorted({s for s, _, _ in groups}):
        full = groups.get((start, "supervised", 1.0))
        for method in sorted({m for s, m, _ in groups if s == start and m != "supervised"}):
            gains = [
                f"{100 * f:g} %: {statistics.mean(groups[start, method, f]) - statistics.mean(sup):+.2f}"
                for f in sorted(f for s, m, f in groups if (s, m) == (start, method))
                if (sup := groups.get((start, "supervised", f)))
            ]
            if gains:
                lines.append(f"- {method} minus supervised ({start}{budget}), means by share: {'; '.join(gains)}.")
            if full and (ten := groups.get((start, method, 0.1))):
                gap = statistics.mean(ten) - statistics.mean(full)
                lines.append(
                    f"- {method} with 10 % of the labels against supervised with all of them ({start}{budget}): "
                    f"{statistics.mean(ten):.2f} against {statistics.mean(full):.2f} % ({gap:+.2f} points)."
                )
    return lines


def commands(rows: list[dict]) -> str:
    """Each distinct command once, in the order the rows first ran it."""
    return ", ".join(f"`{c}`" for c in dict.fromkeys(r["command"] for r in rows))


def report(blob: dict) -> None:
    rows = blob["rows"]
    lines = [
        "### Label efficiency on FER2013",
        "",
        "Accuracy on PublicTest against the share of Training's labels (stratified `fraction:P`, every Training "
        "face also unlabeled), final EMA model; mean ± sd over seeds (n). A budget rule gives each share the "
        "larger of a floor of steps and a number of passes over its labeled faces (named in the lines below the "
        "table), so budgets grow with the labels; each rule is one curve (solid: the largest floor), and a run "
        "whose budget two rules give serves both. A `METHOD+distill` column is METHOD's run followed by a fresh "
        "student of the same budget that learns its answers on every Training face (twice the steps).",
        rows_header([r["machine"] for r in rows]),
        "",
        f"![label efficiency](benchmarks/out/{plot(rows)})",
        "",
    ]
    methods = sorted({r["method"] for r in rows}, key=lambda m: (m != "supervised", m))
    lines += [
        "| start | labels (share) | budget | " + " | ".join(methods) + " |",
        "|---|---|---|" + "---|" * len(methods),
    ]
    groups = summary(rows, by_budget=True)
    for start, fraction, budget in sorted(
        {(s, f, b) for s, _, f, b in groups}, key=lambda k: (k[0], k[1], int(k[2].split("x")[0]))
    ):
        labels = next(r["labels"] for r in rows if (r["start"], r["fraction"]) == (start, fraction))
        cells = [mean_sd(groups.get((start, m, fraction, budget), [])) for m in methods]
        lines.append(f"| {start} | {labels:,} ({100 * fraction:g} %) | {budget} | " + " | ".join(cells) + " |")
    lines.append("")
    for rule in rules(rows):
        lines += gaps(summary(under(rows, rule)), f", {rule_name(rule)}")
    lines += ["", f"Commands: {commands(rows)}. Raw numbers: `benchmarks/out/{NAME}.json`."]
    write_section(NAME, "\n".join(lines))


if __name__ == "__main__":
    main()
