"""`semifer` command line: train, pretrain, probe, eval, predict, export, weights, compare, splits, demo,
presets."""

from __future__ import annotations

import argparse
import errno
import json
import sys
import warnings
import webbrowser
from pathlib import Path

from .errors import DataWarning, SemiferError
from .inference.detect import DETECTORS_HELP
from .labels import BASIC7
from .version import __version__

PRECISIONS = ("fp32", "bf16", "auto")  # runtime.precision's, named here so `semifer --help` needs no torch


def _preset(args: argparse.Namespace, default: str | None = None) -> str | None:
    """`-c`, else, for `--resume --run-dir DIR`, the run's own `DIR/config.yaml` (so a run continues without its
    settings typed again), else `default`."""
    if args.config:
        return args.config
    saved = Path(args.run_dir) / "config.yaml" if args.resume and args.run_dir else None
    return str(saved) if saved is not None and saved.is_file() else default


def _cmd_train(args: argparse.Namespace) -> None:
    from .config import load_config
    from .engine.run import train

    cfg = load_config(_preset(args), args.overrides)
    result = train(
        cfg, resume=args.resume, run_dir=Path(args.run_dir) if args.run_dir else None, overwrite=args.overwrite
    )
    if result.trainer is not None and result.trainer.rank != 0:
        return
    if result.final is not None:
        print(f"{cfg.method['name']} on {cfg.data.test}: {result.final.summary()}")
    print(f"run directory: {result.run_dir}")


def _cmd_fit(args: argparse.Namespace) -> None:
    from .api import fit

    result = fit(args.labeled, args.unlabeled, args.out_dir, args.name, args.overrides)
    print(
        f"model: {result.run_dir}  (semifer predict {result.run_dir} PHOTO; "
        f"semifer export {result.run_dir} --format onnx)"
    )


def _cmd_pretrain(args: argparse.Namespace) -> None:
    from .config import load_config
    from .engine.pretraining import pretrain
    from .runtime.distributed import is_main

    cfg = load_config(_preset(args, "pretrain_mae"), args.overrides)
    result = pretrain(
        cfg, resume=args.resume, run_dir=Path(args.run_dir) if args.run_dir else None, overwrite=args.overwrite
    )
    if not is_main():
        return
    if result.start_step:
        print(f"resumed at step {result.start_step}")
    if result.history:
        print(f"loss {result.history[-1]['train/loss']:.4f} after {result.history[-1]['step']} steps")
    print(f"run directory: {result.run_dir}")
    print(f"backbone: {result.checkpoint}  (start any method from it with model.pretrained={result.checkpoint})")


def _cmd_probe(args: argparse.Namespace) -> None:
    from .engine.run import load_faces
    from .pretrain.probes import probe
    from .tensorfile import write_atomically

    path = None if args.backbone == "random" else args.backbone
    result = probe(path, load_faces(args.train), load_faces(args.test), args.img_size, args.arch, args.k)
    print(result.summary())
    if args.out:
        write_atomically(Path(args.out), json.dumps(result.to_dict(), indent=1), "probe result")
        print(f"wrote {args.out}")


def _cmd_eval(args: argparse.Namespace) -> None:
    from .api import evaluate_with_faces
    from .engine.evaluate import plot_confusion
    from .tensorfile import write_atomically, write_error

    metrics, faces = evaluate_with_faces(args.checkpoint, args.data, not args.student, args.batch_size)
    print(f"{args.data}: {metrics.summary()}")
    if faces.dropped:
        print("  dropped while parsing: " + ", ".join(f"{k} {v}" for k, v in faces.dropped.items()))
    if args.out:
        out = Path(args.out)
        try:
            out.mkdir(parents=True, exist_ok=True)
            write_atomically(
                out / "metrics.json", json.dumps({"data": args.data, **metrics.to_dict()}, indent=1), "metrics"
            )
            plot_confusion(metrics, out / "confusion.png", title=f"{Path(args.checkpoint).name} on {args.data}")
        except OSError as exc:
            raise write_error(out, exc, "evaluation results") from None
        print(f"wrote {out / 'metrics.json'} and {out / 'confusion.png'}")


def _cmd_predict(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from .inference.files import check_batch_size, check_margin, check_threads, predict_files
    from .inference.loading import load
    from .inference.output import RowWriter, check_output
    from .inference.predictor import FACES_PER_CALL
    from .inference.sources import parse_every

    batch_size, margin, threads = (
        FACES_PER_CALL if args.batch_size is None else check_batch_size(args.batch_size),
        check_margin(args.margin),
        check_threads(args.threads),
    )
    parse_every(args.every)
    out = Path(args.out) if args.out else None
    annotate = Path(args.annotate) if args.annotate else None
    if out is not None:
        check_output(out, "--out")
    if annotate is not None:
        check_output(annotate, "--annotate", folder=True)
    model, inputs = split_model_argument(args.model, args.items)
    predictor = load(model, backend=args.backend, threads=threads, precision=args.precision)
    with RowWriter(out, predictor.classes) as writer:
        report = predict_files(
            predictor,
            inputs,
            args.detect,
            args.every,
            batch_size,
            margin,
            annotate,
            on_error=lambda line: tqdm.write(f"semifer: error: {line}", file=sys.stderr),
            on_rows=writer.write,
        )
    summary = f"{report.faces} faces in {report.frames} images/frames of {report.files} files"
    if report.without_faces:
        summary += (
            f"; no face found in {report.without_faces} images/frames (if they are face crops, use --detect none)"
        )
    if report.errors:
        summary += f"; {len(report.errors)} unreadable (listed above)"
    if report.not_regular:
        summary += f"; {report.not_regular} skipped: not regular files (FIFOs, sockets or devices)"
    sys.stdout.flush()  # the rows on stdout before the summary on stderr, in a terminal too
    print(summary + (f" -> {out}" if out else ""), file=sys.stdout if out else sys.stderr)
    return 1 if report.errors else 0


def split_model_argument(model: str | None, items: list[str]) -> tuple[str | None, list[str]]:
    """`predict [MODEL] INPUT...`: the first item is the model when it names one (a built-in, a run, an
    export, a model file) and inputs follow; otherwise every item is an input for the built-in classifier."""
    from .inference.loading import looks_like_model

    if model is None and items and looks_like_model(items[0]):
        model, items = items[0], items[1:]
    if not items:
        raise SemiferError(
            f"no input images, folders or videos after the model {model}; e.g. "
            f"`semifer predict {model} photo.jpg` (or `semifer predict photo.jpg` for the built-in "
            "classifier)"
        )
    return model, items


def _cmd_select(args: argparse.Namespace) -> None:
    from .inference.selecting import select_faces

    result = select_faces(
        args.pool, args.budget, args.strategy, args.out, args.backbone, args.seed, args.labeled, model=args.model
    )
    skipped = f"; {result.unreadable} unreadable files skipped" if result.unreadable else ""
    print(
        f"{len(result.rows)} of {result.pool} faces chosen by {args.strategy}{skipped} -> {result.csv} and "
        f"{result.folder}"
    )


def _cmd_label(args: argparse.Namespace) -> None:
    from .labeling.server import LabelServer
    from .labeling.store import LabelStore

    store = LabelStore(args.faces, args.out, args.classes.split(","))
    server = LabelServer(store, args.port)
    skipped = f" ({store.unreadable} unreadable files skipped)" if store.unreadable else ""
    print(f"labeling {len(store.faces)} faces{skipped} at {server.url}  (Ctrl-C to stop; every label is saved)")
    print(f"labels -> {store.csv_path} and the class folders under {store.out}", flush=True)
    if args.open:
        webbrowser.open(server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    given = len(store.labels())
    print(f"{given} of {len(store.faces)} faces labeled; train on them: semifer fit {store.out} --unlabeled POOL")


def _cmd_weights(args: argparse.Namespace) -> None:
    from .weights import list_weights

    shown = list_weights()
    if args.json:
        print(
            json.dumps(
                [
                    {"name": w.name, "size_bytes": w.size_bytes(), "arch": w.arch, **w.card, "files": w.files}
                    for w in shown
                ],
                indent=1,
            )
        )
        return
    for w in shown:
        card = w.card
        print(f"{w.name}  ({card.get('kind')}, {w.arch}, {w.size_bytes() / 1e6:.1f} MB)  {card.get('summary', '')}")
        for key in ("data", "method"):
            print(f"  {key}: {card.get(key, 'n/a')}")
        for what, value in card.get("accuracy", {}).items():
            print(f"  accuracy: {100 * value:.2f} % ({what})")
        print(f"  licence: {card.get('licence', 'n/a')}")
        print(f"  rebuild: {card.get('command', 'n/a')}")


def _cmd_export(args: argparse.Namespace) -> None:
    from .inference.export import export_model

    result = export_model(
        args.run,
        args.format,
        args.out,
        args.eval,
        use_ema=not args.student,
        flip_average=args.flip_average,
        precision=args.precision,
    )
    if result.max_abs_diff is not None:
        print(f"onnxruntime vs PyTorch: max |logit difference| {result.max_abs_diff:.2e}")
    print("wrote " + ", ".join(str(f) for f in result.files))


def _cmd_compare(args: argparse.Namespace) -> None:
    from .report.compare import compare_runs

    path = compare_runs([Path(r) for r in args.runs], Path(args.out), args.title)
    print(f"wrote {path}")


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

    run_demo(out_dir=args.out_dir, quick=args.quick, methods=args.methods, overrides=(f"seed={args.seed}",))


def _cmd_presets(args: argparse.Namespace) -> None:
    from .config import preset_description, preset_names

    names = preset_names()
    width = max(map(len, names))
    print("\n".join(f"{name:<{width}}  {preset_description(name)}" for name in names))


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def add_run_options(p: argparse.ArgumentParser) -> None:
    """The run-directory options `train` and `pretrain` share."""
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --run-dir (or out_dir/name); without -c, with --run-dir's own settings",
    )
    p.add_argument("--run-dir", help="run directory (default: out_dir/name, made unique)")
    p.add_argument("--overwrite", action="store_true", help="delete the run already in --run-dir and start over")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="semifer", description="Semi-supervised facial expression recognition.")
    parser.add_argument("--version", action="version", version=f"semifer {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("train", help="train a method (supervised, ...) from a preset plus overrides")
    p.add_argument("--config", "-c", help="preset name (see `semifer presets`) or YAML file")
    add_run_options(p)
    p.add_argument("overrides", nargs="*", help="dotted KEY=VALUE overrides, e.g. train.epochs=5 data.split=adacm:400")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser(
        "fit",
        help="train on your own faces: a labeled class-folder tree (+ unlabeled faces), "
        "from the built-in face representation",
    )
    p.add_argument("labeled", help="folder with one sub-folder per expression (happy/, sad/, ...) of face images")
    p.add_argument("--unlabeled", help="folder of unlabeled face images (adds the semi-supervised stage)")
    p.add_argument("--out-dir", default="runs")
    p.add_argument("--name", default="my-faces", help="run name: OUT_DIR/NAME-stage1, then OUT_DIR/NAME")
    p.add_argument("overrides", nargs="*", help="KEY=VALUE overrides for both stages, e.g. train.epochs=10")
    p.set_defaults(func=_cmd_fit)

    p = sub.add_parser("pretrain", help="pretrain a backbone on unlabeled faces (masked reconstruction or SimCLR)")
    p.add_argument("--config", "-c", help="preset name or YAML file (default pretrain_mae, MAE's recipe)")
    add_run_options(p)
    p.add_argument(
        "overrides",
        nargs="*",
        help="dotted KEY=VALUE overrides, e.g. pretrain.method=simclr data.train=unlabeled:/faces",
    )
    p.set_defaults(func=_cmd_pretrain)

    p = sub.add_parser("probe", help="k-NN and linear-probe accuracy of a frozen (pretrained) backbone")
    p.add_argument("backbone", help="backbone file (runs/NAME/backbone.safetensors), or 'random' for a random init")
    p.add_argument("--train", required=True, help="labeled probe-train spec (its labels are used by the probe only)")
    p.add_argument("--test", required=True, help="labeled test spec, e.g. fer2013:FILE?split=PublicTest")
    p.add_argument("--arch", help="backbone architecture (default: the one the file records)")
    p.add_argument("--img-size", type=int, default=48)
    p.add_argument("--k", type=int, default=20, help="neighbours of the k-NN probe")
    p.add_argument("--out", help="write the result as JSON")
    p.set_defaults(func=_cmd_probe)

    p = sub.add_parser("eval", help="evaluate a checkpoint on a dataset (in-domain or cross-dataset)")
    p.add_argument("checkpoint", help="run directory, checkpoint file or safetensors export")
    p.add_argument(
        "--data",
        required=True,
        help="labelled dataset spec, e.g. folder:/data/CK+48 or "
        "fer2013:FILE?split=test (for unlabelled images use `semifer predict`)",
    )
    p.add_argument("--student", action="store_true", help="use the student weights instead of the EMA")
    p.add_argument("--batch-size", type=_positive_int, default=256)
    p.add_argument("--out", help="folder to write metrics.json and confusion.png")
    p.set_defaults(func=_cmd_eval)

    p = sub.add_parser(
        "predict",
        help="expression of every face in images, folders or videos (one row per face)",
        usage="semifer predict [MODEL] INPUT [INPUT ...] [options]",
    )
    p.add_argument(
        "items",
        nargs="+",
        metavar="INPUT",
        help="image files, folders (recursive) or videos, optionally after a model (run directory, "
        "checkpoint, exported folder, .onnx file or built-in name; default: the built-in "
        "expression classifier)",
    )
    p.add_argument("--model", help="the model, when the first INPUT could be mistaken for one")
    p.add_argument("--out", help="write the rows to this .csv or .json file (default: CSV on stdout)")
    p.add_argument("--annotate", metavar="DIR", help="write every image/frame with boxes and labels drawn here")
    p.add_argument("--detect", default="auto", help=f"face detector: {DETECTORS_HELP}")
    p.add_argument("--every", default="1s", help="video sampling: every N frames (10) or seconds (0.5s)")
    p.add_argument(
        "--margin",
        default=None,
        help="context added on each side of a face box, x its side (default: the detector's, "
        "0.015 for haar, which then frames faces as FER2013's crops are)",
    )
    p.add_argument("--batch-size", help="faces per network call (default 64)")
    p.add_argument(
        "--backend",
        default="auto",
        choices=("auto", "torch", "onnx"),
        help="auto: PyTorch weights when present, else the ONNX graph",
    )
    p.add_argument("--threads", default=0, help="onnxruntime threads (0: its default)")
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        help="PyTorch backend: fp32, bf16, or auto (bf16 where the CPU/GPU computes it natively: about 2x the "
        "faces/s on CPUs with AVX-512 BF16 or AMX); default: the model's own, as `semifer eval` scores it",
    )
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser("export", help="a run or built-in model as safetensors + model.json or ONNX, with a card")
    p.add_argument("run", help="run directory, checkpoint or built-in name (`semifer weights`)")
    p.add_argument("--format", required=True, choices=("onnx", "safetensors"))
    p.add_argument("--out", help="output folder (default: RUN/export, or NAME-export for a built-in)")
    p.add_argument(
        "--eval",
        nargs="*",
        default=[],
        metavar="DIR",
        help="`semifer eval --out` folders to report in the model card (RUN/*/ is searched anyway)",
    )
    p.add_argument("--student", action="store_true", help="export the student weights instead of the EMA")
    p.add_argument(
        "--flip-average",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="answers average each face and its mirror image: more accurate, half the faces/s "
        "(default: as the source; --no-flip-average turns off the built-in classifier's)",
    )
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        help="what the export's PyTorch answers are computed in, for `semifer predict` and `semifer eval` "
        "(auto: bf16 where the hardware computes it natively; default: as the source, fp32 for a run)",
    )
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("select", help="choose which faces of an unlabeled pool to label, from a face representation")
    p.add_argument(
        "pool",
        help="a folder of face images, a CSV or text list of image files, or any dataset spec (labels are not read)",
    )
    p.add_argument("--budget", type=int, required=True, help="how many faces to choose")
    p.add_argument(
        "--strategy",
        default="random",
        choices=("random", "typiclust", "kcenter", "margin", "entropy"),
        help="random (default: the best measured on FER2013, see BENCHMARKS.md), typiclust or kcenter; a later "
        "round with --model: margin or entropy (the model's least sure face in each cluster of the embedding)",
    )
    p.add_argument("--model", help="a trained run, export or built-in name whose uncertainty margin/entropy use")
    p.add_argument("--out", default="to-label", help="folder for selected.csv and faces/ (default: to-label)")
    p.add_argument("--backbone", default="face-simclr-small", help="representation: a built-in name or a file")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--labeled", help="selected.csv of an earlier round: those faces count as chosen already")
    p.set_defaults(func=_cmd_select)

    p = sub.add_parser("label", help="label faces in a local web page (keyboard: 1-9, Backspace undoes)")
    p.add_argument("faces", help="a folder of face images, such as the faces/ folder `semifer select` writes")
    p.add_argument("--out", default="labeled", help="class-folder tree and labels.csv to write (default: labeled)")
    p.add_argument(
        "--classes",
        default=",".join(BASIC7),
        help=f"comma-separated expression classes, keys 1, 2, ... in this order (default: {','.join(BASIC7)})",
    )
    p.add_argument("--port", type=int, default=8765, help="port on 127.0.0.1 (default: 8765; 0: any free port)")
    p.add_argument("--open", action="store_true", help="open the page in the default browser")
    p.set_defaults(func=_cmd_label)

    p = sub.add_parser("weights", help="the built-in weights: face representation and expression classifier")
    p.add_argument("--json", action="store_true", help="print the list as JSON")
    p.set_defaults(func=_cmd_weights)

    p = sub.add_parser("compare", help="per-epoch comparison figure of several runs")
    p.add_argument("runs", nargs="+", metavar="RUN", help="run directories (each with metrics.jsonl)")
    p.add_argument("--out", default="comparison.png")
    p.add_argument("--title", default="")
    p.set_defaults(func=_cmd_compare)

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
    p.add_argument("--seed", type=int, default=0, help="labels, initialisation and data order (default 0)")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("presets", help="list the YAML config presets")
    p.set_defaults(func=_cmd_presets)
    return parser


def _show_warning(message: Warning | str, category: type[Warning], *args: object, **kwargs: object) -> None:
    """Data warnings as one line, like errors; others as Python shows them."""
    if issubclass(category, DataWarning):
        print(f"semifer: warning: {message}", file=sys.stderr)
    else:
        _python_show_warning(message, category, *args, **kwargs)  # type: ignore[arg-type]


_python_show_warning = warnings.showwarning


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line; KEY=VALUE overrides may also follow options (`fit DIR --unlabeled U train.epochs=5`),
    which argparse alone rejects once a command's positionals were read."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
        args.overrides = [*(args.overrides or []), *extra]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    """The command, with semifer's errors (and a full disk) reported as one message and exit status 2."""
    try:
        return args.func(args) or 0
    except SemiferError as exc:
        print(f"semifer: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
        print(
            f"semifer: error: disk full ({exc.filename or 'writing the run'}); free space and retry "
            "(a training run continues with --resume)",
            file=sys.stderr,
        )
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
