"""benchmarks/common.py: a table's Machine line names the newest row's machine and, when rows span machines,
how many ran on each, so that an old row's CPU is never shown as the whole table's."""

import pytest

from benchmarks.common import rows_header, stages


def meta(cpu: str, date: str) -> dict:
    return {"cpu": cpu, "cores": 2, "gpu": None, "python": "3.11", "torch": "2.x", "commit": date[-5:], "date": date}


def test_one_machine_gives_the_newest_rows_line_alone():
    line = rows_header([meta("AMD EPYC", "2026-12-02 10:00 UTC"), meta("AMD EPYC", "2026-12-01 09:00 UTC")])
    assert line.startswith("Machine: AMD EPYC, 2 cores") and "2026-12-02 10:00 UTC" in line
    assert "Rows per machine" not in line


def test_rows_of_two_machines_are_counted_and_the_newest_leads():
    rows = [
        meta("Xeon", "2026-11-20 08:00 UTC"),
        meta("EPYC", "2026-12-02 10:00 UTC"),
        meta("Xeon", "2026-11-21 08:00 UTC"),
    ]
    line = rows_header(rows)
    assert line.startswith("Machine: EPYC") and "2026-12-02 10:00 UTC" in line
    assert "Rows per machine: Xeon 2, EPYC 1" in line


def test_bridging_stages_split_the_budget_and_refuse_an_empty_stage():
    assert stages("bridging", 20) == [("bridging_stage1", 10), ("bridging_stage2", 10)]
    assert stages("bridging", 20, 13) == [("bridging_stage1", 13), ("bridging_stage2", 7)]
    assert stages("fixmatch", 20, 13) == [("fixmatch", 20)]
    for first in (0, 20):
        with pytest.raises(ValueError, match="stage 1 needs"):
            stages("bridging", 20, first)


def test_a_student_row_trains_a_fresh_network_from_the_finished_row(monkeypatch, tmp_path):
    """`bridging+distill`: Bridging's two stages, then a student of as many steps again that starts where the
    row started (not from stage 2's weights) and learns from stage 2's run."""
    import benchmarks.common as common

    assert stages("bridging+distill", 20) == [("bridging_stage1", 10), ("bridging_stage2", 10), ("distill", 20)]
    calls = []

    class Result:
        def __init__(self, name):
            self.run_dir = tmp_path / name

    def fake_train(preset, overrides, progress=True):
        calls.append(overrides)
        return Result(next(o for o in overrides if o.startswith("name=")).removeprefix("name="))

    monkeypatch.setattr(common, "train_preset", fake_train)

    def recipe(stage, first):
        return [f"method.name={stage}", *(["model.pretrained=start.safetensors"] if first else [])]

    result, overrides = common.train_stages("p", "bridging+distill", 20, [], recipe, lambda s: s)
    assert result.run_dir == tmp_path / "distill"
    first, second, student = calls
    assert any(o.startswith("model.init_from=") for o in second)
    assert "model.pretrained=start.safetensors" in student
    assert not any(o.startswith("model.init_from=") for o in student)
    assert f"method.teachers=[{tmp_path / 'bridging_stage2'}]" in student
    assert "method.unlabeled_weight=1" in student and "train.epochs=20" in student
