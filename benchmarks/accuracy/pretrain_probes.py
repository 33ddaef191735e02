"""Probes of each pretraining on FER2013, before any fine-tuning, and what the pretraining cost.

    python -m benchmarks.accuracy.pretrain_probes --backbone simclr=runs/pretrain-simclr/backbone.safetensors [--random]

For every named backbone file: k-NN (k=20, cosine) and linear-probe accuracy on PublicTest from frozen
features, the probes fitted on FER2013 Training with its labels (used by the probe only). When the file sits
in a `semifer pretrain` run directory, the pretraining's cost (steps, images, minutes, median img/s) is read
from its metrics.jsonl, and the backbone is copied to `benchmarks/pretrained/NAME.safetensors` (small
files only) so benchmark rows can start from it without pretraining again. `--random` adds a random-init row.

`--few-labels SEED...` adds, for each backbone, a linear probe fitted on only the 400 labeled faces of the
FER2013 SSL table's split of each seed (`benchmarks/out/splits/fer2013_adacm400_seed{SEED}.json`), its L2
strength chosen by 5-fold cross-validation on those 400 faces: what a frozen backbone gives with the labels
the fine-tuning rows have, so fine-tuning can be judged against it.
"""

from __future__ import annotations

import json
import shutil
import statistics
from pathlib import Path

import numpy as np
import torch
import yaml
from sklearn.linear_model import LogisticRegressionCV
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from benchmarks.common import (
    PRETRAINED,
    ROOT,
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
from semifer.engine.run import load_faces
from semifer.inference.batch import features
from semifer.models import frozen_model
from semifer.pretrain.probes import probe

MAX_COMMITTED_BYTES = 2_000_000
SSL_TABLE_SEEDS = [0, 1, 2]  # their labeled faces never enter the validation split, whichever --few-labels


def pretraining_cost(backbone: Path) -> dict | None:
    """Steps, images, minutes and median img/s of the pretraining run that wrote `backbone`, if known."""
    metrics = backbone.parent / "metrics.jsonl"
    config = backbone.parent / "config.yaml"
    if not metrics.is_file():
        return None
    history = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    cfg = yaml.safe_load(config.read_text()) if config.is_file() else {}
    return {
        "steps": history[-1]["step"],
        "batch_size": cfg.get("train", {}).get("batch_size"),
        "minutes": sum(r["epoch_seconds"] for r in history) / 60,
        "images_per_s_median": statistics.median(r["images_per_s"] for r in history),
        "final_loss": history[-1]["train/loss"],
        "pretrain": cfg.get("pretrain"),
    }


def labeled_ids(seeds: list[int]) -> set[str]:
    """The face ids labeled in any of these seeds' SSL-table splits."""
    return {face_id for seed in seeds for face_id in json.loads(fer2013_split_file(400, seed).read_text())["labeled"]}


def validation_split(train: FaceSet, size: int, keep_out: set[str]) -> tuple[FaceSet, FaceSet]:
    """(probe-train, validation): `size` stratified Training faces (seed 0) drawn from those not in
    `keep_out`, and every other Training face."""
    eligible = np.array([i for i, face_id in enumerate(train.ids) if face_id not in keep_out])
    _, val_idx = train_test_split(eligible, test_size=size, stratify=train.labels[eligible], random_state=0)
    rest = np.setdiff1d(np.arange(len(train)), val_idx)
    return train.subset(rest, name=f"{train.name} minus validation"), train.subset(np.sort(val_idx))


def few_label_probe(path: Path | None, arch: str, train: FaceSet, test: FaceSet, seeds: list[int]) -> list[dict]:
    """Linear probe on each seed's 400 labeled faces (C by 5-fold CV on them), accuracy on `test`."""
    model = frozen_model(path, arch if path is None else None).eval()
    position = {face_id: i for i, face_id in enumerate(train.ids)}
    with torch.inference_mode():
        test_x = features(model, test, 48, progress=False)
    rows = []
    for seed in seeds:
        split = json.loads(fer2013_split_file(400, seed).read_text())
        labeled = train.subset([position[face_id] for face_id in split["labeled"]])
        with torch.inference_mode():
            train_x = features(model, labeled, 48, progress=False)
        search = LogisticRegressionCV(Cs=np.logspace(-3, 1, 9).tolist(), cv=5, scoring="accuracy", max_iter=2000)
        clf = make_pipeline(StandardScaler(), search)
        clf.fit(train_x, labeled.labels)
        rows.append(
            {
                "seed": seed,
                "labels": len(labeled),
                "C": float(np.ravel(search.C_)[0]),
                "accuracy": float((clf.predict(test_x) == test.labels).mean()),
            }
        )
    return rows


def main() -> None:
    cli = parser(__doc__)
    cli.add_argument("--backbone", nargs="*", default=[], metavar="NAME=FILE")
    cli.add_argument("--random", action="store_true", help="also probe a randomly initialised backbone")
    cli.add_argument("--arch", default="small_cnn", help="architecture of the random-init row")
    cli.add_argument("--k", type=int, default=20)
    cli.add_argument(
        "--few-labels",
        type=int,
        nargs="*",
        default=[],
        metavar="SEED",
        help="also probe on the 400 labels of these seeds' SSL-table splits",
    )
    cli.add_argument(
        "--val",
        type=int,
        default=0,
        metavar="N",
        help="score on N held-out Training faces instead of PublicTest (to choose a recipe)",
    )
    args = cli.parse_args()

    results_name = "pretrain_probes_val" if args.val else "pretrain_probes"
    blob = load_json(results_name)
    if not args.report_only:
        train = load_faces(fer2013_spec("Training"))
        if args.val:
            train, test = validation_split(train, args.val, labeled_ids(SSL_TABLE_SEEDS))
        else:
            test = load_faces(fer2013_spec("PublicTest"))
        torch.manual_seed(0)
        jobs = [(name, Path(path)) for name, path in (item.split("=", 1) for item in args.backbone)]
        if args.random:
            jobs.insert(0, ("random init", None))
        for name, path in jobs:
            result = probe(path, train, test, 48, args.arch if path is None else None, args.k)
            print(f"{name}: {result.summary()}")
            row = {
                "pretraining": name,
                "command": command(),
                **result.to_dict(),
                "machine": machine(),
                "scored_on": f"{args.val} held-out Training faces" if args.val else "PublicTest",
            }
            if args.few_labels:
                row["few_labels"] = few_label_probe(path, args.arch, train, test, args.few_labels)
            if path is not None:
                row["cost"] = pretraining_cost(path)
                if not args.val and path.stat().st_size < MAX_COMMITTED_BYTES:
                    PRETRAINED.mkdir(exist_ok=True)
                    kept = PRETRAINED / f"{name}.safetensors"
                    if path.resolve() != kept.resolve():
                        shutil.copyfile(path, kept)
                    row["committed_backbone"] = str(kept.relative_to(ROOT))
            blob["rows"] = [r for r in blob["rows"] if r["pretraining"] != name] + [row]
            save_json(results_name, blob)
    if blob["rows"]:
        write_section(results_name, table(blob["rows"], validation=bool(args.val)))


def table(rows: list[dict], validation: bool = False) -> str:
    scored = (
        f"fitted on the other {rows[0]['train_images']:,} Training labels, which only the probe sees; "
        f"accuracy on {rows[0]['test_images']:,} held-out Training faces (stratified, seed 0, none of them "
        "labeled in the seeds' splits; PublicTest is not read), so a recipe can be chosen on it"
        if validation
        else "fitted on FER2013 Training's 28,540 labels, which only the probe sees; accuracy on PublicTest (3,589)"
    )
    title = "probes on a validation split of Training" if validation else "probes before fine-tuning"
    lines = [
        f"### Pretrained representations: {title} (FER2013)",
        "",
        rows_header([r["machine"] for r in rows]),
        "Frozen backbone features of the test view (48 px); k-NN (cosine, majority of k) and a linear probe "
        f"(logistic regression on standardised features) {scored}. Cost = the pretraining run's own steps and "
        "time (faces/s; SimCLR draws two views of each face). *linear, 400 labels* = the same probe fitted on "
        "only the 400 labeled faces of the SSL table's split of each seed (C by 5-fold CV on them), mean over "
        "the seeds listed: the frozen backbone with the fine-tuning rows' labels.",
        "",
        "| pretraining | arch | k-NN acc | linear acc | linear, 400 labels (per seed) | pretraining steps x batch "
        "| minutes | median faces/s | backbone file | command |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        cost = r.get("cost") or {}
        steps = f"{cost['steps']} x {cost['batch_size']}" if cost else "-"
        minutes = f"{cost['minutes']:.1f}" if cost else "-"
        rate = f"{cost['images_per_s_median']:.0f}" if cost else "-"
        few = r.get("few_labels") or []
        few_text = (
            (
                f"{100 * np.mean([f['accuracy'] for f in few]):.2f}% ("
                + ", ".join(f"s{f['seed']} {100 * f['accuracy']:.2f}" for f in few)
                + ")"
            )
            if few
            else "-"
        )
        lines.append(
            f"| {r['pretraining']} | {r['arch']} | {100 * r['knn_accuracy']:.2f}% | "
            f"{100 * r['linear_accuracy']:.2f}% | {few_text} | {steps} | {minutes} | {rate} | "
            f"{r.get('committed_backbone', '-')} | `{r['command']}` |"
        )
    lines += ["", f"Raw numbers: `benchmarks/out/pretrain_probes{'_val' if validation else ''}.json`."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
