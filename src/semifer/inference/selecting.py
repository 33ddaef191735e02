"""`semifer select`: embed an unlabeled pool with a face representation, choose the faces to label
(`semifer.selection`), and write them as `selected.csv` plus a folder of the chosen faces to label."""

from __future__ import annotations

import csv
import shutil
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image

from ..data.faceset import FaceSet, read_image
from ..data.registry import load_dataset
from ..errors import DataError, SemiferError
from ..models import frozen_model
from ..selection import UNCERTAINTY, select, select_uncertain
from .batch import features
from .loading import load

CSV_NAME = "selected.csv"
FACES = "faces"


@dataclass
class SelectResult:
    rows: list[dict[str, str]]
    pool: int
    unreadable: int
    csv: Path
    folder: Path


LIST_SUFFIXES = (".csv", ".txt")


def open_pool(pool: str) -> FaceSet:
    """A folder of images (as `unlabeled:`), a CSV or text list of image files (as `list:`), or any dataset
    spec, labels dropped."""
    path = Path(pool)
    if path.is_dir():
        spec = f"unlabeled:{pool}"
    elif path.is_file() and path.suffix.lower() in LIST_SUFFIXES:
        spec = f"list:{pool}"
    else:
        spec = pool
    return load_dataset(spec).require_nonempty().without_labels()


def readable(faces: FaceSet) -> tuple[FaceSet, int]:
    """The faces whose files decode (all of them for in-memory datasets) and how many did not."""
    if faces.paths is None:
        return faces, 0
    keep = []
    for i, path in enumerate(faces.paths):
        try:
            read_image(path)
            keep.append(i)
        except DataError:
            continue
    return faces.subset(keep), len(faces) - len(keep)


def earlier_ids(path: str | None) -> list[str]:
    if path is None:
        return []
    try:
        with open(path, newline="") as handle:
            return [row["id"] for row in csv.DictReader(handle)]
    except (OSError, KeyError, csv.Error) as exc:
        raise SemiferError(f"{path}: not a selected.csv written by `semifer select` ({exc})") from None


def model_probabilities(model: str, faces: FaceSet, batch: int = 256) -> np.ndarray:
    """The trained model's class probabilities for every face of the pool, a batch of decoded faces at a time."""
    predictor = load(model)
    parts = [np.zeros((0, len(predictor.classes)), dtype=np.float32)]
    for start in range(0, len(faces), batch):
        crops = [faces.load(i).permute(1, 2, 0).numpy() for i in range(start, min(start + batch, len(faces)))]
        parts.append(predictor.probabilities(crops))
    return np.concatenate(parts)


def file_stem(sample_id: str) -> str:
    """A file name from a pool id, its folders kept (`a/1.jpg` -> `a--1.jpg`): ids are unique in the pool and a
    face is chosen once, so the names of every round differ and rounds can be labeled into one tree."""
    parts = [part for part in PurePosixPath(sample_id).parts if part not in ("/", ".", "..")]
    return "--".join(parts) or "face"


def select_faces(
    pool: str,
    budget: int,
    strategy: str = "random",
    out: str | Path = "to-label",
    backbone: str = "face-simclr-small",
    seed: int = 0,
    labeled: str | None = None,
    img_size: int = 48,
    model: str | None = None,
) -> SelectResult:
    """Choose `budget` faces of `pool` by `strategy` on the `backbone` embedding (at `img_size` px); faces of
    an earlier round's `labeled` selected.csv count as chosen already. `margin` / `entropy` also need `model`
    (a trained run, export or built-in name), whose uncertainty picks within the embedding's clusters. Writes
    OUT/selected.csv and OUT/faces/."""
    if strategy in UNCERTAINTY and model is None:
        raise SemiferError(
            f"--strategy {strategy} ranks faces by a trained model's uncertainty; pass --model RUN "
            "(a `semifer fit` / `semifer train` run), or choose random, typiclust or kcenter for a first round"
        )
    faces, unreadable = readable(open_pool(pool))
    if not len(faces):
        raise DataError(pool, "no readable face image in the pool", fix="point it at a folder of face images")
    position = {sid: i for i, sid in enumerate(faces.ids)}
    already = [position[s] for s in earlier_ids(labeled) if s in position]
    embedding = features(frozen_model(backbone).eval(), faces, img_size, progress=False)
    if strategy in UNCERTAINTY:
        probabilities = model_probabilities(str(model), faces)
        chosen = select_uncertain(np.asarray(embedding), probabilities, budget, strategy, seed, already)
    else:
        chosen = select(np.asarray(embedding), budget, strategy, seed, already)
    out = Path(out)
    folder = out / FACES
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for rank, (index, cluster) in enumerate(zip(chosen.indices, chosen.clusters, strict=True)):
        sid = faces.ids[index]
        name = f"{rank:04d}_{file_stem(sid)}"
        target = folder / (name if faces.paths is not None else f"{name}.png")
        if faces.paths is not None:
            shutil.copyfile(faces.paths[index], target)
        else:
            Image.fromarray(np.asarray(faces.pixels[index])).save(target)
        rows.append({"rank": str(rank), "id": sid, "file": target.name, "cluster": str(cluster)})
    with open(out / CSV_NAME, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["rank", "id", "file", "cluster"])
        writer.writeheader()
        writer.writerows(rows)
    return SelectResult(rows, len(faces), unreadable, out / CSV_NAME, folder)
