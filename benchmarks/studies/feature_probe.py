"""Why Ada-CM trails FixMatch at CPU scale: what the subset-II InfoNCE term does to the trained models.

    python -m benchmarks.studies.feature_probe [--labels 400] [--budget 20x150] [--seed 0]
        [--methods adacm "adacm (no InfoNCE)" fixmatch supervised]

Loads the final EMA model of each named row of `benchmarks.accuracy.fer2013_ssl` (from the run directory that
row recorded, so run that benchmark first) and runs it over a fixed sample of the row's unlabeled pool (true
labels known, never used in training) and over PublicTest. For each model it reports how many unlabeled images
clear the 0.95 confidence that FixMatch uses and Ada-CM's margins settle near, how accurate those pseudo-labels
are, and how the L2-normalised features of one expression cluster: mean cosine similarity of same-class pairs,
of different-class pairs, and the leave-one-out 20-nearest-neighbour accuracy on the features. An
instance-discrimination term that pushes same-expression faces apart shows as a lower same-class similarity and
fewer confident images.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from benchmarks.common import (
    command,
    fer2013_spec,
    fer2013_split_file,
    load_json,
    machine,
    parser,
    rows_header,
    save_json,
    write_section,
)
from semifer.data.faceset import FaceSet
from semifer.data.registry import load_dataset
from semifer.data.splits import Split, apply_split
from semifer.engine.evaluate import predict
from semifer.models import load_model

CONFIDENT = 0.95


def structure(feats: torch.Tensor, labels: torch.Tensor, k: int = 20) -> dict[str, float]:
    """Same-class and different-class mean cosine similarity, and leave-one-out k-NN accuracy."""
    sim = feats @ feats.T
    same = labels[:, None] == labels[None, :]
    off_diagonal = ~torch.eye(len(labels), dtype=torch.bool)
    neighbours = sim.masked_fill(~off_diagonal, -2).topk(k, dim=1).indices
    votes = F.one_hot(labels[neighbours], int(labels.max()) + 1).sum(1)
    return {
        "cos_same_class": float(sim[same & off_diagonal].mean()),
        "cos_other_class": float(sim[~same].mean()),
        "knn_accuracy": float((votes.argmax(1) == labels).float().mean()),
    }


def probe(run_dir: Path, pool: FaceSet, test: FaceSet, sample: np.ndarray) -> dict[str, float]:
    model, info = load_model(run_dir / "checkpoints" / "last.pt", device="cpu")
    result: dict[str, float] = {}
    for name, faces in (("pool", pool.subset(sample)), ("test", test)):
        probs, feats = predict(
            model, faces, info.img_size, torch.device("cpu"), batch_size=512, progress=False, features=True
        )
        probs, feats = torch.from_numpy(probs), F.normalize(torch.from_numpy(feats), dim=1)
        labels = torch.as_tensor(faces.labels, dtype=torch.long)
        confidence, predicted = probs.max(1)
        confident = confidence >= CONFIDENT
        result |= {
            f"{name}_accuracy": float((predicted == labels).float().mean()),
            f"{name}_mean_confidence": float(confidence.mean()),
            f"{name}_confident_fraction": float(confident.float().mean()),
            f"{name}_confident_accuracy": float((predicted == labels)[confident].float().mean()),
            **{f"{name}_{key}": value for key, value in structure(feats, labels).items()},
        }
    return result


def main() -> None:
    cli = parser(__doc__)
    cli.add_argument("--labels", type=int, default=400)
    cli.add_argument("--budget", default="20x150")
    cli.add_argument("--seed", type=int, default=0)
    cli.add_argument("--methods", nargs="+", default=["adacm", "adacm (no InfoNCE)", "fixmatch", "supervised"])
    cli.add_argument("--sample", type=int, default=4000, help="unlabeled pool images probed")
    args = cli.parse_args()
    if args.report_only:
        write_section("feature_probe", table(load_json("feature_probe")["entries"]))
        return

    rows = load_json(f"fer2013_ssl_{args.labels}")["rows"]
    run_dirs = {
        r["method"]: Path(r["run_dir"]) for r in rows if r["budget"] == args.budget and r.get("seed", 0) == args.seed
    }
    missing = [m for m in args.methods if m not in run_dirs or not (run_dirs[m] / "checkpoints").is_dir()]
    if missing:
        raise SystemExit(
            f"no run directory for {missing} at {args.budget}, seed {args.seed}: run "
            f"benchmarks/accuracy/fer2013_ssl.py --labels {args.labels} --seed {args.seed} for them first"
        )
    split = Split.load(fer2013_split_file(args.labels, args.seed))
    _, pool = apply_split(load_dataset(fer2013_spec("Training")), split)
    test = load_dataset(fer2013_spec("PublicTest"))
    sample = np.random.default_rng(0).choice(len(pool), min(args.sample, len(pool)), replace=False)

    entry = {
        "command": command(),
        "machine": machine(),
        "labels": args.labels,
        "budget": args.budget,
        "seed": args.seed,
        "pool_sample": len(sample),
        "confident": CONFIDENT,
        "probes": {m: probe(run_dirs[m], pool, test, sample) for m in args.methods},
    }
    entries = load_json("feature_probe", {"entries": []})["entries"]
    key = ("labels", "budget", "seed")
    entries = [e for e in entries if [e[k] for k in key] != [entry[k] for k in key]] + [entry]
    save_json("feature_probe", {"entries": entries})
    write_section("feature_probe", table(entries))


def table(entries: list[dict]) -> str:
    pct = "{:.1f}%".format
    lines = [
        "### What the InfoNCE term does to the model (FER2013, CPU scale)",
        "",
        rows_header([e["machine"] for e in entries]),
        "Final EMA models of `fer2013_ssl.py` rows, each run over a fixed sample of its unlabeled pool (true "
        "labels for diagnosis only) and over PublicTest. Confident = max softmax >= "
        f"{entries[-1]['confident']}. Cosine = mean over pairs of L2-normalised features; k-NN = leave-one-out "
        "20-nearest-neighbour accuracy on those features.",
        "",
        "| labels | budget | seed | model | set | accuracy | mean confidence | confident | accuracy of confident "
        "| cos same class | cos other class | k-NN acc | command |",
        "|---" * 13 + "|",
    ]
    for e in sorted(entries, key=lambda e: (e["labels"], e["budget"], e["seed"])):
        for method, p in e["probes"].items():
            for s in ("pool", "test"):
                cells = [
                    e["labels"],
                    e["budget"],
                    e["seed"],
                    method,
                    s,
                    pct(100 * p[f"{s}_accuracy"]),
                    f"{p[f'{s}_mean_confidence']:.3f}",
                    pct(100 * p[f"{s}_confident_fraction"]),
                    pct(100 * p[f"{s}_confident_accuracy"]),
                    f"{p[f'{s}_cos_same_class']:.3f}",
                    f"{p[f'{s}_cos_other_class']:.3f}",
                    pct(100 * p[f"{s}_knn_accuracy"]),
                    f"`{e['command']}`",
                ]
                lines.append("| " + " | ".join(map(str, cells)) + " |")
    lines += ["", "Raw numbers: `benchmarks/out/feature_probe.json`."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
