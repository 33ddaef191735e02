"""Torch datasets that turn a FaceSet into views, and endless shuffled loaders for iteration-based training.

Training samplers number every draw, and the augmentation of draw t is seeded by (loader seed, rank, t), so
the views of a batch do not depend on which process makes them or when it started: a run resumed from a
checkpoint, with or without loader workers, sees the very images the uninterrupted run saw. A data error
in a worker comes back as itself (`SemiferLoader`), not as a RuntimeError around the worker's traceback.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from fractions import Fraction
from itertools import count, islice
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, default_collate, get_worker_info

from ..errors import SemiferError
from .faceset import FaceSet
from .views import View, seeded_augmentation


class ViewDataset(Dataset):
    """Item i = {'views': [view(image_i) for view in views], 'label': y_i, 'index': i}.

    Unlabeled pools keep their true labels here only so diagnostics (pseudo-label accuracy) can be
    measured; methods must not train on `label` of an unlabeled batch.
    """

    def __init__(self, faces: FaceSet, views: Sequence[View]):
        self.faces = faces
        self.views = list(views)

    def __len__(self) -> int:
        return len(self.faces)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, object] | SemiferError:
        """Item `key`, or (index, augmentation seed) from a training sampler; in a loader worker a data
        error is returned, to be raised by `SemiferLoader` in the main process."""
        index, seed = key if isinstance(key, tuple) else (key, None)
        in_worker = get_worker_info() is not None
        try:
            image = self.faces.load(index)
        except SemiferError as exc:
            if not in_worker:
                raise
            return exc
        with seeded_augmentation(seed, restore=not in_worker):
            views = [view(image) for view in self.views]
        return {"views": views, "label": int(self.faces.labels[index]), "index": index}


def _collate(items: list[Any]) -> Any:
    """Default collation, except that a worker's data error becomes the batch itself."""
    for item in items:
        if isinstance(item, SemiferError):
            return item
    return default_collate(items)


class SemiferLoader(DataLoader):
    """A DataLoader that raises a data error from a worker as the original error (PyTorch would wrap it in
    a RuntimeError holding the worker's traceback, or fail to rebuild it)."""

    def __init__(self, dataset: Dataset, **kwargs: Any):
        super().__init__(dataset, collate_fn=_collate, **kwargs)

    def __iter__(self) -> Iterator[Any]:
        for batch in super().__iter__():
            if isinstance(batch, SemiferError):
                raise batch
            yield batch


def _endless_shard(n: int, key: list[int], rank: int, world: int) -> Iterator[int]:
    """This rank's share (every world-th index) of endless passes over range(n), pass e shuffled by key + [e]."""
    epoch = 0
    while True:
        order = np.random.default_rng([*key, epoch]).permutation(n)
        if len(order) < world:
            order = np.resize(order, world)
        yield from (int(i) for i in order[rank::world])
        epoch += 1


class InfiniteSampler(Sampler[int]):
    """Endless reshuffled passes over n items; each rank of a distributed run takes every world-th index.

    Seeded per pass, so a resumed run can skip to where it stopped by `start` (items already served).
    """

    def __init__(self, n: int, seed: int = 0, rank: int = 0, world: int = 1, start: int = 0):
        self.n, self.seed, self.rank, self.world, self.start = n, seed, rank, world, start

    def __iter__(self) -> Iterator[int]:
        return islice(_endless_shard(self.n, [self.seed], self.rank, self.world), self.start, None)


class RatioSampler(Sampler[int]):
    """Endless draws from two index ranges of one dataset, [0, split) and [split, n), a fixed fraction
    `ratio` of them from the second (the extra unlabeled pools, DTM's face-recognition faces).

    Draw t of a rank comes from the second range iff floor((t+1) r) > floor(t r) (exact rational r), so any
    b consecutive draws -- a batch -- hold floor(r b) or ceil(r b) extra images on every rank. Each range
    is walked in its own endless reshuffled passes, seeded by (seed, range, pass) and sharded by rank like
    `InfiniteSampler`; `start` skips the draws a resumed run has already served.
    """

    def __init__(self, n: int, split: int, ratio: float, seed: int = 0, rank: int = 0, world: int = 1, start: int = 0):
        if not 0.0 <= ratio <= 1.0:
            raise ValueError(f"extra ratio must be in [0, 1], got {ratio}")
        if (ratio < 1 and split <= 0) or (ratio > 0 and split >= n):
            raise ValueError(f"extra ratio {ratio} draws from an empty range ({split} main, {n - split} extra)")
        self.n, self.split, self.seed, self.rank, self.world, self.start = n, split, seed, rank, world, start
        self.ratio = Fraction(ratio).limit_denominator(1_000_000)

    def __iter__(self) -> Iterator[int]:
        main = _endless_shard(self.split, [self.seed, 0], self.rank, self.world)
        extra = (self.split + i for i in _endless_shard(self.n - self.split, [self.seed, 1], self.rank, self.world))
        p, q = self.ratio.numerator, self.ratio.denominator

        def draws() -> Iterator[int]:
            t = 0
            while True:
                yield next(extra) if (t + 1) * p // q > t * p // q else next(main)
                t += 1

        return islice(draws(), self.start, None)


class ClassBalancedSampler(Sampler[int]):
    """Endless class-balanced draws: rounds that each visit every class present once, in a shuffled order,
    taking that class's next image from its own endless reshuffled passes.

    Any C consecutive draws of the global sequence (C = number of classes present) hold each class once, so
    a rare class (fear, disgust) fills as much of a labeled batch as a frequent one. A distributed rank
    takes every world-th draw; `start` skips the draws this rank already served (resume).
    """

    def __init__(
        self, labels: Sequence[int] | np.ndarray, seed: int = 0, rank: int = 0, world: int = 1, start: int = 0
    ):
        labels = np.asarray(labels)
        if len(labels) == 0 or (labels < 0).any():
            raise ValueError("class-balanced sampling needs a labeled set (every label >= 0)")
        self.members = [np.flatnonzero(labels == c) for c in np.unique(labels)]
        self.seed, self.rank, self.world, self.start = seed, rank, world, start

    def __iter__(self) -> Iterator[int]:
        def walk(c: int) -> Iterator[int]:
            members = self.members[c]
            return (int(members[i]) for i in _endless_shard(len(members), [self.seed, 2, c], 0, 1))

        walks = [walk(c) for c in range(len(self.members))]

        def draws() -> Iterator[int]:
            for round_ in count():
                for c in np.random.default_rng([self.seed, 3, round_]).permutation(len(walks)):
                    yield next(walks[c])

        return islice(draws(), self.rank + self.start * self.world, None, self.world)


def auto_workers(cores: int | None = None) -> int:
    """Loader processes per stream for `data.workers: null`: none on 2 cores or fewer, where a worker takes
    CPU time from the step (BENCHMARKS.md's loop table: 7-13 % more img/s with 0 than with 1), else a quarter
    of the cores, at most 4, so the two streams leave half the machine to the step."""
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return 0 if cores <= 2 else min(4, cores // 4)


class SeededDraws(Sampler[tuple[int, int]]):
    """(index, augmentation seed) for draw t = start, start + 1, ... of `sampler`; the seed is a function of
    (seed, rank, t) alone, so a draw's views are the same in any process and after any resume."""

    def __init__(self, sampler: Sampler[int], seed: int, rank: int, start: int):
        self.sampler, self.seed, self.rank, self.start = sampler, seed, rank, start

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for t, index in enumerate(self.sampler, self.start):
            key = hashlib.blake2b(f"{self.seed},{self.rank},{t}".encode(), digest_size=8).digest()
            yield index, int.from_bytes(key, "little")


def endless_loader(
    dataset: Dataset,
    batch_size: int,
    seed: int,
    workers: int | None,
    rank: int = 0,
    world: int = 1,
    start: int = 0,
    extra_from: int | None = None,
    extra_ratio: float | None = None,
    balanced_labels: Sequence[int] | np.ndarray | None = None,
) -> Iterator[dict[str, object]]:
    """An iterator of batches that never ends (drop_last semantics: every batch is full).

    With `extra_ratio` set, that fraction of every batch comes from the items from index `extra_from` on
    (`RatioSampler`); with `balanced_labels` (the items' labels), every class is drawn equally often
    (`ClassBalancedSampler`); otherwise all items are drawn alike. `workers=None` picks `auto_workers()`.
    """
    workers = auto_workers() if workers is None else workers
    n = len(dataset)
    if balanced_labels is not None:
        if extra_ratio is not None:
            raise ValueError("class-balanced sampling and an extra-pool ratio cannot be combined")
        sampler: Sampler[int] = ClassBalancedSampler(balanced_labels, seed, rank, world, start)
    elif extra_ratio is not None:
        sampler = RatioSampler(n, n if extra_from is None else extra_from, extra_ratio, seed, rank, world, start)
    else:
        sampler = InfiniteSampler(n, seed, rank, world, start)
    loader = SemiferLoader(
        dataset,
        batch_size=batch_size,
        sampler=SeededDraws(sampler, seed, rank, start),
        num_workers=workers,
        persistent_workers=workers > 0,
        pin_memory=torch.cuda.is_available(),
        drop_last=True,
        prefetch_factor=4 if workers > 0 else None,
        generator=torch.Generator().manual_seed(seed),  # else starting the workers draws from the global RNG
    )
    return iter(loader)


def eval_loader(dataset: Dataset, batch_size: int, workers: int) -> DataLoader:
    return SemiferLoader(
        dataset, batch_size=batch_size, shuffle=False, num_workers=workers, pin_memory=torch.cuda.is_available()
    )
