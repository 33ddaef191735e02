"""The procedural demo faces: reproducible, balanced, expressive, and usable as a FaceSet."""

from __future__ import annotations

import numpy as np
import pytest

from semifer.data import synthetic
from semifer.data.synthetic import TEST_SEED_OFFSET, generate_faces, load_synthetic, preview_grid
from semifer.errors import DataError
from semifer.labels import BASIC7


def test_shapes_dtypes_and_label_range() -> None:
    images, labels = generate_faces(40, seed=1, size=32)
    assert images.shape == (40, 32, 32) and images.dtype == np.uint8
    assert labels.shape == (40,) and labels.dtype == np.int64
    assert labels.min() >= 0 and labels.max() <= 6
    assert images.std() > 10, "images should not be flat"


def test_same_seed_same_bytes_other_seed_other_images() -> None:
    a, la = generate_faces(30, seed=3)
    b, lb = generate_faces(30, seed=3)
    c, _ = generate_faces(30, seed=4)
    assert a.tobytes() == b.tobytes() and np.array_equal(la, lb)
    assert not np.array_equal(a, c)


def test_bigger_n_extends_smaller_n() -> None:
    small, small_labels = generate_faces(20, seed=7)
    big, big_labels = generate_faces(50, seed=7)  # crosses a rendering batch boundary
    assert np.array_equal(big[:20], small) and np.array_equal(big_labels[:20], small_labels)


@pytest.mark.parametrize("n", [7, 50, 700])
def test_classes_are_balanced(n: int) -> None:
    counts = np.bincount(generate_faces(n, seed=2, size=16)[1], minlength=7)
    assert counts.min() >= n // 7 and counts.max() <= -(-n // 7)


def _same_face(label: int, size: int = 64) -> np.ndarray:
    """One mid-range identity, upright, no occlusion or noise, showing the given expression."""
    draws = synthetic._Draws(np.full((1, synthetic._N_UNIFORM), 0.5), np.zeros((1, synthetic._N_NORMAL)))
    noise = np.zeros((1, size, size), dtype=np.float32)
    return synthetic._render(draws, np.array([label]), noise, size)[0].astype(np.float64)


def test_an_expression_changes_the_face_where_its_action_units_act() -> None:
    faces = {name: _same_face(c) for c, name in enumerate(BASIC7)}
    assert np.array_equal(faces["neutral"], _same_face(0))
    mouth, brows = (slice(40, 56), slice(16, 48)), (slice(8, 26), slice(12, 52))

    def change(a: str, b: str, region: tuple[slice, slice]) -> float:
        return float(np.abs(faces[a] - faces[b])[region].mean())

    assert change("happy", "neutral", mouth) > 1.5 and change("happy", "neutral", brows) < 0.1
    assert change("surprise", "neutral", brows) > 4.0 and change("surprise", "neutral", mouth) > 4.0
    assert change("anger", "neutral", brows) > 4.0
    for i, a in enumerate(BASIC7):
        for b in BASIC7[i + 1 :]:
            assert max(change(a, b, mouth), change(a, b, brows)) > 1.0, f"{a} and {b} look the same"


def test_expressions_are_learnable_beyond_chance() -> None:
    """A ridge classifier on raw pixels beats chance (1/7) on held-out identities: labels carry signal."""

    def features(images: np.ndarray) -> np.ndarray:
        x = images.reshape(len(images), -1).astype(np.float64)
        return (x - x.mean(1, keepdims=True)) / (x.std(1, keepdims=True) + 1.0)

    train = load_synthetic(1400, seed=0, size=24)
    test = load_synthetic(700, seed=0, size=24, split="test")
    x = features(train.pixels)
    weights = np.linalg.solve(x.T @ x + 1000.0 * np.eye(x.shape[1]), x.T @ np.eye(7)[train.labels])
    accuracy = ((features(test.pixels) @ weights).argmax(1) == test.labels).mean()
    assert accuracy > 0.2


def test_train_and_test_splits_share_no_image() -> None:
    train = load_synthetic(300, seed=0, size=32)
    test = load_synthetic(300, seed=0, size=32, split="test")
    assert not {img.tobytes() for img in train.pixels} & {img.tobytes() for img in test.pixels}
    assert train.ids[5] == "synthetic/0/5" and test.ids[5] == f"synthetic/{TEST_SEED_OFFSET}/5"
    assert np.array_equal(load_synthetic(300, seed=0, size=32, split="train").pixels, train.pixels)


def test_load_synthetic_is_a_working_faceset() -> None:
    faces = load_synthetic(21, seed=0)
    assert faces.name == "synthetic" and faces.source == "synthetic" and faces.num_classes == 7
    assert faces.is_labeled and len(faces) == 21
    assert set(faces.class_counts().values()) == {3}
    image = faces.load(4)
    assert tuple(image.shape) == (3, 48, 48) and str(image.dtype) == "torch.uint8"
    with pytest.raises(DataError, match="split"):
        load_synthetic(10, split="validation")


def test_preview_grid_writes_a_png(tmp_path) -> None:
    out = preview_grid(tmp_path / "sub" / "grid.png", n_per_class=3, size=32)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_min_strength_raises_the_weakest_expression_only() -> None:
    """The same identities and draws; a higher floor moves every face's AUs toward its full prototype."""
    from semifer.data.synthetic import _PROTO, _labels, _sample_aus, _sample_streams

    labels = _labels(0, 70)
    weak = _sample_aus(_sample_streams(0, 0, 70, 8)[0], labels)
    strong = _sample_aus(_sample_streams(0, 0, 70, 8)[0], labels, min_strength=0.9)
    toward = np.abs(strong - _PROTO[labels]).sum() < np.abs(weak - _PROTO[labels]).sum()
    assert toward and not np.array_equal(weak, strong)
    a = load_synthetic(14, split="test", min_strength=0.9)
    b = load_synthetic(14, split="test")
    assert np.array_equal(a.labels, b.labels) and not np.array_equal(a.pixels, b.pixels)
    with pytest.raises(ValueError, match="min_strength"):
        generate_faces(7, min_strength=1.5)


def test_nuisance_scales_the_camera_and_keeps_everything_else() -> None:
    """Full nuisance is the default data bit for bit; none of it leaves a noise-free, unblurred face, so
    neighbouring pixels agree more; labels and identities never move."""
    full, labels = generate_faces(28, size=32)
    same, _ = generate_faces(28, size=32, nuisance=1.0)
    clean, clean_labels = generate_faces(28, size=32, nuisance=0.0)
    assert np.array_equal(full, same) and np.array_equal(labels, clean_labels)

    def roughness(images: np.ndarray) -> float:
        return float(np.abs(np.diff(images.astype(np.float32), axis=-1)).mean())

    assert roughness(clean) < roughness(full)
    assert load_synthetic(7, nuisance=0.5).pixels.shape == (7, 48, 48)
    with pytest.raises(ValueError, match="nuisance"):
        generate_faces(7, nuisance=-0.1)
