"""benchmarks/gpu/gpu_check.sh at toy size on the CPU: the script a GPU machine will run, proven to run first."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_gpu_check_runs_end_to_end_at_toy_size(tmp_path):
    env = {
        **os.environ,
        "GPU_CHECK_TOY": "1",
        "OUT": str(tmp_path),
        "PYTHON": sys.executable,
        "OMP_NUM_THREADS": "1",
        "GPU_CHECK_BUDGET_S": "300",
    }
    done = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu" / "gpu_check.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]

    speed = json.loads((tmp_path / "step_speed.json").read_text())["rows"]
    assert {(r["scale"], r["method"], r["precision"], r["compile"]) for r in speed} == {
        ("toy", "adacm", "fp32", False),
        ("toy", "adacm", "bf16", False),
    }
    for r in speed:
        assert r["network_calls"] == 4  # Ada-CM: two weak views, the labeled view, the strong view
        assert len(r["step_seconds"]) == len(r["bound_seconds"]) == 2
        assert r["ratio_q1"] <= r["ratio_median"] <= r["ratio_q3"]
    assert "| toy | adacm | bf16 | off |" in (tmp_path / "step_speed.md").read_text()

    row = json.loads((tmp_path / "gpu_adacm_fer2013.json").read_text())["rows"][0]
    assert row["budget"] == "2x3" and not row["scaled"] and row["labels"] == 28  # per_class:4
    assert 0.0 <= row["accuracy"] <= 1.0 and row["wall_seconds"] > 0
    assert (Path(row["run_dir"]) / "final.json").is_file()
    phases = json.loads((tmp_path / "gpu_check.json").read_text())
    assert phases["toy"] is True and phases["total_s"] <= 300


def test_the_adacm_run_shrinks_to_the_time_left():
    from benchmarks.gpu.gpu_check import FIXED_SECONDS, LOOP_OVERHEAD, iterations

    per_iter = 20 * 0.03 * LOOP_OVERHEAD  # seconds of one iteration per epoch over 20 epochs
    assert iterations(FIXED_SECONDS + 800 * per_iter + 1, 0.03, 20, 800) == 800
    assert iterations(FIXED_SECONDS + 266.5 * per_iter, 0.03, 20, 800) == 266
    assert iterations(10, 0.03, 20, 800) == 1
