"""benchmarks/accuracy/fer2013_ssl.py: which budget the per-epoch comparison figure shows."""

from benchmarks.accuracy.fer2013_ssl import figure_budget


def runs(budget: str, *methods: str) -> list[dict]:
    return [{"method": m, "budget": budget} for m in methods]


def test_the_figure_shows_the_budget_that_compares_the_most_methods():
    rows = runs("20x150", "supervised", "fixmatch", "bridging") + runs("60x150", "supervised", "bridging")
    assert figure_budget(rows) == "20x150"


def test_among_budgets_with_as_many_methods_the_longest_is_shown():
    rows = runs("20x60", "supervised", "bridging") + runs("20x150", "supervised", "bridging")
    assert figure_budget(rows) == "20x150"
    assert figure_budget([]) is None
