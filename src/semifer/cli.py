"""`semifer` command line: train, pretrain, eval, splits, demo, presets."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .errors import SemiferError


def _cmd_train(args: argparse.Namespace) -> None:
    from .config import load_config
    from .engine.run import train

    cfg = load_config(args.config, args.overrides)
    result = train(cfg, resume=args.resume, run_dir=Path(args.run_dir) if args.run_dir else None)
    if result.trainer is not None and result.trainer.rank != 0:
        return
    if result.final is not None:
        print(f"{cfg.method['name']} on {cfg.data.test}: {result.final.summary()}")
    print(f"run directory: {result.run_dir}")


def _cmd_pretrain(args: argparse.Namespace) -> None:
    from .config import load_config
    from .pretrain import pretrain

    cfg = load_config(args.config or "pretrain_mae", args.overrides)
    result = pretrain(cfg, resume=args.resume, run_dir=Path(args.run_dir) if args.run_dir else None)
    if result.start_step:
        print(f"resumed at step {result.start_step}")
    if result.history:
        print(f"masked-patch MSE {result.history[-1]['train/loss']:.4f} after {result.history[-1]['step']} steps")
    print(f"run directory: {result.run_dir}")
    print(f"backbone: {result.checkpoint}  (start any method from it with model.pretrained={result.checkpoint})")


def _cmd_eval(args: argparse.Namespace) -> None:
    from .engine.evaluate import evaluate, plot_confusion
    from .engine.predictor import load_model
    from .engine.run import load_faces

    model, cfg, _ = load_model(args.checkpoint, use_ema=not args.student)
    faces = load_faces(args.data)
    metrics = evaluate(model, faces, cfg.data.img_size, model.head.weight.device, batch_size=args.batch_size)
    print(f"{args.data}: {metrics.summary()}")
    if faces.dropped:
        print("  dropped while parsing: " + ", ".join(f"{k} {v}" for k, v in faces.dropped.items()))
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps({"data": args.data, **metrics.to_dict()}, indent=1))
        plot_confusion(metrics, out / "confusion.png", title=f"{Path(args.checkpoint).name} on {args.data}")
        print(f"wrote {out / 'metrics.json'} and {out / 'confusion.png'}")


def _cmd_splits(args: argparse.Namespace) -> None:
    from .data.registry import load_dataset
    from .data.splits import make_split

    pool = load_dataset(args.data).require_nonempty()
    split = make_split(pool, args.protocol, args.seed, args.include_labeled, args.val)
    split.dataset = args.data
    split.save(args.out)
    counts = ", ".join(f"{k} {v}" for k, v in split.counts.items())
    held_out = f", {len(split.validation)} validation" if split.validation else ""
    print(f"{len(split.labeled)} labeled ({counts}), {len(split.unlabeled)} unlabeled{held_out} -> {args.out}")


def _cmd_demo(args: argparse.Namespace) -> None:
    from .demo import run_demo

    run_demo(out_dir=args.out_dir, quick=args.quick, methods=args.methods)


def _cmd_presets(args: argparse.Namespace) -> None:
    from .config import preset_names

    print("\n".join(preset_names()))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="semifer", description="Semi-supervised facial expression recognition.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("train", help="train a method (supervised, ...) from a preset plus overrides")
    p.add_argument("--config", "-c", help="preset name (see `semifer presets`) or YAML file")
    p.add_argument("--resume", action="store_true", help="continue the run in --run-dir (or out_dir/name)")
    p.add_argument("--run-dir", help="run directory (default: out_dir/name, made unique)")
    p.add_argument("overrides", nargs="*", help="dotted KEY=VALUE overrides, e.g. train.epochs=5 data.split=adacm:400")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("pretrain", help="masked face-reconstruction pretraining of a backbone on unlabeled faces")
    p.add_argument("--config", "-c", help="preset name or YAML file (default pretrain_mae, MAE's recipe)")
    p.add_argument("--resume", action="store_true", help="continue the run in --run-dir (or out_dir/name)")
    p.add_argument("--run-dir", help="run directory (default: out_dir/name, made unique)")
    p.add_argument("overrides", nargs="*", help="dotted KEY=VALUE overrides, e.g. pretrain.mask_ratio=0.6 "
                   "data.train=unlabeled:/faces")
    p.set_defaults(func=_cmd_pretrain)

    p = sub.add_parser("eval", help="evaluate a checkpoint on a dataset (in-domain or cross-dataset)")
    p.add_argument("checkpoint", help="run directory or checkpoint file")
    p.add_argument("--data", required=True, help="dataset spec, e.g. folder:/data/CK+48 or fer2013:FILE?split=test")
    p.add_argument("--student", action="store_true", help="use the student weights instead of the EMA")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--out", help="folder to write metrics.json and confusion.png")
    p.set_defaults(func=_cmd_eval)

    p = sub.add_parser("splits", help="make a labeled/unlabeled split file")
    p.add_argument("--data", required=True, help="labeled pool dataset spec")
    p.add_argument("--protocol", default="adacm:400", help="adacm:N, per_class:K, fraction:P, total:N, counts:...")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--include-labeled", action="store_true", help="also put the labeled images in the unlabeled set")
    p.add_argument("--val", help="hold out a validation set of the images not labeled, e.g. per_class:5")
    p.add_argument("--out", default="split.json")
    p.set_defaults(func=_cmd_splits)

    p = sub.add_parser("demo", help="train on the embedded synthetic faces with few labels and print test accuracy")
    p.add_argument("--out-dir", default="runs/demo")
    p.add_argument("--quick", action="store_true", help="a much shorter run (smoke test)")
    p.add_argument("--methods", nargs="+", default=None, help="methods to run (default: supervised and fixmatch)")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("presets", help="list the YAML config presets")
    p.set_defaults(func=_cmd_presets)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except SemiferError as exc:
        print(f"semifer: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
