"""Labeled / unlabeled splits: stratified, seeded, saved as JSON so every method sees the same labels.

Protocols (the `protocol` string):
    all               every sample labeled (the supervised upper bound)
    adacm:N           Ada-CM's RAF-DB counts: N = 100/400/1000/2000/4000 -> fear 10/40/100/200/250 and
                      every other class 15/60/150/300/625
    per_class:K       K labels per class
    fraction:P        per class max(1, round(P * n_c)) (Bridging the Gaps' protocol, P in (0, 1])
    total:N           N labels, stratified in proportion to the class frequencies
    counts:a=1,b=2    explicit per-class counts by class name
A class with fewer images than asked gets all of them, with a DataWarning; the split file records the counts
actually drawn and a fingerprint of the pool (its ids and labels), so applying it to other data is an error.
A run's own split.json also records one of the labeled images' pixels (`labeled_pixels`), so resuming the run
on images edited in place is refused too.

An optional validation set (`val`, any protocol above but `all`) is drawn after the labeled set from the
images not labeled, with its own random stream, so adding it never changes which images are labeled; it is
removed from the unlabeled set, so model selection never sees an image the method trained on.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import warnings
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError, DataWarning
from ..labels import canonical_name
from .faceset import FaceSet, MixedFaceSet

ADACM_COUNTS: dict[int, tuple[int, int]] = {
    100: (10, 15),
    400: (40, 60),
    1000: (100, 150),
    2000: (200, 300),
    4000: (250, 625),
}


@dataclass
class Split:
    """Which sample ids of a pool are labeled and which are used without labels."""

    protocol: str
    seed: int
    labeled: list[str]
    unlabeled: list[str]
    counts: dict[str, int] = field(default_factory=dict)
    dataset: str = ""
    fingerprint: str = ""
    validation: list[str] = field(default_factory=list)
    val_protocol: str | None = None
    val_counts: dict[str, int] = field(default_factory=dict)
    labeled_pixels: str = ""

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=1))
        return path

    @classmethod
    def load(cls, path: str | Path) -> Split:
        path = Path(path)
        try:
            blob = json.loads(path.read_text())
        except FileNotFoundError:
            raise DataError(
                path, "split file not found", fix="give the split.json a run or `semifer splits` wrote"
            ) from None
        except (OSError, ValueError) as exc:
            raise DataError(path, f"not a semifer split file ({type(exc).__name__}: {exc})") from None
        if not isinstance(blob, dict):
            raise DataError(path, "not a semifer split file (expected a JSON object)")
        try:
            split = cls(**blob)
        except TypeError as exc:
            raise DataError(path, f"not a semifer split file ({exc})") from None
        split._check_types(path)
        return split

    def _check_types(self, path: Path) -> None:
        expected = {
            "protocol": str,
            "seed": int,
            "labeled": list,
            "unlabeled": list,
            "counts": dict,
            "dataset": str,
            "fingerprint": str,
            "validation": list,
            "val_protocol": (str, type(None)),
            "val_counts": dict,
            "labeled_pixels": str,
        }
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, expected[f.name]) or isinstance(value, bool):
                kind = " or ".join(t.__name__ for t in np.atleast_1d(expected[f.name]))
                raise DataError(
                    path,
                    f"{f.name} must be a {kind}, not {value!r:.40}",
                    fix="give the split.json a run or `semifer splits` wrote",
                )
        if not all(isinstance(i, str) for i in self.labeled + self.unlabeled + self.validation):
            raise DataError(path, "labeled, unlabeled and validation must be lists of sample ids (strings)")


def requested_counts(pool: FaceSet, protocol: str) -> dict[str, int]:
    """Per-class label counts a protocol asks for on this pool (before capping at what exists)."""
    return counts_for(pool.class_counts(), protocol)


def counts_for(available: dict[str, int], protocol: str) -> dict[str, int]:
    """Per-class counts a protocol asks for, given the images available per class."""
    kind, _, arg = protocol.partition(":")
    try:
        if kind == "all":
            return dict(available)
        if kind == "adacm":
            fear, other = ADACM_COUNTS[int(arg)]
            return {c: fear if c == "fear" else other for c in available}
        if kind == "per_class":
            return {c: int(arg) for c in available}
        if kind == "fraction":
            p = float(arg)
            if not 0 < p <= 1:
                raise ValueError
            return {c: max(1, round(p * n)) for c, n in available.items() if n}
        if kind == "total":
            total, n_all = int(arg), sum(available.values())
            if total < 0:
                raise ValueError(f"negative total {total}")
            return {c: max(1, round(total * n / n_all)) for c, n in available.items() if n}
        if kind == "counts":
            out = {}
            for item in arg.split(","):
                name, _, value = item.partition("=")
                canon = canonical_name(name)
                if canon is None:
                    raise ValueError(f"unknown class {name!r}")
                out[canon] = int(value)
            return out
    except (KeyError, ValueError, ZeroDivisionError) as exc:
        detail = f" ({exc})" if str(exc) else ""
        raise DataError(
            protocol,
            f"bad split protocol{detail}",
            fix="use all, adacm:100|400|1000|2000|4000, per_class:K, fraction:P, total:N or counts:happy=10,sad=5,...",
        ) from None
    raise DataError(
        protocol,
        f"unknown split protocol {kind!r}",
        fix="use all, adacm:N, per_class:K, fraction:P, total:N or counts:...",
    )


def _draw(
    pool: FaceSet, protocol: str, rng: np.random.Generator, candidates: np.ndarray
) -> tuple[list[int], dict[str, int]]:
    """Stratified draw of the protocol's counts among the pool rows `candidates` (counts relative to them)."""
    present = np.bincount(pool.labels[candidates], minlength=pool.num_classes)
    wanted = counts_for(dict(zip(pool.classes, present.tolist(), strict=True)), protocol)
    chosen: list[int] = []
    drawn: dict[str, int] = {}
    for index, name in enumerate(pool.classes):
        members = candidates[pool.labels[candidates] == index]
        k = min(wanted.get(name, 0), len(members))
        if k:
            chosen.extend(rng.choice(members, size=k, replace=False).tolist())
            drawn[name] = k
    return sorted(chosen), drawn


def make_split(
    pool: FaceSet, protocol: str, seed: int = 0, include_labeled: bool = False, val: str | None = None
) -> Split:
    """Draw a stratified labeled subset; the rest of the pool (or all of it) is the unlabeled set, less the
    validation images when `val` asks for some."""
    if not pool.is_labeled:
        raise DataError(pool.source or pool.name, "a split needs a labeled pool", fix="split a labeled dataset")
    wanted = requested_counts(pool, protocol)
    negative = [f"{c}={k}" for c, k in wanted.items() if k < 0]
    if negative:
        raise DataError(protocol, f"negative label counts ({', '.join(negative)})", fix="ask for 0 or more per class")
    short = {c: (k, n) for c, k in wanted.items() if k > (n := pool.class_counts().get(c, 0))}
    if short:
        warnings.warn(
            f"split {protocol}: the pool ({pool.source or pool.name}) has fewer images than asked in "
            + ", ".join(f"{c} ({n} of {k})" for c, (k, n) in short.items())
            + "; all of them are used",
            DataWarning,
            stacklevel=2,
        )
    everything = np.arange(len(pool))
    chosen, drawn = _draw(pool, protocol, np.random.default_rng(seed), everything)
    rest = everything if include_labeled else np.setdiff1d(everything, chosen)
    split = Split(
        protocol,
        seed,
        [pool.ids[i] for i in chosen],
        [pool.ids[i] for i in rest],
        drawn,
        pool.source,
        pool_fingerprint(pool),
    )
    return add_validation(pool, split, val) if val else split


def pool_fingerprint(pool: FaceSet) -> str:
    """A hash of the pool's (id, class name) pairs, independent of their order: it changes when images are
    added, removed or relabelled, or when positional ids (a CSV's row numbers) now point at other faces."""
    names = (*pool.classes, "unlabeled")
    pairs = sorted(f"{sid}\t{names[label]}" for sid, label in zip(pool.ids, pool.labels.tolist(), strict=True))
    return hashlib.sha256("\n".join(pairs).encode()).hexdigest()[:16]


def pixels_fingerprint(faces: FaceSet) -> str:
    """A hash of the images' content with their ids, in order: in-memory pixels as decoded (a CSV's pixel
    strings), files by their bytes. It changes when an image is edited in place, which `pool_fingerprint`
    (ids and labels) cannot see."""
    digest = hashlib.sha256()
    for index, sid in enumerate(faces.ids):
        digest.update(f"{sid}\0".encode())
        _feed_image(digest, faces, index)
    return digest.hexdigest()[:16]


def _feed_image(digest: Any, faces: FaceSet, index: int) -> None:
    if isinstance(faces, MixedFaceSet):
        _feed_image(digest, faces.parts[int(faces.part[index])], int(faces.row[index]))
    elif faces.pixels is not None:
        image = np.ascontiguousarray(faces.pixels[index])
        digest.update(f"{image.dtype}{image.shape}\0".encode())
        digest.update(image)
    else:
        path = faces.paths[index]  # type: ignore[index]
        try:  # without blocking: a FIFO among the images must be an error, not a hang
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
            with open(fd, "rb") as stream:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    raise DataError(path, "not a regular file (a FIFO, socket or device)", fix="give image files")
                while chunk := stream.read(1 << 20):
                    digest.update(chunk)
        except OSError as exc:
            raise DataError(
                path, f"cannot read image ({exc.strerror or exc})", fix="replace or remove the file"
            ) from None


def check_labeled_pixels(labeled: FaceSet, recorded: Split | None, source: str | Path) -> str:
    """The labeled images' `pixels_fingerprint`, refused when `recorded` (a run's saved split, on resume) has
    another one: the same ids and labels now hold other images. Splits without one pass (older runs)."""
    now = pixels_fingerprint(labeled)
    if recorded is not None and recorded.labeled_pixels and recorded.labeled_pixels != now:
        raise DataError(
            source,
            f"the pixels of the labeled images changed since the run started (the same ids and "
            f"labels of {labeled.source or labeled.name} now hold other image content), so the "
            "run cannot continue on them",
            fix="resume on the images the run was trained on, or start a new run on these (--overwrite "
            "or another --run-dir)",
        )
    return now


def add_validation(pool: FaceSet, split: Split, val: str) -> Split:
    """`split` with a validation set drawn by protocol `val` from the pool's images it does not label
    (seeded by the split's seed), and those images taken out of its unlabeled set."""
    if val.partition(":")[0] == "all":
        raise DataError(
            val,
            "data.val=all leaves no image to train on",
            fix="use per_class:K, fraction:P, total:N or counts:... for data.val",
        )
    candidates = np.setdiff1d(np.arange(len(pool)), np.asarray(_rows(pool, split.labeled, "split"), dtype=np.int64))
    held_out, drawn = _draw(pool, val, np.random.default_rng([split.seed, 1]), candidates)
    ids = [pool.ids[i] for i in held_out]
    taken = set(ids)
    return replace(
        split,
        unlabeled=[s for s in split.unlabeled if s not in taken],
        validation=ids,
        val_protocol=val,
        val_counts=drawn,
    )


def _rows(pool: FaceSet, ids: list[str], source: str) -> list[int]:
    position = {sid: i for i, sid in enumerate(pool.ids)}
    missing = [sid for sid in ids if sid not in position]
    if missing:
        raise DataError(
            source,
            f"{len(missing)} ids of the split are not in {pool.name} (e.g. {missing[0]!r})",
            fix="use the split with the dataset it was made from, or make a new split",
        )
    return [position[s] for s in ids]


def apply_split(pool: FaceSet, split: Split, source: str = "split") -> tuple[FaceSet, FaceSet]:
    """The labeled part (with labels) and the unlabeled part (labels kept only for diagnostics)."""
    if split.fingerprint and split.fingerprint != pool_fingerprint(pool):
        raise DataError(
            source,
            f"the split was drawn from other data than {pool.source or pool.name} (its ids or "
            "labels differ: images added, removed, relabelled or reordered)",
            fix="use the split with the dataset it was made from, or make a new split",
        )
    rows = _rows(pool, split.labeled + split.unlabeled, source)
    k = len(split.labeled)
    return (pool.subset(rows[:k], name=f"{pool.name}-labeled"), pool.subset(rows[k:], name=f"{pool.name}-unlabeled"))


def validation_part(pool: FaceSet, split: Split, source: str = "split") -> FaceSet | None:
    """The split's validation images with their labels, or None when it has none."""
    if not split.validation:
        return None
    return pool.subset(_rows(pool, split.validation, source), name=f"{pool.name}-val")
