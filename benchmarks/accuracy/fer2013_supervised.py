"""Supervised baseline on FER2013 at CPU scale: all Training labels, and 400 labels (Ada-CM protocol).

    python -m benchmarks.accuracy.fer2013_supervised [--epochs 30] [--iters 400]

Small CNN, 48 px, PublicTest as the test set; the final-epoch EMA accuracy is reported.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from benchmarks.common import (
    add_budget,
    command,
    fer2013_spec,
    header,
    load_json,
    machine,
    parser,
    save_json,
    throughput,
    train_preset,
    write_section,
)


def main() -> None:
    cli = parser(__doc__)
    add_budget(cli, 30, 400)
    cli.add_argument("--few-epochs", type=int, default=20)
    cli.add_argument("--few-iters", type=int, default=100)
    cli.add_argument("--out-dir", default="runs/bench")
    cli.add_argument("--only", choices=["all", "few"], help="run one setting, keeping the other's saved row")
    args = cli.parse_args()
    settings = {
        "all labels": (["data.split=all", f"train.epochs={args.epochs}", f"train.iters_per_epoch={args.iters}"]),
        "400 labels (adacm:400)": (
            [
                "data.split=adacm:400",
                f"train.epochs={args.few_epochs}",
                f"train.iters_per_epoch={args.few_iters}",
                "train.ema=0.99",
            ]
        ),
    }
    if args.report_only:
        report(load_json("fer2013_supervised"))
        return
    meta = machine()
    rows = load_json("fer2013_supervised")["rows"] if args.only else []
    chosen = {"all": list(settings)[:1], "few": list(settings)[1:], None: list(settings)}[args.only]
    for label in chosen:
        overrides = settings[label]
        rows = [r for r in rows if r["setting"] != label]
        started = time.perf_counter()
        result = train_preset(
            "fer2013_small",
            [
                f"data.train={fer2013_spec('Training')}",
                f"data.test={fer2013_spec('PublicTest')}",
                f"out_dir={args.out_dir}",
                f"name=supervised-{overrides[0].split('=')[1].replace(':', '')}",
                "model.pretrained=none",
                *overrides,
            ],
        )
        minutes = (time.perf_counter() - started) / 60
        final = result.final
        rows.append(
            {
                "setting": label,
                "command": command(),
                "overrides": overrides,
                "minutes": minutes,
                "run_dir": str(result.run_dir),
                "accuracy": final.accuracy,
                "mean_class_accuracy": final.mean_class_accuracy,
                "macro_f1": final.macro_f1,
                "per_class_accuracy": final.per_class_accuracy,
                **throughput(result.history),
            }
        )
        save_json("fer2013_supervised", {"machine": meta, "rows": rows})
    report({"machine": meta, "rows": rows})


def report(blob: dict) -> None:
    """The BENCHMARKS.md section; throughput is re-read from the run directories when they are at hand."""
    for r in blob["rows"]:
        metrics = Path(r["run_dir"]) / "metrics.jsonl"
        if metrics.is_file():
            r.update(throughput([json.loads(line) for line in metrics.read_text().splitlines()]))
    save_json("fer2013_supervised", blob)
    lines = [
        "### Supervised baseline on FER2013 (CPU scale)",
        "",
        "Preset `fer2013_small`: small_cnn, 48 px, SGD 0.05 cosine, batch 64, EMA 0.999 (0.99 for the short "
        "400-label run).",
        header(blob["machine"]),
        "Test set: PublicTest (3,589 images); final-epoch EMA model. "
        "Wall minutes include time lost to other jobs sharing the two cores; the median img/s is the "
        "uncontended rate.",
        "",
        "| labels | iterations | wall minutes | accuracy | mean-class acc | macro-F1 | median train img/s | command |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in blob["rows"]:
        epochs = r["overrides"][1].split("=")[1]
        iters = r["overrides"][2].split("=")[1]
        lines.append(
            f"| {r['setting']} | {epochs}x{iters} | {r['minutes']:.1f} | {100 * r['accuracy']:.2f}% | "
            f"{100 * r['mean_class_accuracy']:.2f}% | {100 * r['macro_f1']:.2f}% | "
            f"{r['images_per_s_median']:.0f} | `{r['command']}` |"
        )
    lines += ["", "Raw numbers: `benchmarks/out/fer2013_supervised.json`."]
    write_section("fer2013_supervised", "\n".join(lines))


if __name__ == "__main__":
    main()
