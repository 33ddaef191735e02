"""Package a trained run as the built-in expression classifier, with its model card, accuracy and speed.

    SEMIFER_DATA=DIR python -m benchmarks.accuracy.builtin_classifier RUN [RUN ...] [--preset expression_fer2013]
        [--precision fp32|bf16|auto] [--min-speed 1000] [--keep-earlier]

Each RUN is a `semifer train -c PRESET` run, with or without overrides (each candidate's are read from its
config.yaml and recorded, so the card's commands rebuild the packaged one, its distillation teachers first; a
teacher that is the built-in classifier is rebuilt from its own card).
Candidates are ranked by the validation accuracy of the answer each would ship, computed in `--precision`:
averaged over each face and its mirror image (`ModelInfo.flip_average`) when that raises its validation accuracy
and keeps at least `--min-speed` face crops/s, its network's own answer otherwise; a candidate slower than that
even so is not ranked. The first is packaged, so the test set chooses nothing; its PublicTest metrics are then
measured as it predicts. `--keep-earlier` ranks the candidates saved by earlier runs of this script too (their
runs may be gone): if the packaged one still ranks first, the package stays as it is.
Packaging writes `src/semifer/weights/NAME/` (model.safetensors, model.json with the weights' sha256, its
precision and the `builtin` description, MODEL_CARD.md), measures crops/s of `semifer.load(NAME)` on FER2013
PublicTest faces (its own precision, the threads torch has), and records every candidate in
`benchmarks/out/builtin_classifier.json` and the "Built-in models" section of BENCHMARKS.md.
"""

from __future__ import annotations

import functools
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

import semifer
from benchmarks.common import (
    ROOT,
    command,
    fer2013_spec,
    load_json,
    machine,
    parser,
    rows_header,
    save_json,
    write_section,
)
from semifer.config import load_config
from semifer.data import load_dataset
from semifer.data.faceset import FaceSet
from semifer.data.splits import Split, validation_part
from semifer.engine.evaluate import evaluate
from semifer.inference.export import export_model
from semifer.inference.model_card import write_model_card
from semifer.methods import resolve_method
from semifer.models import FlipAverage, load_model
from semifer.models.model_info import ModelInfo
from semifer.runtime.precision import PRECISIONS, answer_dtype, autocast
from semifer.weights import CLASSIFIER, MODEL_JSON, get_weights, is_builtin

IGNORED = {"name", "out_dir", "data.root"}  # where a run wrote and read, not what it trained
LICENCE = (
    "weights: MIT, as semifer; trained on FER2013, which its publishers release for research use only, so "
    "use them for research"
)


def flat(blob: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in blob.items():
        if isinstance(value, dict) and key != "method":
            out.update(flat(value, f"{prefix}{key}."))
        elif isinstance(value, dict):
            out.update({f"method.{k}": v for k, v in value.items()})
        else:
            out[f"{prefix}{key}"] = value
    return out


def recipe_overrides(run: Path, preset: str) -> list[str]:
    """The KEY=VALUE overrides that turn `preset` into the run's configuration (data paths compared by the
    file name they end in, so a run given absolute paths matches the preset's root-relative ones)."""
    ran_cfg = load_config(str(run / "config.yaml"))
    teachers = ran_cfg.method.get("teachers")  # required by distillation's options, compared below as a change
    given = [f"method.teachers=[{', '.join(teachers)}]"] if teachers else []
    wanted_cfg = load_config(preset, [f"method.name={ran_cfg.method['name']}", *given])
    resolve_method(wanted_cfg.method).fill(wanted_cfg)  # the head and mu the run's method fills in, as the run did
    wanted_cfg.method.pop("teachers", None)
    ran, wanted = flat(ran_cfg.to_dict()), flat(wanted_cfg.to_dict())
    same_file = {"data.train", "data.test"}
    method = ran_cfg.method["name"]
    diff = [f"method.name={method}"] if method != load_config(preset).method["name"] else []
    for key in sorted(set(ran) | set(wanted)):
        have, want = ran.get(key), wanted.get(key)
        if key in IGNORED or have == want:
            continue
        if key in same_file and str(have).endswith(str(want).split(":", 1)[1]):
            continue
        if key == "model.pretrained" and is_builtin_representation(have):
            continue  # the built-in representation's file, as it was before it was packaged
        if key == "model.pretrained" and have is None:
            have = "none"  # a random initialisation, as the option is written
        if key == "method.teachers":
            have = "[" + ", ".join(f"runs/{Path(t).name}" for t in have) + "]"  # as rebuild_commands names them
        diff.append(f"{key}={have}")
    return diff


def is_builtin_representation(pretrained: object) -> bool:
    """Whether `model.pretrained` names the built-in face representation (or its file before it was packaged)."""
    return str(pretrained) == "face-simclr-small" or Path(str(pretrained)).name.startswith("simclr-prog-2")


def start_of(run: Path) -> str:
    """Where `run`'s network started, in words."""
    pretrained = load_config(str(run / "config.yaml")).model.pretrained
    if is_builtin_representation(pretrained):
        return "the built-in face representation"
    return "scratch" if pretrained is None else Path(pretrained).name  # the config reads `none` as None


def rebuild_commands(run: Path, preset: str) -> list[str]:
    """The commands that rebuild `run`: its distillation teachers' (each named as its run, once), then its own. A
    teacher that names a built-in classifier is rebuilt by the commands on its card."""
    if not run.exists() and is_builtin(run):
        card = get_weights(str(run), "classifier").card["command"].splitlines()
        return [line for line in card if not line.startswith("semifer export")]
    overrides = recipe_overrides(run, preset)
    commands: list[str] = []
    for teacher in [Path(t) for t in load_config(str(run / "config.yaml")).method.get("teachers", [])]:
        *before, own = rebuild_commands(teacher, preset)
        commands += [c for c in [*before, f"{own} name={teacher.name}"] if c not in commands]
    quoted = [f"'{o}'" if " " in o else o for o in overrides]
    return [*commands, " ".join(["semifer train -c", preset, *quoted])]


def last_epoch(run: Path) -> dict[str, Any]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return rows[-1]


REPEATS = 7
"""Timed passes over the crops per speed figure; their median keeps machine noise out of the model card."""


@functools.cache
def fer2013(split: str) -> FaceSet:
    """One FER2013 split, read once for every candidate."""
    return load_dataset(fer2013_spec(split))


def crops_per_second(name: str, repeats: int = REPEATS, n: int = 2048) -> float:
    """Median faces/s of `Predictor.probabilities` on `n` PublicTest crops, in the model's own precision."""
    crops = [np.repeat(p[..., None], 3, axis=2) if p.ndim == 2 else p for p in fer2013("PublicTest").pixels[:n]]
    model = semifer.load(name)
    model.probabilities(crops[:256])
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        model.probabilities(crops)
        rates.append(len(crops) / (time.perf_counter() - started))
    return statistics.median(rates)


def validation_with_and_without_flip(run: Path, precision: str) -> tuple[float, float]:
    """The run's EMA network on its own validation split, answering in `precision`: accuracy as trained, and
    with the mirror average."""
    model, info = load_model(run, device="cpu")
    faces = validation_part(fer2013("Training"), Split.load(run / "split.json"), str(run / "split.json"))
    if faces is None:
        raise SystemExit(f"{run}: its split has no validation faces to choose the mirror average on")
    cpu = torch.device("cpu")
    with autocast(cpu, answer_dtype(cpu, precision)):
        return tuple(
            evaluate(net, faces, info.img_size, cpu, progress=False).accuracy for net in (model, FlipAverage(model))
        )


def shipped_answer(run: Path, min_speed: float, precision: str) -> dict[str, Any]:
    """How `run` would ship and its validation accuracy so, both answers in `precision` and timed on the run
    exported so: with the mirror average where that raises validation accuracy and keeps `min_speed` face
    crops/s, as trained otherwise; a run slower than `min_speed` even so does not ship (no accuracy)."""
    plain, flipped = validation_with_and_without_flip(run, precision)
    speeds = {}
    for flip in (False, True) if flipped > plain else (False,):
        with tempfile.TemporaryDirectory() as folder:
            export_model(run, "safetensors", Path(folder), flip_average=flip, precision=precision)
            speeds[flip] = crops_per_second(folder)
    flip = speeds.get(True, 0.0) >= min_speed
    return {
        "val_accuracy_flipped": flipped,
        "crops_per_s": speeds[False],
        "flip_crops_per_s": speeds.get(True),
        "flip_average": flip,
        "precision": precision,
        "shipped_val_accuracy": (flipped if flip else plain) if speeds[False] >= min_speed else None,
    }


def method_summary(run: Path) -> str:
    """The method, its options and the schedule of `run`, in one line."""
    ran = load_config(str(run / "config.yaml"))
    options = {k: v for k, v in ran.method.items() if k not in ("name", "teachers")}
    teachers = ran.method.get("teachers", [])
    ensemble = f"an ensemble of {len(teachers)} fine-tuned teachers" if len(teachers) > 1 else "one fine-tuned teacher"
    what = ran.method["name"] + (f" from {ensemble}" if teachers else "")
    shown = ", ".join(f"{k} {v}" for k, v in options.items())
    t = ran.train
    return (
        f"{what}{f' ({shown})' if shown else ''}, from {start_of(run)}; {t.epochs} x {t.iters_per_epoch} "
        f"steps of {t.batch_size} faces, {t.optimizer.upper()} {t.lr} {t.schedule}, EMA {t.ema}"
    )


def package(run: Path, preset: str, name: str, commands: list[str], flip: bool, precision: str) -> dict[str, Any]:
    folder = ROOT / "src" / "semifer" / "weights" / name
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.iterdir():
        old.unlink()
    export_model(run, "safetensors", folder, flip_average=flip, precision=precision)
    info = ModelInfo.load(folder / MODEL_JSON)
    info.metrics = semifer.evaluate(folder, fer2013_spec("PublicTest"), device="cpu", progress=False).to_dict()
    cfg = load_config(preset)
    flags = (" --flip-average" if flip else "") + (f" --precision {precision}" if precision != "fp32" else "")
    if flags:
        commands = [*commands, f"semifer export runs/{cfg.name} --format safetensors{flags}"]
    info.data.update({"train": cfg.data.train, "test": cfg.data.test})
    info.source = ""
    if "teachers" in info.method:  # named as the rebuild commands name them, not where they ran
        info.method["teachers"] = [f"runs/{Path(t).name}" for t in info.method["teachers"]]
    metrics = info.metrics or {}
    info.builtin = {
        "name": name,
        "kind": "classifier",
        "summary": f"7-class expression classifier, {info.arch} at {info.img_size} px grey faces, trained from "
        f"{start_of(run)}" + (", answers averaged over each face and its mirror image" if flip else ""),
        "data": f"FER2013 Training, {info.data.get('labeled')} labeled faces ({info.data.get('split')}; "
        f"{len(json.loads((run / 'split.json').read_text()).get('validation', []))} more held out for "
        "validation); tested on PublicTest (3,589 faces)",
        "method": method_summary(run),
        "accuracy": {
            "FER2013 PublicTest": metrics.get("accuracy"),
            "FER2013 PublicTest, mean per-class": metrics.get("mean_class_accuracy"),
        },
        "licence": LICENCE,
        "command": "\n".join(commands),
    }
    info.save(folder / MODEL_JSON)
    rate = crops_per_second(name)
    threads = machine()["torch_threads"]
    info.builtin["speed"] = f"{rate:.0f} face crops/s ({served(precision)}, PyTorch, {threads} CPU threads)"
    info.save(folder / MODEL_JSON)
    write_model_card(info, folder / "MODEL_CARD.md")
    return {
        "crops_per_s": rate,
        "accuracy": metrics.get("accuracy"),
        "mean_class_accuracy": metrics.get("mean_class_accuracy"),
        "macro_f1": metrics.get("macro_f1"),
        "per_class_accuracy": metrics.get("per_class_accuracy"),
        "bytes": sum(p.stat().st_size for p in folder.iterdir()),
        "served": served(precision),
    }


def served(precision: str) -> str:
    """What a model of `precision` computes in on this machine's CPU."""
    return "bf16" if answer_dtype(torch.device("cpu"), precision) else "fp32"


def main() -> None:
    cli = parser(__doc__)
    cli.add_argument("runs", nargs="*", type=Path, help="candidate runs (trained with --preset)")
    cli.add_argument("--preset", default="expression_fer2013")
    cli.add_argument("--name", default=CLASSIFIER)
    cli.add_argument("--min-speed", type=float, default=1000.0, help="face crops/s the shipped answer must keep")
    cli.add_argument(
        "--precision",
        default="fp32",
        choices=PRECISIONS,
        help="what the candidates answer in, for validation, speed and the package (auto: bf16 where native)",
    )
    cli.add_argument(
        "--keep-earlier",
        action="store_true",
        help="rank the saved candidates not given as RUNs too (as measured then); the packaged one stays "
        "packaged if it still ranks first",
    )
    args = cli.parse_args()
    if args.report_only:
        report(load_json("builtin_classifier"))
        return
    saved = load_json("builtin_classifier", {"candidates": []})
    here = machine()
    candidates = []
    for run in args.runs:
        last = last_epoch(run)
        candidates.append(
            {
                "run": run.name,
                "overrides": recipe_overrides(run, args.preset),
                "epochs": last["epoch"],
                "val_accuracy": last["val"]["accuracy"],
                "test_accuracy": last["test"]["accuracy"],
                **shipped_answer(run, args.min_speed, args.precision),
                "machine": here,
            }
        )
    given = {c["run"] for c in candidates}
    earlier = [
        {"machine": saved["machine"], **c} for c in saved["candidates"] if args.keep_earlier and c["run"] not in given
    ]
    ranked = [c for c in earlier + candidates if c["shipped_val_accuracy"] is not None]
    if not ranked:
        raise SystemExit(f"no candidate keeps {args.min_speed:.0f} face crops/s; try --precision auto")
    best = max(ranked, key=lambda c: c["shipped_val_accuracy"])
    if best["run"] in given:
        run = args.runs[[r.name for r in args.runs].index(best["run"])]
        flip, commands = best["flip_average"], rebuild_commands(run, args.preset)  # before a built-in teacher goes
        packaged = package(run, args.preset, args.name, commands, flip, args.precision)
        if packaged["crops_per_s"] < args.min_speed:  # slower as packaged than when it was ranked
            flip, packaged = False, package(run, args.preset, args.name, commands, False, args.precision)
        packaged.update(flip_average=flip, min_speed=args.min_speed, precision=args.precision)
    elif best["run"] == saved.get("chosen"):
        packaged = saved["packaged"]  # still the best: the package stays as it is
    else:
        raise SystemExit(f"{best['run']} ranks first but is neither given nor packaged; give its run")
    blob = {
        "machine": here,
        "commands": [*(saved.get("commands", [saved.get("command")]) if earlier else []), command()],
        "preset": args.preset,
        "name": args.name,
        "candidates": earlier + candidates,
        "chosen": best["run"],
        "packaged": packaged,
    }
    save_json("builtin_classifier", blob)
    report(blob)


def shipped_cell(c: dict[str, Any]) -> str:
    """A candidate's shipped answer as the table shows it: validation accuracy, mirrored or plain, precision."""
    if c["shipped_val_accuracy"] is None:
        return "slower than the floor"
    precision = c.get("precision", "fp32")
    form = "mirrored" if c["flip_average"] else "plain"
    return f"{100 * c['shipped_val_accuracy']:.2f}% {form}" + (f", {precision}" if precision != "fp32" else "")


def report(blob: dict[str, Any]) -> None:
    packaged = blob["packaged"]
    lines = [
        "### Built-in expression classifier",
        "",
        f"`{blob['name']}`: `semifer.load()` and `semifer predict PHOTO` use it. Trained by `semifer train -c "
        f"{blob['preset']}` with each candidate's overrides (FER2013 Training less 5 % held out for validation; "
        "the preset starts from the built-in face representation). Each candidate is ranked by the validation "
        "accuracy of the answer it would ship: with the mirror average (each face and its mirror image, two "
        f"forward passes) where that raises validation accuracy and keeps {packaged['min_speed']:.0f} face "
        "crops/s, its network's own otherwise (a candidate slower than that even so is not shipped), computed in "
        "the row's precision (fp32 unless named; auto = bf16 where the CPU computes it natively); the first is "
        "packaged (the test set chose nothing). Speeds are those of the row's machine.",
        rows_header([c.get("machine", blob["machine"]) for c in blob["candidates"]]),
        "",
        "| candidate | overrides | validation | plain (crops/s) | with the mirror average (crops/s) | shipped answer "
        "| PublicTest, plain | packaged |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in blob["candidates"]:
        speed = f" ({c['flip_crops_per_s']:.0f})" if c["flip_crops_per_s"] is not None else ""
        plain_speed = f"{c['crops_per_s']:.0f}" if c.get("crops_per_s") is not None else "-"
        lines.append(
            f"| {c['run']} | {' '.join(c['overrides']) or '(the preset)'} | {100 * c['val_accuracy']:.2f}% | "
            f"{plain_speed} | {100 * c['val_accuracy_flipped']:.2f}%{speed} | {shipped_cell(c)} | "
            f"{100 * c['test_accuracy']:.2f}% | {'yes' if c['run'] == blob['chosen'] else ''} |"
        )
    commands = ", ".join(f"`{c}`" for c in blob.get("commands", [blob.get("command")]))
    per_class = ", ".join(f"{k} {100 * v:.1f}%" for k, v in (packaged.get("per_class_accuracy") or {}).items())
    lines += [
        "",
        f"Packaged: {blob['chosen']}, {'with' if packaged['flip_average'] else 'without'} the mirror average. "
        f"PublicTest accuracy **{100 * packaged['accuracy']:.2f} %** (mean per-class "
        f"{100 * packaged['mean_class_accuracy']:.2f} %, macro-F1 {100 * packaged['macro_f1']:.2f} %); "
        f"per class: {per_class}. Speed: **{packaged['crops_per_s']:.0f} face crops/s** "
        f"({packaged.get('served', 'fp32')}, "
        f"`semifer.load().probabilities` on 2,048 PublicTest crops, median of {REPEATS}); files "
        f"{packaged['bytes'] / 1e6:.2f} MB.",
        "",
        f"Commands: {commands}. Raw numbers: `benchmarks/out/builtin_classifier.json`; the card: "
        f"`src/semifer/weights/{blob['name']}/MODEL_CARD.md`.",
    ]
    write_section("builtin_classifier", "\n".join(lines))


if __name__ == "__main__":
    main()
