"""Roy & Etemad's FER13 protocol: FER+ labels by plurality (pandas idxmax, first column on a tie), 7 classes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks.accuracy.ferplus_roy import method_options, row_key, summary
from fixture_layouts import FERPLUS_HEADER, make_ferplus
from semifer.config import load_config
from semifer.data.fer2013 import FERPLUS_VOTES, ferplus_plurality, load_ferplus
from semifer.data.registry import load_dataset
from semifer.engine.run import train
from semifer.errors import DataError
from semifer.labels import CANONICAL

# votes: neutral, happiness, surprise, sadness, anger, disgust, fear, contempt, unknown, NF
ROWS = [
    ("Training", "fer0.png", [6, 0, 1, 1, 0, 0, 0, 0, 2, 0]),  # neutral under both rules
    ("Training", "fer1.png", [4, 0, 0, 1, 3, 2, 0, 0, 0, 0]),  # plurality neutral; no strict majority
    ("Training", "fer2.png", [0, 4, 0, 4, 0, 0, 0, 0, 2, 0]),  # tie happiness/sadness -> happiness (first)
    ("Training", "fer3.png", [0, 0, 0, 0, 0, 0, 0, 5, 5, 0]),  # tie contempt/unknown -> contempt, dropped
    ("Training", "fer4.png", [0, 0, 0, 0, 0, 0, 0, 0, 8, 2]),  # unknown: dropped
    ("Training", "fer5.png", [0, 0, 3, 0, 0, 0, 0, 0, 0, 7]),  # not a face: dropped
    ("Training", "", [0, 0, 0, 0, 0, 0, 0, 0, 0, 10]),  # no FER+ record: dropped
    ("PublicTest", "fer7.png", [0, 0, 5, 0, 0, 0, 5, 0, 0, 0]),  # tie surprise/fear -> surprise
    ("PublicTest", "fer8.png", [1] * 10),  # all tied -> neutral; no majority
]


def idx(name: str) -> int:
    return CANONICAL.index(name)


@pytest.fixture
def votes_dir(tmp_path: Path) -> Path:
    return make_ferplus(tmp_path / "fer2013", ROWS)


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
    assert faces.labels.tolist() == [idx("neutral"), idx("neutral"), idx("happy"), idx("surprise"), idx("neutral")]
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
    assert public.class_counts() == {
        "neutral": 1335,
        "happy": 899,
        "sad": 412,
        "surprise": 456,
        "fear": 74,
        "disgust": 34,
        "anger": 319,
    }
    assert public.dropped == {"contempt": 24, "unknown": 25, "not_face": 1, "no_record": 10}  # no name: 10 NF votes
    majority = load_ferplus(folder, split="PublicTest", classes=7)
    assert len(majority) < len(public) and set(majority.ids) < set(public.ids)


def test_roy_preset_is_their_fixmatch_recipe():
    cfg = load_config("ferplus_roy_fixmatch")
    t, d = cfg.train, cfg.data
    assert (t.batch_size, t.unlabeled_ratio, t.lr, t.momentum, t.weight_decay, t.ema) == (64, 7, 0.03, 0.9, 5e-4, 0.999)
    assert cfg.method["name"] == "fixmatch" and d.include_labeled_in_unlabeled
    assert all("classes=7&label=plurality" in spec for spec in (d.train, d.test))
    assert "split=PublicTest" in d.test


def test_roy_protocol_trains_with_labeled_images_in_the_unlabeled_set(tmp_path: Path):
    """Plurality labels, K per class, every Training image unlabeled, a validation set: one tiny run."""
    winners = [0, 1, 2, 3, 4, 5, 6] * 6
    rows = [("Training", f"fer{i}.png", [9 if c == w else 0 for c in range(10)]) for i, w in enumerate(winners)]
    folder = make_ferplus(tmp_path / "fer2013", rows)
    spec = f"ferplus:{folder}?split=Training&classes=7&label=plurality"
    cfg = load_config(
        "ferplus_roy_fixmatch",
        [
            f"data.train={spec}",
            f"data.test={spec}",
            "data.split=per_class:2",
            "data.val=per_class:1",
            "data.workers=0",
            "train.epochs=1",
            "train.iters_per_epoch=1",
            "train.batch_size=4",
            "train.unlabeled_ratio=1",
            f"out_dir={tmp_path}",
        ],
    )
    result = train(cfg, progress=False)
    split = json.loads((result.run_dir / "split.json").read_text())
    assert len(split["labeled"]) == 14 and len(split["validation"]) == 7
    assert set(split["labeled"]) <= set(split["unlabeled"])  # labeled images are unlabeled ones too
    assert len(split["unlabeled"]) == len(rows) - 7 and not set(split["validation"]) & set(split["unlabeled"])
    final = json.loads((result.run_dir / "final.json").read_text())
    assert "val" in result.history[-1] and "best_on_validation" in final


def test_roy_summary_tabulates_any_field_and_skips_rows_without_it():
    def roy(seed: int, val: float | None) -> dict:
        return {
            "method": "bridging",
            "start": "rep",
            "budget": "10x80",
            "labels_per_class": 25,
            "seed": seed,
            "accuracy": 0.6,
            "val_accuracy": val,
        }

    rows = [roy(0, 0.5), roy(1, 0.54), roy(2, None)]
    accuracy = summary(rows)
    assert "| bridging | rep | 10x80 | - | 60.00 ± 0.00 (3) | - | - |" in accuracy
    assert accuracy[-1].startswith("| FixMatch, published")
    val = summary(rows, "val_accuracy", published=False)
    assert val[-1] == "| bridging | rep | 10x80 | - | 52.00 ± 2.83 (2) | - | - |"


def test_a_method_variant_is_tabulated_and_keyed_apart_from_the_method():
    def adacm(seed: int, accuracy: float, options: list[str]) -> dict:
        return {
            "method": "adacm",
            "options": options,
            "start": "rep",
            "budget": "10x80",
            "labels_per_class": 100,
            "seed": seed,
            "val": "per_class:50",
            "accuracy": accuracy,
        }

    assert method_options(["train.ema=0.99", "method.lambda_x=1.0"]) == ["method.lambda_x=1.0"]
    faithful, variant = adacm(0, 0.54, []), adacm(0, 0.62, ["method.lambda_x=1.0"])
    assert row_key(faithful) != row_key(variant)
    lines = summary([faithful, variant, adacm(1, 0.64, ["method.lambda_x=1.0"])])
    assert "| adacm | rep | 10x80 | - | - | 54.00 (1) | - |" in lines
    assert "| adacm (lambda_x=1.0) | rep | 10x80 | - | - | 63.00 ± 1.41 (2) | - |" in lines
