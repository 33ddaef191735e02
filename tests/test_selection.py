"""Choosing faces to label: k-center covers the embedding, TypiClust takes one typical face per cluster, and
`semifer select` writes the chosen faces; bad input is one clear error."""

import csv

import numpy as np
import pytest
from PIL import Image

from semifer.cli import main
from semifer.data import load_dataset
from semifer.errors import SemiferError
from semifer.selection import select, select_uncertain, typicality, uncertainty


def blobs(centres=6, per=40, seed=0):
    """Well-separated Gaussian clusters of different sizes in 8-D, and each point's cluster."""
    rng = np.random.default_rng(seed)
    means = rng.normal(0, 10, (centres, 8))
    sizes = [per * (k + 1) for k in range(centres)]
    x = np.concatenate([m + rng.normal(0, 0.3, (n, 8)) for m, n in zip(means, sizes, strict=True)])
    return x, np.repeat(np.arange(centres), sizes)


@pytest.mark.parametrize("strategy", ["kcenter", "typiclust"])
def test_a_budget_of_one_per_cluster_covers_every_cluster(strategy):
    x, cluster = blobs()
    chosen = select(x, 6, strategy, seed=1).indices
    assert len(set(chosen)) == 6 and set(cluster[chosen]) == set(range(6))
    hits = [len(set(cluster[select(x, 6, "random", seed=s).indices])) for s in range(20)]
    assert np.mean(hits) < 6  # random misses clusters, the point of selecting


def test_typiclust_takes_the_densest_face_not_an_outlier():
    x, cluster = blobs(centres=2)
    outlier = len(x)
    x = np.vstack([x, x[cluster == 0].mean(0) + 3.0])  # far from its cluster's core, still nearest to it
    chosen = select(x, 2, "typiclust", seed=0).indices
    assert outlier not in chosen
    dense = typicality(x[:-1][cluster == 1])
    assert dense.min() > 0 and np.isfinite(dense).all()


def test_a_later_round_adds_to_the_labeled_faces():
    x, cluster = blobs()
    first = select(x, 3, "kcenter").indices
    second = select(x, 3, "kcenter", already=first).indices
    assert not set(first) & set(second) and set(cluster[first + second]) == set(range(6))
    again = select(x, 3, "typiclust", already=first).indices
    assert not set(first) & set(again)


def test_selection_is_reproducible_and_bad_budgets_are_clear():
    x, _ = blobs()
    assert select(x, 5, "random", seed=3).indices == select(x, 5, "random", seed=3).indices
    with pytest.raises(SemiferError, match="more than the 840 faces"):
        select(x, 841, "kcenter")
    with pytest.raises(SemiferError, match="1 face or more"):
        select(x, 0, "typiclust")
    with pytest.raises(SemiferError, match="unknown selection strategy"):
        select(x, 3, "entropy")


def test_select_command_writes_the_chosen_faces(tmp_path, capsys):
    faces = load_dataset("synthetic:?split=test&n=40")
    pool = tmp_path / "pool"
    pool.mkdir()
    for i, pixels in enumerate(faces.pixels):
        Image.fromarray(pixels).save(pool / f"face{i:02d}.png")
    (pool / "broken.png").write_bytes(b"not an image")
    out = tmp_path / "round1"
    assert main(["select", str(pool), "--budget", "5", "--out", str(out)]) == 0
    assert "1 unreadable files skipped" in capsys.readouterr().out
    with open(out / "selected.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 5 and len({r["id"] for r in rows}) == 5
    assert sorted(p.name for p in (out / "faces").iterdir()) == sorted(r["file"] for r in rows)
    out2 = tmp_path / "round2"
    assert (
        main(
            [
                "select",
                str(pool),
                "--budget",
                "5",
                "--out",
                str(out2),
                "--labeled",
                str(out / "selected.csv"),
                "--strategy",
                "kcenter",
            ]
        )
        == 0
    )
    with open(out2 / "selected.csv", newline="") as handle:
        assert not {r["id"] for r in csv.DictReader(handle)} & {r["id"] for r in rows}
    assert main(["select", str(pool), "--budget", "41", "--out", str(out)]) == 2
    assert "more than the 40 faces" in capsys.readouterr().err
    twins = tmp_path / "twins"
    for folder, pixels in (("a", faces.pixels[0]), ("b", faces.pixels[1])):
        (twins / folder).mkdir(parents=True)
        Image.fromarray(pixels).save(twins / folder / "same.png")
    first, second = tmp_path / "twins-1", tmp_path / "twins-2"
    assert main(["select", str(twins), "--budget", "1", "--out", str(first)]) == 0
    earlier = ["--labeled", str(first / "selected.csv")]
    assert main(["select", str(twins), "--budget", "1", "--out", str(second), *earlier]) == 0
    names = {p.name for folder in (first, second) for p in (folder / "faces").iterdir()}
    assert names == {"0000_a--same.png", "0000_b--same.png"}  # two rounds label into one tree without a clash
    listed = tmp_path / "pool.csv"
    listed.write_text("path\n" + "".join(f"pool/face{i:02d}.png\n" for i in range(0, 40, 2)))
    assert main(["select", str(listed), "--budget", "3", "--out", str(tmp_path / "from-list")]) == 0
    with open(tmp_path / "from-list" / "selected.csv", newline="") as handle:
        assert {r["id"] for r in csv.DictReader(handle)} <= {f"pool/face{i:02d}.png" for i in range(0, 40, 2)}


@pytest.mark.parametrize("measure", ["margin", "entropy"])
def test_a_later_round_takes_the_least_sure_face_of_each_uncovered_cluster(measure):
    x, cluster = blobs(centres=3)
    probs = np.tile([0.9, 0.05, 0.05], (len(x), 1))
    unsure = [int(np.flatnonzero(cluster == c)[7]) for c in range(3)]
    probs[unsure] = [0.4, 0.35, 0.25]
    labeled = [int(np.flatnonzero(cluster == 0)[0])]
    chosen = select_uncertain(x, probs, 2, measure, seed=0, already=labeled)
    assert sorted(chosen.indices) == sorted(unsure[1:])  # cluster 0 is covered by the labeled face
    assert uncertainty(probs[[unsure[0], 0]], measure).argmax() == 0
    with pytest.raises(SemiferError, match="more than"):
        select_uncertain(x, probs, len(x) + 1, measure)


def test_an_uncertainty_round_uses_a_model_and_names_it_when_missing(tmp_path, capsys):
    pool = "synthetic:?split=test&n=30"
    assert main(["select", pool, "--budget", "4", "--strategy", "margin", "--out", str(tmp_path / "r")]) == 2
    assert "pass --model RUN" in capsys.readouterr().err
    out = tmp_path / "r2"
    assert (
        main(["select", pool, "--budget", "4", "--strategy", "entropy", "--model", "fer2013-small", "--out", str(out)])
        == 0
    )
    written = sorted(p.name for p in (out / "faces").iterdir())
    assert len(written) == 4 and all(name.endswith(".png") and "/" not in name for name in written)
