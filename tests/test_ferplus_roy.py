"""Roy & Etemad's FER13 protocol: FER+ labels by plurality (pandas idxmax, first column on a tie), 7 classes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fixture_layouts import FERPLUS_HEADER, write_fer2013, write_ferplus_votes
from semifer.data.fer2013 import FERPLUS_VOTES, ferplus_plurality, load_ferplus
from semifer.data.registry import load_dataset
from semifer.errors import DataError
from semifer.labels import CANONICAL

# votes: neutral, happiness, surprise, sadness, anger, disgust, fear, contempt, unknown, NF
ROWS = [
    ("Training", "fer0.png", [6, 0, 1, 1, 0, 0, 0, 0, 2, 0]),   # neutral under both rules
    ("Training", "fer1.png", [4, 0, 0, 1, 3, 2, 0, 0, 0, 0]),   # plurality neutral; no strict majority
    ("Training", "fer2.png", [0, 4, 0, 4, 0, 0, 0, 0, 2, 0]),   # tie happiness/sadness -> happiness (first)
    ("Training", "fer3.png", [0, 0, 0, 0, 0, 0, 0, 5, 5, 0]),   # tie contempt/unknown -> contempt, dropped
    ("Training", "fer4.png", [0, 0, 0, 0, 0, 0, 0, 0, 8, 2]),   # unknown: dropped
    ("Training", "fer5.png", [0, 0, 3, 0, 0, 0, 0, 0, 0, 7]),   # not a face: dropped
    ("Training", "", [0, 0, 0, 0, 0, 0, 0, 0, 0, 10]),          # no FER+ record: dropped
    ("PublicTest", "fer7.png", [0, 0, 5, 0, 0, 0, 5, 0, 0, 0]),  # tie surprise/fear -> surprise
    ("PublicTest", "fer8.png", [1] * 10),                       # all tied -> neutral; no majority
]


def idx(name: str) -> int:
    return CANONICAL.index(name)


@pytest.fixture
def votes_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "fer2013"
    write_fer2013(folder / "fer2013.csv.gz", [(0, usage) for usage, _, _ in ROWS])
    write_ferplus_votes(folder / "fer2013new.csv", ROWS)
    return folder


def test_plurality_is_idxmax_with_ties_to_the_first_column():
    votes = np.array([v for _, _, v in ROWS])
    assert ferplus_plurality(votes).tolist() == [0, 0, 1, 7, 8, 9, 9, 2, 0]
    # the tie goes to the column first *in the file*: with sadness before happiness, sadness wins
    order = np.arange(len(FERPLUS_VOTES))
    order[[1, 3]] = [3, 1]
    assert ferplus_plurality(votes[2:3], file_order=order).tolist() == [3]


def test_plurality_labels_and_drops(votes_dir: Path):
    faces = load_ferplus(votes_dir, classes=7, label="plurality")
    assert faces.ids == ["Training/0", "Training/1", "Training/2", "PublicTest/7", "PublicTest/8"]
    assert faces.labels.tolist() == [idx("neutral"), idx("neutral"), idx("happy"), idx("surprise"),
                                     idx("neutral")]
    assert faces.dropped == {"contempt": 1, "unknown": 1, "not_face": 1, "no_record": 1}
    majority = load_ferplus(votes_dir, classes=7)
    # the majority rule drops every image without a strict majority: rows 1 and 8 and the three ties
    assert majority.ids == ["Training/0"]
    assert majority.dropped["no_majority"] == 5
    test = load_dataset(f"ferplus:{votes_dir}?split=PublicTest&classes=7&label=plurality")
    assert test.ids == ["PublicTest/7", "PublicTest/8"]


def test_plurality_follows_the_file_column_order(votes_dir: Path):
    header = FERPLUS_HEADER.split(",")
    header[3], header[5] = header[5], header[3]  # sadness before happiness in the file
    swapped = [(u, n, [v[0], v[3], v[2], v[1], *v[4:]]) for u, n, v in ROWS]
    lines = [",".join(header)] + [f"{u},{n}," + ",".join(map(str, v)) for u, n, v in swapped]
    (votes_dir / "fer2013new.csv").write_text("\n".join(lines) + "\n")
    faces = load_ferplus(votes_dir, split="Training", classes=7, label="plurality")
    assert faces.labels[faces.ids.index("Training/2")] == idx("sad")


def test_unknown_label_rule_names_the_fix(votes_dir: Path):
    with pytest.raises(DataError, match="label=plurality"):
        load_ferplus(votes_dir, label="mode")


def test_real_plurality_counts_on_public_test(real_data: str):
    """Roy & Etemad's FER13 test labels on our PublicTest (this copy has no PrivateTest rows)."""
    folder = Path(real_data) / "fer2013"
    public = load_ferplus(folder, split="PublicTest", classes=7, label="plurality")
    assert len(public) == 3529
    assert public.class_counts() == {"neutral": 1335, "happy": 899, "sad": 412, "surprise": 456, "fear": 74,
                                     "disgust": 34, "anger": 319}
    assert public.dropped == {"contempt": 24, "unknown": 25, "not_face": 1, "no_record": 10}  # no name: 10 NF votes
    majority = load_ferplus(folder, split="PublicTest", classes=7)
    assert len(majority) < len(public) and set(majority.ids) < set(public.ids)
