"""benchmarks/accuracy/label_efficiency.py: the budget grows with the labeled set and stays even (Bridging splits
it between two stages), and the summary lines compare means of the same start and share."""

import pytest

from benchmarks.accuracy.label_efficiency import budget_epochs, gaps, rules, summary, under


@pytest.mark.parametrize(
    ("labels", "epochs"),
    [(287, 10), (2871, 10), (7177, 24), (28709, 90)],
)
def test_the_budget_is_the_floor_or_twenty_passes_over_the_labels(labels, epochs):
    assert budget_epochs(labels, min_steps=1000, epochs_over_labels=20, iters=100) == epochs


def test_the_budget_is_always_even():
    for labels in range(1, 40_000, 997):
        assert budget_epochs(labels, 1000, 20, 100) % 2 == 0


def row(method: str, fraction: float, seed: int, accuracy: float, start: str = "rep") -> dict:
    return {"start": start, "method": method, "fraction": fraction, "seed": seed, "accuracy": accuracy}


def test_gaps_pair_each_share_with_supervised_and_ten_percent_with_all_labels():
    rows = [
        row("supervised", 0.1, 0, 0.50),
        row("supervised", 0.1, 1, 0.52),
        row("bridging", 0.1, 0, 0.55),
        row("bridging", 0.1, 1, 0.57),
        row("bridging", 0.01, 0, 0.40),  # no supervised row at 1 %: no gain line for it
        row("supervised", 1.0, 0, 0.66),
        row("supervised", 1.0, 0, 0.30, start="scratch"),  # another start never enters rep's lines
    ]
    lines = gaps(summary(rows))
    assert lines == [
        "- bridging minus supervised (rep), means by share: 10 %: +5.00.",
        "- bridging with 10 % of the labels against supervised with all of them (rep): 56.00 against 66.00 % "
        "(-10.00 points).",
    ]


def ruled(method: str, labels: int, budget: str, min_steps: int, accuracy: float) -> dict:
    fraction = round(labels / 28709, 2)
    return {
        **row(method, fraction, 0, accuracy),
        "labels": labels,
        "budget": budget,
        "min_steps": min_steps,
        "epochs_over_labels": 20,
    }


def test_each_budget_rule_is_its_own_curve_and_shares_the_run_both_rules_give():
    rows = [
        ruled("bridging", 2871, "10x100", 1000, 0.53),
        ruled("bridging", 2871, "30x100", 3000, 0.625),
        ruled("supervised", 28709, "90x100", 1000, 0.66),  # twenty passes over every label: both rules' budget
    ]
    assert rules(rows) == [(1000, 20), (3000, 20)]
    short, long = (summary(under(rows, rule)) for rule in rules(rows))
    assert short == {("rep", "bridging", 0.1): [53.0], ("rep", "supervised", 1.0): [66.0]}
    assert long == {("rep", "bridging", 0.1): [62.5], ("rep", "supervised", 1.0): [66.0]}
    assert gaps(long, ", long")[-1].startswith(
        "- bridging with 10 % of the labels against supervised with all of them (rep, long): 62.50 against 66.00 %"
    )
