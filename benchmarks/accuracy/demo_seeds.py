"""`semifer demo` across seeds: does its closing table show the gain whatever the seed?

    python -m benchmarks.accuracy.demo_seeds --seeds 0 1 2 [--variant NAME --overrides key=value ...]
        [--methods supervised fixmatch]

A seed draws the demo's labels, initialisation and data order; another machine's arithmetic changes the
trajectory as much, so a newcomer's run is a draw from the same spread. Each (variant, seed) runs the
demo's methods exactly as `semifer demo --seed S` does (the `demo` preset, plus the variant's overrides)
and records every method's final test accuracy. Rows are appended as each demo ends (re-read first, so
processes started side by side all land).
"""

from __future__ import annotations

import statistics
import time

from benchmarks.common import add_seeds, command, load_json, machine, parser, rows_header, upsert_rows, write_section
from semifer.demo import DEFAULT_METHODS, run_demo


def gains(rows: list[dict], variant: str) -> dict[str, dict[int, float]]:
    """{method: {seed: accuracy minus supervised's on that seed}} for the variant's non-supervised rows."""
    acc = {(r["method"], r["seed"]): r["accuracy"] for r in rows if r["variant"] == variant}
    out: dict[str, dict[int, float]] = {}
    for (method, seed), value in acc.items():
        if method != "supervised" and ("supervised", seed) in acc:
            out.setdefault(method, {})[seed] = value - acc["supervised", seed]
    return out


def table(blob: dict) -> str:
    rows = blob["rows"]
    lines = [
        "### `semifer demo` across seeds",
        "",
        rows_header([r["machine"] for r in rows]),
        "Each seed is a full `semifer demo --seed S` (the `demo` preset plus the variant's overrides; one "
        "thread per process, two processes side by side unless the command says otherwise). Accuracy: "
        "final-epoch EMA model on the 1,400 synthetic test faces; gain: minus supervised on the same seed.",
        "",
        "| variant | overrides | seed | method | accuracy | gain over supervised | minutes |",
        "|---|---|---|---|---|---|---|",
    ]
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    for variant in variants:
        mine = sorted(
            (r for r in rows if r["variant"] == variant), key=lambda r: (r["seed"], r["method"] != "supervised")
        )
        by_seed = gains(rows, variant)
        for r in mine:
            gain = by_seed.get(r["method"], {}).get(r["seed"])
            lines.append(
                f"| {variant} | `{' '.join(r['overrides']) or '-'}` | {r['seed']} | {r['method']} | "
                f"{100 * r['accuracy']:.2f}% | {'-' if gain is None else f'{100 * gain:+.2f}'} | "
                f"{r['minutes']:.1f} |"
            )
    lines += [
        "",
        "| variant | method | seeds | mean gain | worst gain | seeds with a gain |",
        "|---|---|---|---|---|---|",
    ]
    for variant in variants:
        for method, per_seed in gains(rows, variant).items():
            values = [per_seed[s] for s in sorted(per_seed)]
            lines.append(
                f"| {variant} | {method} | {', '.join(map(str, sorted(per_seed)))} | "
                f"{100 * statistics.mean(values):+.2f} | {100 * min(values):+.2f} | "
                f"{sum(v > 0 for v in values)} of {len(values)} |"
            )
    commands = list(dict.fromkeys(r["command"] for r in rows))
    lines += [
        "",
        "Commands:",
        "",
        *(f"- `{c}`" for c in commands),
        "",
        "Raw numbers: `benchmarks/out/demo_seeds.json`.",
    ]
    return "\n".join(lines)


def main() -> None:
    cli = parser(__doc__)
    add_seeds(cli, [0, 1, 2])
    cli.add_argument("--variant", default="preset", help="names the overrides' row group")
    cli.add_argument("--overrides", nargs="*", default=[], help="config overrides on top of the demo preset")
    cli.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS))
    cli.add_argument("--out-dir", default="runs/demo-seeds")
    args = cli.parse_args()
    if not args.report_only:
        for seed in args.seeds:
            started = time.perf_counter()
            demo = run_demo(
                out_dir=f"{args.out_dir}/{args.variant}/seed{seed}",
                methods=args.methods,
                overrides=(f"seed={seed}", *args.overrides),
            )
            total = (time.perf_counter() - started) / 60
            meta = machine()
            rows = [
                {
                    "variant": args.variant,
                    "overrides": args.overrides,
                    "seed": seed,
                    "method": r.method,
                    "accuracy": r.accuracy,
                    "minutes": r.minutes,
                    "demo_minutes": total,
                    "command": command(),
                    "machine": meta,
                }
                for r in demo
            ]
            upsert_rows("demo_seeds", rows, lambda r: (r["variant"], r["seed"], r["method"]))
    write_section("demo_seeds", table(load_json("demo_seeds")))


if __name__ == "__main__":
    main()
