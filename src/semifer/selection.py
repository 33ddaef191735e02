"""Which faces to label: choosing a labeling budget from an unlabeled pool with a face representation.

Why it is here: with a few hundred labels, which faces get them matters as much as the method. Selecting from a
self-supervised embedding beats uniform random sampling at low budgets on image benchmarks:

- `random`: uniform, seeded (the baseline).
- `kcenter`: greedy k-center on cosine distance (Sener & Savarese, ICLR 2018): each pick is the face farthest from
  every face picked so far, so the budget covers the embedding.
- `typiclust` (Hacohen et al., ICML 2022): k-means into as many clusters as faces wanted (plus the ones already
  labeled), then from each cluster not yet covered, largest first, its most typical face (highest density: the
  inverse mean distance to its nearest neighbours in the cluster), so picks are representative, not outliers.
- `margin` / `entropy` (a later round, with a trained model): uncertainty within diversity. The same clusters as
  TypiClust, and from each uncovered cluster, largest first, the face the model is least sure of (smallest gap
  between its two most probable classes, or highest entropy), so a round does not spend its budget on many
  near-copies of one confusing face.

Faces already labeled (`already`) count as picked: a later round adds to them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.cluster import KMeans
from sklearn.neighbors import NearestNeighbors

from .errors import SemiferError

STRATEGIES = ("random", "kcenter", "typiclust")
UNCERTAINTY = ("margin", "entropy")
TYPICALITY_NEIGHBOURS = 20


@dataclass
class Selection:
    """Indices into the pool, in the order picked, and each pick's cluster (typiclust) or -1."""

    indices: list[int]
    clusters: list[int]


def normalise(embedding: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length, so Euclidean distance orders pairs as cosine distance does."""
    norms = np.linalg.norm(embedding, axis=1, keepdims=True)
    return embedding / np.maximum(norms, 1e-12)


def check_budget(pool: int, budget: int, already: int = 0) -> None:
    if budget < 1:
        raise SemiferError(f"the budget must be 1 face or more, got {budget}")
    if budget > pool - already:
        raise SemiferError(
            f"a budget of {budget} faces is more than the {pool - already} faces left to choose from "
            f"({pool} in the pool, {already} already labeled); lower --budget or add faces"
        )


def select_random(n: int, budget: int, seed: int, already: Sequence[int] = ()) -> Selection:
    rng = np.random.default_rng(seed)
    free = np.setdiff1d(np.arange(n), np.asarray(already, dtype=np.int64))
    return Selection([int(i) for i in rng.choice(free, size=budget, replace=False)], [-1] * budget)


def select_kcenter(embedding: np.ndarray, budget: int, already: Sequence[int] = ()) -> Selection:
    """Greedy k-center; without labeled faces the first pick is the face nearest the mean (deterministic)."""
    x = normalise(embedding.astype(np.float32))
    picked = list(already)
    if picked:
        nearest = np.min(np.stack([np.linalg.norm(x - x[i], axis=1) for i in picked]), axis=0)
    else:
        first = int(np.argmin(np.linalg.norm(x - x.mean(0), axis=1)))
        nearest, picked = np.linalg.norm(x - x[first], axis=1), [first]
    chosen = [] if already else [picked[0]]
    while len(chosen) < budget:
        far = int(np.argmax(nearest))
        chosen.append(far)
        nearest = np.minimum(nearest, np.linalg.norm(x - x[far], axis=1))
    return Selection(chosen, [-1] * budget)


def typicality(points: np.ndarray, neighbours: int = TYPICALITY_NEIGHBOURS) -> np.ndarray:
    """Inverse mean distance of each point to its nearest `neighbours` others (all others in a small cluster)."""
    if len(points) == 1:
        return np.ones(1)
    k = min(neighbours, len(points) - 1)
    distances, _ = NearestNeighbors(n_neighbors=k + 1).fit(points).kneighbors(points)
    return 1.0 / (distances[:, 1:].mean(1) + 1e-8)


def uncertainty(probabilities: np.ndarray, measure: str) -> np.ndarray:
    """Per face, higher is less sure: the negated gap between the two most probable classes, or the entropy."""
    p = np.asarray(probabilities, dtype=np.float64)
    if measure == "margin":
        top = np.sort(p, axis=1)[:, -2:]
        return top[:, 0] - top[:, 1]
    return -(p * np.log(np.clip(p, 1e-12, 1.0))).sum(1)


def select_by_cluster(
    embedding: np.ndarray, budget: int, seed: int, already: Sequence[int], score: Callable[[np.ndarray], np.ndarray]
) -> Selection:
    """k-means into budget + |already| clusters; from each cluster no labeled face is in, largest first, the
    member with the highest `score(members' unit embeddings, members)`; k-center fills what clusters leave."""
    x = normalise(embedding.astype(np.float32))
    n_clusters = min(len(x), budget + len(already))
    labels = KMeans(n_clusters=n_clusters, n_init=3, random_state=seed).fit_predict(x)
    covered = {int(labels[i]) for i in already}
    sizes = np.bincount(labels, minlength=n_clusters)
    order = [c for c in np.argsort(-sizes, kind="stable") if int(c) not in covered]
    taken = set(already)
    chosen, clusters = [], []
    for cluster in order:
        members = np.flatnonzero(labels == cluster)
        members = members[[m not in taken for m in members]]
        if not len(members):
            continue
        best = int(members[int(np.argmax(score(x, members)))])
        chosen.append(best)
        clusters.append(int(cluster))
        taken.add(best)
        if len(chosen) == budget:
            break
    if len(chosen) < budget:  # clusters ran out (many already labeled): cover the rest by k-center
        extra = select_kcenter(embedding, budget - len(chosen), [*already, *chosen])
        chosen += extra.indices
        clusters += extra.clusters
    return Selection(chosen, clusters)


def select_typiclust(embedding: np.ndarray, budget: int, seed: int, already: Sequence[int] = ()) -> Selection:
    return select_by_cluster(embedding, budget, seed, already, lambda x, members: typicality(x[members]))


def select_uncertain(
    embedding: np.ndarray,
    probabilities: np.ndarray,
    budget: int,
    measure: str = "margin",
    seed: int = 0,
    already: Sequence[int] = (),
) -> Selection:
    """Uncertainty within diversity: per uncovered cluster, the face `measure` says the model is least sure of."""
    if measure not in UNCERTAINTY:
        raise SemiferError(f"unknown uncertainty measure {measure!r}; choose one of {', '.join(UNCERTAINTY)}")
    if len(probabilities) != len(embedding):
        raise SemiferError(f"{len(probabilities)} rows of probabilities for {len(embedding)} faces")
    check_budget(len(embedding), budget, len(set(already)))
    unsure = uncertainty(probabilities, measure)
    return select_by_cluster(embedding, budget, seed, already, lambda x, members: unsure[members])


def select(
    embedding: np.ndarray, budget: int, strategy: str = "random", seed: int = 0, already: Sequence[int] = ()
) -> Selection:
    """`budget` pool indices to label by `strategy`, none of them in `already`."""
    if strategy not in STRATEGIES:
        raise SemiferError(f"unknown selection strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    check_budget(len(embedding), budget, len(set(already)))
    if strategy == "random":
        return select_random(len(embedding), budget, seed, already)
    if strategy == "kcenter":
        return select_kcenter(embedding, budget, already)
    return select_typiclust(embedding, budget, seed, already)
