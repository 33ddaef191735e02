"""benchmarks/accuracy/builtin_classifier.py: the commands that rebuild a candidate whose teachers are runs or the
built-in classifier, and which answer a candidate ships under the speed floor."""

from pathlib import Path

import pytest

from benchmarks.accuracy import builtin_classifier
from benchmarks.accuracy.builtin_classifier import rebuild_commands, shipped_answer
from semifer import weights
from semifer.config import load_config, save_config
from semifer.methods import resolve_method

PRESET = "expression_fer2013"


def run_dir(folder: Path, *overrides: str) -> Path:
    """A run directory holding only the config.yaml a run of the preset with `overrides` writes (the head options
    its method fills in included)."""
    folder.mkdir(parents=True)
    cfg = load_config(PRESET, list(overrides))
    resolve_method(cfg.method).fill(cfg)
    save_config(cfg, folder / "config.yaml")
    return folder


def distill_run(folder: Path, teachers: list[str], *overrides: str) -> Path:
    return run_dir(folder, "method.name=distill", f"method.teachers=[{', '.join(teachers)}]", *overrides)


def test_a_builtin_teacher_is_rebuilt_from_its_card_and_named_as_a_run(tmp_path):
    student = distill_run(tmp_path / "student", [weights.CLASSIFIER], "model.arch=small_cnn_wide")
    card = weights.get_weights(weights.CLASSIFIER).card["command"].splitlines()
    trained = [line for line in card if not line.startswith("semifer export")]
    commands = rebuild_commands(student, PRESET)
    assert commands[: len(trained) - 1] == trained[:-1]
    assert commands[len(trained) - 1] == f"{trained[-1]} name={weights.CLASSIFIER}"
    assert commands[-1].startswith(f"semifer train -c {PRESET} method.name=distill")
    assert (
        f"method.teachers=[runs/{weights.CLASSIFIER}]" in commands[-1] and "model.arch=small_cnn_wide" in commands[-1]
    )


def test_teachers_of_teachers_come_first_and_once(tmp_path):
    plain = run_dir(tmp_path / "runs" / "plain")
    middle = distill_run(tmp_path / "runs" / "middle", [str(plain)])
    student = distill_run(tmp_path / "runs" / "student", [str(plain), str(middle)])
    commands = rebuild_commands(student, PRESET)
    assert commands[0] == f"semifer train -c {PRESET} name=plain"
    assert commands[1] == f"semifer train -c {PRESET} method.name=distill method.teachers=[runs/plain] name=middle"
    assert len(commands) == 3 and "method.teachers=[runs/plain, runs/middle]" in commands[2]


@pytest.mark.parametrize(
    ("speeds", "accuracies", "shipped"),
    [
        ({False: 2000.0, True: 1100.0}, (0.68, 0.69), (True, 0.69)),  # the mirror helps and keeps the floor
        ({False: 2000.0, True: 900.0}, (0.68, 0.69), (False, 0.68)),  # too slow mirrored: shipped plain
        ({False: 800.0, True: 400.0}, (0.68, 0.69), (False, None)),  # too slow even plain: not shipped
        ({False: 2000.0}, (0.69, 0.68), (False, 0.69)),  # the mirror does not help: not timed
    ],
)
def test_the_shipped_answer_keeps_the_speed_floor(monkeypatch, tmp_path, speeds, accuracies, shipped):
    timed = []

    def export(run, fmt, folder, flip_average, precision):
        timed.append(flip_average)
        assert precision == "auto"

    monkeypatch.setattr(builtin_classifier, "validation_with_and_without_flip", lambda run, precision: accuracies)
    monkeypatch.setattr(builtin_classifier, "export_model", export)
    monkeypatch.setattr(builtin_classifier, "crops_per_second", lambda folder: speeds[timed[-1]])
    answer = shipped_answer(tmp_path, 1000.0, "auto")
    assert (answer["flip_average"], answer["shipped_val_accuracy"]) == shipped
    assert timed == list(speeds) and answer["precision"] == "auto"
