import numpy as np
import pytest

from semifer.data.faceset import FaceSet
from semifer.data.splits import Split, add_validation, apply_split, make_split, requested_counts, validation_part
from semifer.errors import DataError, DataWarning
from semifer.labels import CANONICAL


def pool(per_class: int = 300) -> FaceSet:
    labels = np.repeat(np.arange(7), per_class)
    return FaceSet(
        "pool", [f"img{i}" for i in range(len(labels))], labels, pixels=np.zeros((len(labels), 4, 4), np.uint8)
    )


@pytest.mark.parametrize(("total", "fear", "other"), [(100, 10, 15), (400, 40, 60), (1000, 100, 150), (2000, 200, 300)])
def test_adacm_protocol_counts(total, fear, other):
    split = make_split(pool(), f"adacm:{total}", seed=0)
    assert split.counts["fear"] == fear
    assert all(split.counts[c] == other for c in CANONICAL[:7] if c != "fear")
    assert len(split.labeled) == total


def test_adacm_4000_caps_small_classes():
    split = make_split(pool(700), "adacm:4000", seed=0)
    assert split.counts["fear"] == 250 and split.counts["happy"] == 625
    with pytest.warns(DataWarning, match=r"happy \(300 of 625\)"):
        small = make_split(pool(300), "adacm:4000", seed=0)
    assert small.counts["happy"] == 300  # capped at what the pool has, with a warning


def test_split_is_stratified_disjoint_and_seeded():
    p = pool()
    a, b, c = (make_split(p, "per_class:5", seed=s) for s in (1, 1, 2))
    assert a.labeled == b.labeled and a.labeled != c.labeled
    assert not set(a.labeled) & set(a.unlabeled)
    assert len(a.labeled) + len(a.unlabeled) == len(p)
    labeled, _ = apply_split(p, a)
    assert labeled.class_counts() == {c: 5 for c in CANONICAL[:7]}


def test_fraction_total_counts_and_include_labeled():
    p = pool(100)
    assert requested_counts(p, "fraction:0.05") == {c: 5 for c in CANONICAL[:7]}
    assert sum(requested_counts(p, "total:70").values()) == 70
    assert requested_counts(p, "counts:happy=3,angry=2") == {"happy": 3, "anger": 2}
    split = make_split(p, "per_class:2", include_labeled=True)
    assert len(split.unlabeled) == len(p)


def test_split_roundtrip_and_reapply(tmp_path):
    p = pool()
    split = make_split(p, "adacm:400", seed=3)
    path = split.save(tmp_path / "split.json")
    again = Split.load(path)
    assert again == split
    labeled, unlabeled = apply_split(p, again)
    assert len(labeled) == 400 and len(unlabeled) == len(p) - 400


@pytest.mark.parametrize("protocol", ["adacm:123", "per_class:x", "fraction:2", "bogus:1", "counts:smile=3"])
def test_bad_protocol_names_the_fix(protocol):
    with pytest.raises(DataError, match="fix"):
        make_split(pool(), protocol)


def test_split_of_other_dataset_is_refused(tmp_path):
    split = make_split(pool(), "per_class:2")
    other = FaceSet("other", ["x", "y"], [0, 1], pixels=np.zeros((2, 4, 4), np.uint8))
    with pytest.raises(DataError, match="drawn from other data"):
        apply_split(other, split, source=str(tmp_path / "split.json"))
    with pytest.raises(DataError, match="not found"):
        Split.load(tmp_path / "missing.json")


@pytest.mark.parametrize("include_labeled", [False, True])
def test_validation_is_disjoint_stratified_and_keeps_the_labels(include_labeled):
    p = pool(50)
    plain = make_split(p, "per_class:5", seed=4, include_labeled=include_labeled)
    split = make_split(p, "per_class:5", seed=4, include_labeled=include_labeled, val="per_class:3")
    assert split.labeled == plain.labeled  # adding a validation set never changes the training labels
    val = set(split.validation)
    assert len(val) == 21 and not val & set(split.labeled) and not val & set(split.unlabeled)
    assert set(split.unlabeled) == set(plain.unlabeled) - val
    assert validation_part(p, split).class_counts() == {c: 3 for c in CANONICAL[:7]}
    assert split.val_counts == {c: 3 for c in CANONICAL[:7]} and split.val_protocol == "per_class:3"


def test_validation_is_seeded_saved_and_added_to_old_split_files(tmp_path):
    p = pool(50)
    a, b, c = (make_split(p, "per_class:5", seed=s, val="fraction:0.1") for s in (1, 1, 2))
    assert a.validation == b.validation and a.validation != c.validation
    assert Split.load(a.save(tmp_path / "split.json")) == a
    old = make_split(p, "per_class:5", seed=1)
    assert validation_part(p, old) is None
    assert add_validation(p, old, "fraction:0.1") == a  # an old split file gains the same validation set
    with pytest.raises(DataError, match="no image to train on"):
        make_split(p, "per_class:5", val="all")
