"""Supervised baseline on FER2013 at CPU scale: all Training labels, and 400 labels (Ada-CM protocol).

    python benchmarks/fer2013_supervised.py [--epochs 30] [--iters 400]

Small CNN, 48 px, PublicTest as the test set; the final-epoch EMA accuracy is reported.
"""

from __future__ import annotations

import argparse
import time

from record import command, data_root, header, machine, save_json, write_section
from semifer.config import load_config
from semifer.engine.run import train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--iters", type=int, default=400)
    parser.add_argument("--few-epochs", type=int, default=20)
    parser.add_argument("--few-iters", type=int, default=100)
    parser.add_argument("--out-dir", default="runs/bench")
    args = parser.parse_args()
    csv = data_root() / "fer2013" / "fer2013.csv.gz"
    settings = {
        "all labels": (["data.split=all", f"train.epochs={args.epochs}", f"train.iters_per_epoch={args.iters}"]),
        "400 labels (adacm:400)": (["data.split=adacm:400", f"train.epochs={args.few_epochs}",
                                    f"train.iters_per_epoch={args.few_iters}"]),
    }
    meta, rows = machine(), []
    for label, overrides in settings.items():
        cfg = load_config("fer2013_small", [
            f"data.train=fer2013:{csv}?split=Training", f"data.test=fer2013:{csv}?split=PublicTest",
            f"out_dir={args.out_dir}", f"name=supervised-{overrides[0].split('=')[1].replace(':', '')}", *overrides])
        started = time.perf_counter()
        result = train(cfg)
        minutes = (time.perf_counter() - started) / 60
        final = result.final
        rows.append({"setting": label, "overrides": overrides, "minutes": minutes, "run_dir": str(result.run_dir),
                     "accuracy": final.accuracy, "mean_class_accuracy": final.mean_class_accuracy,
                     "macro_f1": final.macro_f1, "per_class_accuracy": final.per_class_accuracy,
                     "images_per_s": result.history[-1]["images_per_s"]})
        save_json("fer2013_supervised", {"machine": meta, "command": command(), "rows": rows})
    lines = [
        "## Supervised baseline on FER2013 (CPU scale)", "",
        f"Command: `{command()}` (preset `fer2013_small`: small_cnn, 48 px, SGD 0.05 cosine, batch 64, EMA 0.999).",
        header(meta), "Test set: PublicTest (3,589 images); final-epoch EMA model.", "",
        "| labels | iterations | wall minutes | accuracy | mean-class acc | macro-F1 | train img/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        epochs = r["overrides"][1].split("=")[1]
        iters = r["overrides"][2].split("=")[1]
        lines.append(f"| {r['setting']} | {epochs}x{iters} | {r['minutes']:.1f} | {100 * r['accuracy']:.2f}% | "
                     f"{100 * r['mean_class_accuracy']:.2f}% | {100 * r['macro_f1']:.2f}% | {r['images_per_s']:.0f} |")
    lines += ["", "Raw numbers: `benchmarks/out/fer2013_supervised.json`."]
    write_section("fer2013_supervised", "\n".join(lines))


if __name__ == "__main__":
    main()
