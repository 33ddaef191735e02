"""benchmarks/ is a package run as modules from the repository root: every module imports without running,
leaves sys.path alone, and every script the docs name exists where they say."""

import importlib.util
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

import benchmarks

ROOT = Path(__file__).resolve().parent.parent
MODULES = sorted(m.name for m in pkgutil.walk_packages(benchmarks.__path__, "benchmarks.") if not m.ispkg)
DOCS = ("README.md", "BENCHMARKS.md", "benchmarks/README.md")


def test_the_suite_is_found():
    assert {"benchmarks.common", "benchmarks.speed.step_speed", "benchmarks.accuracy.fer2013_ssl"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_a_benchmark_module_imports_and_leaves_sys_path_alone(name):
    source = Path(importlib.util.find_spec(name).origin).read_text()
    assert "sys.path" not in source, f"{name} edits sys.path: import through the benchmarks package instead"
    before = list(sys.path)
    module = importlib.import_module(name)
    assert sys.path == before
    if name not in ("benchmarks.common", "benchmarks.peers.official_style_adacm"):
        assert callable(getattr(module, "main", None)), f"{name} has no main()"


def test_a_script_runs_as_a_module_from_the_repository_root():
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.studies.haar_framing", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "--report-only" in done.stdout


@pytest.mark.parametrize("doc", DOCS)
def test_every_script_the_docs_name_exists(doc):
    text = (ROOT / doc).read_text()
    for path in set(re.findall(r"benchmarks/[\w/]+\.(?:py|sh)\b", text)):
        assert (ROOT / path).is_file(), f"{doc} names {path}, which does not exist"
    for module in set(re.findall(r"python -m (benchmarks(?:\.\w+)+)", text)):
        assert module in MODULES, f"{doc} runs {module}, which is not a benchmark module"
    assert not re.search(r"python3? benchmarks/", text), f"{doc} runs a benchmark by path: use python -m"
