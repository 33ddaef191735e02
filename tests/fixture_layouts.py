"""Builders of tiny datasets in each real on-disk layout: real CSV text, PNG/JPG images and .npy files."""

from __future__ import annotations

import gzip
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

FER_HEADER = "emotion,pixels,Usage"
FERPLUS_HEADER = "Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF"


def write_image(path: Path, size: tuple[int, int] = (10, 12), value: int = 100) -> Path:
    """A small RGB image; the format follows the suffix (PNG, JPEG, ...)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.full((size[0], size[1], 3), value, dtype=np.uint8)
    pixels[0, 0] = (255, 0, 0)
    Image.fromarray(pixels).save(path)
    return path


def fer_pixels(row: int) -> str:
    """Deterministic 48x48 pixel text for row `row` (pixel k is (row + k) % 256)."""
    return " ".join(str((row + k) % 256) for k in range(48 * 48))


def write_fer2013(path: Path, rows: Sequence[tuple[int, str]], pixels: Mapping[int, str] | None = None) -> Path:
    """A FER2013 CSV of (emotion, Usage) rows; `pixels` overrides the pixel text of some rows.
    A `.gz` suffix writes it gzip-compressed."""
    pixels = pixels or {}
    lines = [FER_HEADER] + [f"{e},{pixels.get(i, fer_pixels(i))},{u}" for i, (e, u) in enumerate(rows)]
    text = ("\n".join(lines) + "\n").encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(text) if path.suffix == ".gz" else text)
    return path


def write_ferplus_votes(path: Path, rows: Sequence[tuple[str, str, Sequence[int]]]) -> Path:
    """fer2013new.csv lines of (Usage, Image name, ten vote counts)."""
    lines = [FERPLUS_HEADER] + [f"{u},{name}," + ",".join(map(str, votes)) for u, name, votes in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def make_ferplus(folder: Path, rows: Sequence[tuple[str, str, Sequence[int]]]) -> Path:
    """A FER+ folder: fer2013.csv.gz with one image per vote row (same Usage) and fer2013new.csv."""
    write_fer2013(folder / "fer2013.csv.gz", [(0, usage) for usage, _, _ in rows])
    write_ferplus_votes(folder / "fer2013new.csv", rows)
    return folder


def make_rafdb(root: Path, entries: Sequence[tuple[str, int]]) -> Path:
    """RAF-DB basic: label list plus both aligned and original images of each entry."""
    (root / "EmoLabel").mkdir(parents=True)
    (root / "EmoLabel" / "list_patition_label.txt").write_text("".join(f"{n} {c}\n" for n, c in entries))
    for name, _ in entries:
        write_image(root / "Image" / "aligned" / f"{Path(name).stem}_aligned.jpg", size=(16, 16))
        write_image(root / "Image" / "original" / name, size=(20, 24))
    return root


def affectnet_row(rel: str, code: int) -> str:
    return f"{rel},10,10,50,50,1.0;2.0;3.0;4.0,{code},0.5,-0.25"


def make_affectnet_original(
    root: Path, training: Sequence[tuple[str, int]], validation: Sequence[tuple[str, int]], nested: bool = True
) -> Path:
    """The original release: CSV lists (validation.csv without a header, as shipped) over image folders."""
    lists = root / "Manually_Annotated_file_lists" if nested else root
    images = root / "Manually_Annotated_Images"
    if not nested:
        images = root / "Manually_Annotated" / "Manually_Annotated_Images"
    lists.mkdir(parents=True, exist_ok=True)
    header = "subDirectory_filePath,face_x,face_y,face_width,face_height,facial_landmarks,expression,valence,arousal"
    training_rows = [affectnet_row(r, c) for r, c in training]
    (lists / "training.csv").write_text("\n".join([header, *training_rows]) + "\n")
    (lists / "validation.csv").write_text("\n".join(affectnet_row(r, c) for r, c in validation) + "\n")
    for rel, _ in [*training, *validation]:
        write_image(images / rel)
    return root


def make_affectnet_sets(root: Path, sets: Mapping[str, Sequence[int]]) -> Path:
    """The later release: `<set>/images/<n>.jpg` plus `<set>/annotations/<n>_exp.npy` (a string like '3')."""
    for folder, codes in sets.items():
        (root / folder / "annotations").mkdir(parents=True)
        for n, code in enumerate(codes):
            write_image(root / folder / "images" / f"{n}.jpg")
            np.save(root / folder / "annotations" / f"{n}_exp.npy", np.array(str(code)))
            np.save(root / folder / "annotations" / f"{n}_val.npy", np.array("0.1"))
    return root


def make_ckplus(root: Path, sequences: Sequence[tuple[str, str, int, int | None]]) -> Path:
    """CK+: (subject, sequence, frame count, emotion code or None for an unlabelled sequence)."""
    for subject, seq, frames, code in sequences:
        for k in range(1, frames + 1):
            write_image(root / "cohn-kanade-images" / subject / seq / f"{subject}_{seq}_{k:08d}.png", value=k)
        labels = root / "Emotion" / subject / seq
        labels.mkdir(parents=True)
        if code is not None:
            (labels / f"{subject}_{seq}_{frames:08d}_emotion.txt").write_text(f"   {code:.7e}\n")
    return root


def make_class_tree(root: Path, counts: Mapping[str, int], suffix: str = ".png") -> Path:
    """`<class folder>/<n><suffix>` for each folder name and image count."""
    for folder, n in counts.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        for k in range(n):
            write_image(root / folder / f"{k:03d}{suffix}")
    return root
