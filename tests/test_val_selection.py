"""benchmarks/accuracy/val_selection.py: the rule reads validation accuracy only, and chooses nothing until every
candidate has run on the same seeds."""

import json

import pytest

from benchmarks.accuracy import val_selection
from benchmarks.accuracy.val_selection import baseline_rows, choose, compared, final_val_accuracy, table


def row(candidate: str, seed: int, val: float, test: float) -> dict:
    return {"candidate": candidate, "seed": seed, "val_accuracy": val, "test_accuracy": test}


def test_the_best_mean_validation_accuracy_wins_whatever_the_test_says():
    rows = [row("a", 0, 0.40, 0.60), row("a", 1, 0.42, 0.60), row("b", 0, 0.45, 0.30), row("b", 1, 0.41, 0.30)]
    assert choose(rows, ["a", "b"]) == "b"


def test_a_tie_goes_to_the_first_candidate_listed():
    rows = [row("a", 0, 0.5, 0.1), row("b", 0, 0.5, 0.9)]
    assert choose(rows, ["a", "b"]) == "a"
    assert choose(rows, ["b", "a"]) == "b"


def test_no_choice_before_every_candidate_has_the_same_seeds():
    rows = [row("a", 0, 0.3, 0.3), row("a", 1, 0.3, 0.3), row("b", 0, 0.9, 0.9)]
    assert choose(rows, ["a", "b"]) is None
    assert choose([], ["a", "b"]) is None
    assert choose(rows + [row("b", 1, 0.9, 0.9)], ["a", "b"]) == "b"


def test_the_score_is_the_last_epochs_validation_accuracy():
    history = [{"val": {"accuracy": 0.5}}, {"test": {"accuracy": 0.9}}, {"val": {"accuracy": 0.4}}]
    assert final_val_accuracy(history) == 0.4
    with pytest.raises(ValueError, match="data.val"):
        final_val_accuracy([{"test": {"accuracy": 0.9}}])


def test_a_baseline_from_an_earlier_study_enters_the_comparison_and_wins_a_tie(tmp_path):
    earlier = {
        "method": "bridging",
        "rows": [{**row("recipe", s, v, 0.9), "start": "old"} for s, v in ((0, 0.50), (1, 0.48))]
        + [{**row("other", 0, 0.99, 0.1), "start": "old"}],
    }
    (tmp_path / "val_selection_earlier.json").write_text(json.dumps(earlier))
    mine = [{**row("recipe", s, v, 0.1), "start": "new"} for s, v in ((0, 0.52), (1, 0.46))]
    study = {"baseline": "earlier:recipe", "rows": mine, "candidates": ["recipe"]}
    rows, candidates = compared(study, tmp_path)
    assert candidates == ["recipe from old (study earlier)", "recipe"]
    assert len(rows) == 4
    assert [r.get("method") for r in rows] == ["bridging", "bridging", None, None]
    assert choose(rows, candidates) == "recipe from old (study earlier)"
    mine[0]["val_accuracy"] = 0.53
    assert choose(*compared(study, tmp_path)) == "recipe"


def test_a_baseline_that_names_no_rows_is_an_error_naming_the_file(tmp_path):
    (tmp_path / "val_selection_earlier.json").write_text(json.dumps({"rows": []}))
    with pytest.raises(SystemExit, match="val_selection_earlier.json has no rows"):
        baseline_rows("earlier:recipe", tmp_path)
    with pytest.raises(SystemExit, match="STUDY:CANDIDATE"):
        baseline_rows("missing:recipe", tmp_path)


def test_the_table_names_each_rows_method_when_a_baseline_comes_from_another_method(tmp_path, monkeypatch):
    def full(candidate: str, seed: int, val: float, start: str) -> dict:
        extra = {"start": start, "budget": "20x150", "val": "per_class:100", "minutes": 1.0, "command": "cmd"}
        return {**row(candidate, seed, val, 0.5), **extra, "machine": {"cpu": "test"}}

    earlier = {"method": "bridging", "rows": [full("recipe", 0, 0.40, "old")]}
    (tmp_path / "val_selection_earlier.json").write_text(json.dumps(earlier))
    monkeypatch.setattr(val_selection, "rows_header", lambda machines: "Machine: test.")
    study = {
        "name": "now",
        "method": "bridging+distill",
        "labels": 400,
        "baseline": "earlier:recipe",
        "candidates": ["recipe"],
        "rows": [full("recipe", 0, 0.45, "old")],
    }
    text = table(study, tmp_path)
    assert "| bridging | `recipe from old (study earlier)` | 0 | 40.00% |" in text
    assert "| bridging+distill | `recipe` | 0 | 45.00% |" in text
    assert "| bridging+distill | `recipe` **(chosen)** | 0 | 45.00% | 50.00% |" in text
