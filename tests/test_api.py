"""The Python API: the README example runs as written, `import semifer` stays cheap, predict takes paths,
PIL images and arrays in batches, train and evaluate agree with the command line."""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import semifer
from semifer.data import load_dataset
from semifer.errors import SemiferError

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_python_example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README.md has no ```python block"
    return blocks[0]


def test_readme_example_runs_verbatim(tmp_path, monkeypatch, capsys):
    code = readme_python_example()
    assert len([line for line in code.splitlines() if line.strip()]) <= 6
    face = load_dataset("synthetic:?split=test&n=1").pixels[0]
    monkeypatch.chdir(tmp_path)
    Image.fromarray(face).save("photo.jpg")
    exec(compile(code, "README.md", "exec"), {})
    printed = capsys.readouterr().out.strip().splitlines()[-1]
    assert printed.startswith("(0, 0, 48, 48) ")
    label, prob = printed.split(") ")[1].split()
    assert label in semifer.load().classes and 0 < float(prob) <= 1


def test_import_semifer_is_cheap():
    code = "import sys, semifer; print(semifer.__version__, 'torch' in sys.modules, 'cv2' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == [semifer.__version__, "False", "False"]
    assert callable(semifer.load) and callable(semifer.train) and callable(semifer.evaluate)
    with pytest.raises(AttributeError):
        semifer.nonsense  # noqa: B018


def test_predict_takes_paths_pil_images_and_arrays_in_batches(tiny_run, tmp_path):
    model = semifer.load(tiny_run)
    faces = load_dataset("synthetic:?split=test&n=5").pixels
    paths = []
    for i, pixels in enumerate(faces):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(pixels).save(paths[-1])
    by_path = model.predict(paths)
    by_pil = model.predict([Image.fromarray(p) for p in faces], batch_size=2)
    by_grey_array = model.predict(list(faces))
    by_rgb_float = model.predict([np.repeat(p[:, :, None], 3, axis=2) / 255.0 for p in faces], batch_size=1)
    one = model.predict(str(paths[0]))
    for other in (by_pil, by_grey_array, by_rgb_float):
        np.testing.assert_allclose(
            [list(o.probs.values()) for o in other], [list(p.probs.values()) for p in by_path], atol=1e-6
        )
    assert len(one) == 1 and one[0].label == by_path[0].label and one[0].source == str(paths[0])
    assert by_path[0].label == max(by_path[0].probs, key=by_path[0].probs.get)
    assert list(by_path[0].probs) == model.classes


def test_detect_and_predict_on_an_array(tiny_run):
    model = semifer.load(tiny_run)
    face = load_dataset("synthetic:?split=test&n=1").pixels[0]
    found = model.detect_and_predict(face, detect="none")
    assert len(found) == 1 and found[0].box == (0, 0, 48, 48)
    assert found[0].probs == pytest.approx(model.predict(face)[0].probs, abs=1e-6)
    assert model.detect_and_predict(np.zeros((200, 300, 3), dtype=np.uint8)) == []  # haar: nothing to find


def test_train_and_evaluate_with_overrides(tmp_path, capsys):
    run = semifer.train(
        "demo",
        progress=False,
        out_dir=str(tmp_path),
        name="api",
        data__workers=0,
        data__train="synthetic:?n=140",
        data__test="synthetic:?split=test&n=35",
        **{"data.split": "per_class:3", "train.epochs": 1, "train.iters_per_epoch": 2, "train.batch_size": 8},
    )
    assert run.run_dir == tmp_path / "api" and len(run.history) == 1
    metrics = semifer.evaluate(run.run_dir, "synthetic:?split=test&n=35", progress=False)
    assert metrics.n == 35 and metrics.accuracy == pytest.approx(run.final.accuracy)
    Image.fromarray(load_dataset("synthetic:?split=test&n=1").pixels[0]).save(tmp_path / "face.png")
    with pytest.raises(SemiferError, match="no labels"):
        semifer.evaluate(run.run_dir, f"unlabeled:{tmp_path}")


def test_load_errors_name_the_path(tmp_path):
    with pytest.raises(SemiferError, match="no such model"):
        semifer.load(tmp_path / "nothing")
    with pytest.raises(SemiferError, match="backend"):
        semifer.load(tmp_path, backend="tpu")
