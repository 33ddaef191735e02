"""benchmarks/accuracy/demo_seeds.py: a method's gain is paired with supervised on the same seed and variant."""

import pytest

from benchmarks.accuracy.demo_seeds import gains


def row(variant: str, seed: int, method: str, accuracy: float) -> dict:
    return {"variant": variant, "seed": seed, "method": method, "accuracy": accuracy}


def test_gains_pair_each_seed_with_its_own_supervised_run():
    rows = [
        row("preset", 0, "supervised", 0.50),
        row("preset", 0, "fixmatch", 0.60),
        row("preset", 1, "supervised", 0.70),
        row("preset", 1, "fixmatch", 0.65),
        row("other", 0, "supervised", 0.10),
        row("preset", 2, "fixmatch", 0.90),
    ]
    got = gains(rows, "preset")
    assert set(got) == {"fixmatch"} and set(got["fixmatch"]) == {0, 1}  # seed 2 has no supervised run
    assert got["fixmatch"][0] == pytest.approx(0.10) and got["fixmatch"][1] == pytest.approx(-0.05)
