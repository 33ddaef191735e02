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
