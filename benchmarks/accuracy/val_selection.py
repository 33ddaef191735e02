"""Choose a method's setting on a validation split, never on the test set.

    python -m benchmarks.accuracy.val_selection --method dta_snl --name dta-floor-scratch \\
        --candidates method.dyn_floor=0.0 method.dyn_floor=0.7 method.dyn_floor=0.95 --seeds 0 1 \\
        [--val per_class:100] [--epochs 20 --iters 150] [--start NAME=BACKBONE] [--baseline STUDY:CANDIDATE]

Each candidate (one or more space-separated overrides in one argument; `stage1_epochs=N` among them sets a
two-stage row's split, see `common.stages`) trains on a seed's FER2013 split of the SSL table
(`benchmarks.accuracy.fer2013_ssl`: its preset, head, budget and labels) with `data.val` extra Training images
held out of the unlabeled pool and labeled for selection only; the labeled set is unchanged. The rule is fixed
before any run: the candidate with the highest mean final-epoch validation accuracy over the seeds wins, the
first listed on a tie, and only once every candidate has run on the same seeds. Test accuracy is recorded beside
it so the choice can be checked afterwards, and the rule never reads it. Runs of several processes side by side
(e.g. one per seed) append to one JSON, re-read before each write. `--baseline` enters a candidate of an earlier
study (e.g. the same recipe from another pretrained start) into the comparison from that study's JSON, not
re-run; it is listed first, so a new candidate must beat it.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import time
from pathlib import Path

from benchmarks.accuracy.fer2013_ssl import train_row
from benchmarks.common import (
    OUT,
    add_budget,
    add_seeds,
    add_start,
    command,
    load_json,
    machine,
    named_start,
    parser,
    rows_header,
    upsert_rows,
    write_section,
)


def final_val_accuracy(history: list[dict]) -> float:
    """The last epoch's validation accuracy (the rule's score; a run without validation is an error)."""
    scored = [r["val"]["accuracy"] for r in history if "val" in r]
    if not scored:
        raise ValueError("the run recorded no validation accuracy: was data.val set?")
    return scored[-1]


def choose(rows: list[dict], candidates: list[str]) -> str | None:
    """The rule: the highest mean validation accuracy over seeds, the first candidate on a tie; None while
    the candidates have not all run on the same seeds (a partial comparison chooses nothing)."""
    seeds = {c: {r["seed"] for r in rows if r["candidate"] == c} for c in candidates}
    if not candidates or not seeds[candidates[0]] or any(s != seeds[candidates[0]] for s in seeds.values()):
        return None
    score = {c: statistics.mean(r["val_accuracy"] for r in rows if r["candidate"] == c) for c in candidates}
    return max(candidates, key=lambda c: (score[c], -candidates.index(c)))


def baseline_rows(spec: str, out: Path = OUT) -> list[dict]:
    """The rows of candidate CANDIDATE in study STUDY's JSON, relabelled with their start so that they stand
    beside this study's candidates without sharing a name with them, and carrying that study's method."""
    study, sep, candidate = spec.partition(":")
    path = out / f"val_selection_{study}.json"
    if not sep or not path.exists():
        raise SystemExit(f"--baseline {spec!r}: expected STUDY:CANDIDATE with {path} present")
    earlier = json.loads(path.read_text())
    rows = [r for r in earlier["rows"] if r["candidate"] == candidate]
    if not rows:
        raise SystemExit(f"--baseline {spec!r}: {path} has no rows of candidate {candidate!r}")
    method = earlier.get("method")
    return [{"method": method, **r, "candidate": f"{candidate} from {r['start']} (study {study})"} for r in rows]


def compared(blob: dict, out: Path = OUT) -> tuple[list[dict], list[str]]:
    """Every row and candidate the rule compares, each row carrying its study's method: the baseline's first,
    then this study's."""
    own = [{"method": blob.get("method"), **r} for r in blob["rows"]]
    if not blob.get("baseline"):
        return own, blob["candidates"]
    base = baseline_rows(blob["baseline"], out)
    return base + own, [base[0]["candidate"], *blob["candidates"]]


def run_candidate(args: argparse.Namespace, candidate: str, seed: int) -> dict:
    start_name, start_file = named_start(args.start)
    started = time.perf_counter()
    tokens = shlex.split(candidate)
    split = [int(t.partition("=")[2]) for t in tokens if t.startswith("stage1_epochs=")]
    settings = [t for t in tokens if not t.startswith("stage1_epochs=")]
    tag = "".join(ch if ch.isalnum() or ch in ".-" else "-" for ch in candidate)
    result, _ = train_row(
        args.method,
        seed,
        args.labels,
        args.epochs,
        args.iters,
        args.out_dir,
        lambda stage: f"{args.name}-{stage}-{tag}-seed{seed}",
        [f"data.val={args.val}", *settings],
        start_file,
        split[-1] if split else None,
    )
    last = result.history[-1]
    return {
        "candidate": candidate,
        "seed": seed,
        "start": start_name,
        "budget": f"{args.epochs}x{args.iters}",
        "val": args.val,
        "val_accuracy": final_val_accuracy(result.history),
        "test_accuracy": result.final.accuracy,
        "subset1_fraction": last.get("unlabeled/subset1_fraction"),
        "pseudo_label_accuracy_subset1": last.get("unlabeled/pseudo_label_accuracy_subset1"),
        "minutes": (time.perf_counter() - started) / 60,
        "run_dir": str(result.run_dir),
        "command": command(),
        "machine": machine(),
    }


def table(blob: dict, out: Path = OUT) -> str:
    rows, candidates = compared(blob, out)
    chosen = choose(rows, candidates)
    meta = (blob["rows"] or rows or [{}])[0]
    lines = [
        f"### Chosen on validation: {blob['method']}, {blob['name']}",
        "",
        rows_header([r["machine"] for r in rows]) if rows else "No runs yet.",
        f"FER2013 Training, {blob['labels']} labels (Ada-CM protocol, the SSL table's split files, preset and "
        f"head), from {meta.get('start', '?')}, budget {meta.get('budget', '?')}; validation `data.val="
        f"{meta.get('val', '?')}`: extra Training images held out of the unlabeled pool, labeled for the choice "
        "only. Choice: the candidate with the highest mean final-epoch validation accuracy over the seeds. "
        "Test accuracy (PublicTest, final epoch) is shown for reference and is not used by the choice."
        + (
            f" The first candidate's rows are read from `val_selection_{blob['baseline'].partition(':')[0]}.json`, "
            "not re-run; listed first, it wins a tie."
            if blob.get("baseline")
            else ""
        ),
        "",
        "| method | candidate | seed | val accuracy | test accuracy | subset I / mask rate | pseudo-label acc "
        "| minutes | command |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: (candidates.index(r["candidate"]), r["seed"])):
        frac, pl = r.get("subset1_fraction"), r.get("pseudo_label_accuracy_subset1")
        lines.append(
            f"| {r['method']} | `{r['candidate']}` | {r['seed']} | "
            f"{100 * r['val_accuracy']:.2f}% | "
            f"{100 * r['test_accuracy']:.2f}% | {'-' if frac is None else f'{100 * frac:.1f}%'} | "
            f"{'-' if pl is None else f'{100 * pl:.1f}%'} | {r['minutes']:.1f} | `{r['command']}` |"
        )
    lines += [
        "",
        "| method | candidate | seeds | mean val accuracy | mean test accuracy |",
        "|---|---|---|---|---|",
    ]
    for c in candidates:
        mine = [r for r in rows if r["candidate"] == c]
        if mine:
            mark = " **(chosen)**" if c == chosen else ""
            lines.append(
                f"| {mine[0]['method']} | `{c}`{mark} "
                f"| {', '.join(str(r['seed']) for r in sorted(mine, key=lambda r: r['seed']))} "
                f"| {100 * statistics.mean(r['val_accuracy'] for r in mine):.2f}% "
                f"| {100 * statistics.mean(r['test_accuracy'] for r in mine):.2f}% |"
            )
    if chosen is None:
        lines += ["", "No choice yet: not every candidate has run on the same seeds."]
    lines += ["", f"Raw numbers: `benchmarks/out/val_selection_{blob['name']}.json`."]
    return "\n".join(lines)


def main() -> None:
    cli = parser(__doc__)
    cli.add_argument("--method", required=True)
    cli.add_argument("--name", required=True, help="names the study: its JSON, runs and BENCHMARKS section")
    cli.add_argument(
        "--candidates",
        nargs="+",
        required=True,
        help="each one setting: one or more space-separated overrides in one argument",
    )
    add_seeds(cli, [0, 1])
    cli.add_argument("--val", default="per_class:100")
    cli.add_argument("--labels", type=int, default=400)
    add_budget(cli, 20, 150)
    add_start(cli)
    cli.add_argument(
        "--baseline",
        metavar="STUDY:CANDIDATE",
        help="compare with a candidate of an earlier study, read from its JSON and not re-run",
    )
    cli.add_argument("--out-dir", default="runs/val-selection")
    args = cli.parse_args()

    name = f"val_selection_{args.name}"
    study = {
        "name": args.name,
        "method": args.method,
        "labels": args.labels,
        "candidates": args.candidates,
        "baseline": args.baseline,
    }

    def load() -> dict:
        blob = load_json(name, {**study, "rows": []})
        if (blob["candidates"], blob["method"], blob.get("baseline")) != (args.candidates, args.method, args.baseline):
            raise SystemExit(
                f"{OUT / name}.json holds study {blob['method']} over {blob['candidates']} (baseline "
                f"{blob.get('baseline')}); a study's candidates are fixed before its runs: give another "
                "--name for other candidates"
            )
        return blob

    blob = load()
    if not args.report_only:
        for seed in args.seeds:
            for candidate in args.candidates:
                row = run_candidate(args, candidate, seed)
                load()
                blob = upsert_rows(name, [row], lambda r: (r["candidate"], r["seed"]), {**study, "rows": []})
                write_section(name, table(blob))
    write_section(name, table(blob))
    if (chosen := choose(*compared(blob))) is not None:
        print(f"chosen on validation: {chosen}")


if __name__ == "__main__":
    main()
