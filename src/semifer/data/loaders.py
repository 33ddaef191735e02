"""Torch datasets that turn a FaceSet into views, and endless shuffled loaders for iteration-based training."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from .faceset import FaceSet
from .views import View


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

    def __getitem__(self, index: int) -> dict[str, object]:
        image = self.faces.load(index)
        return {"views": [view(image) for view in self.views], "label": int(self.faces.labels[index]), "index": index}


class InfiniteSampler(Sampler[int]):
    """Endless reshuffled passes over n items; each rank of a distributed run takes every world-th index.

    Seeded per pass, so a resumed run can skip to where it stopped by `start` (items already served).
    """

    def __init__(self, n: int, seed: int = 0, rank: int = 0, world: int = 1, start: int = 0):
        self.n, self.seed, self.rank, self.world, self.start = n, seed, rank, world, start

    def __iter__(self) -> Iterator[int]:
        served, epoch = 0, 0
        while True:
            order = np.random.default_rng([self.seed, epoch]).permutation(self.n)
            if len(order) < self.world:
                order = np.resize(order, self.world)
            for index in order[self.rank :: self.world]:
                if served >= self.start:
                    yield int(index)
                served += 1
            epoch += 1


def endless_loader(dataset: Dataset, batch_size: int, seed: int, workers: int, rank: int = 0, world: int = 1,
                   start: int = 0) -> Iterator[dict[str, object]]:
    """An iterator of batches that never ends (drop_last semantics: every batch is full)."""
    generator = torch.Generator().manual_seed(seed)
    loader = DataLoader(
        dataset, batch_size=batch_size, sampler=InfiniteSampler(len(dataset), seed, rank, world, start),
        num_workers=workers, persistent_workers=workers > 0, pin_memory=torch.cuda.is_available(),
        drop_last=True, generator=generator, worker_init_fn=_seed_worker,
        prefetch_factor=4 if workers > 0 else None,
    )
    return iter(loader)


def eval_loader(dataset: Dataset, batch_size: int, workers: int) -> DataLoader:
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers,
                      pin_memory=torch.cuda.is_available())


def _seed_worker(worker_id: int) -> None:
    import random

    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)
