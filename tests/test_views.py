"""The view ops keep the ranges of the code they follow (FixMatch's RandAugment pool as Ada-CM uses it)."""

import random

import pytest
import torch
from torchvision.transforms.functional import to_pil_image

from semifer.data.views import RANDAUGMENT_OPS, Cutout, TimmRandAugment, build_view, weak_view

MAGNITUDES = [0.0, 1.0, *(random.Random(0).random() for _ in range(30))]


def _image(seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def _colourful() -> torch.Tensor:
    img = torch.zeros(3, 32, 32, dtype=torch.uint8)
    img[0, :, :16] = 220
    img[1, :, 16:] = 200
    img[2, 8:24] = 180
    return img


@pytest.mark.parametrize("m", MAGNITUDES)
def test_brightness_always_darkens(m):
    out = RANDAUGMENT_OPS["brightness"](torch.full((3, 16, 16), 200, dtype=torch.uint8), m)
    assert 0.05 * 200 - 1 <= out.float().mean() <= 0.95 * 200 + 1


@pytest.mark.parametrize("m", MAGNITUDES)
def test_color_always_desaturates(m):
    img = _colourful()
    out = RANDAUGMENT_OPS["color"](img, m).float()
    spread = lambda x: (x.float() - x.float().mean(0, keepdim=True)).abs().mean()  # noqa: E731
    assert spread(out) < 0.96 * spread(img)
    assert spread(out) > 0.04 * spread(img)


@pytest.mark.parametrize("m", MAGNITUDES)
def test_contrast_always_lowers_contrast(m):
    img = _image()
    assert RANDAUGMENT_OPS["contrast"](img, m).float().std() < 0.96 * img.float().std()


@pytest.mark.parametrize("m", MAGNITUDES)
def test_sharpness_always_softens(m):
    img = torch.full((3, 32, 32), 64, dtype=torch.uint8)
    img[:, ::2] = 192  # mid-grey stripes: every interior pixel is an edge, with room to sharpen
    out = RANDAUGMENT_OPS["sharpness"](img, m).float()
    tv = lambda x: (x[:, 1:-1] - x[:, 2:]).abs().mean()  # noqa: E731
    assert tv(out) < 0.99 * tv(img.float())


@pytest.mark.parametrize("m", MAGNITUDES)
def test_posterize_keeps_4_to_8_bits(m):
    img = _image()
    out = RANDAUGMENT_OPS["posterize"](img, m)
    assert ((img ^ out) < 16).all()  # at most the 4 low bits cleared
    assert (out == img & 0xF0).all() if m == 1.0 else True
    assert (out == img).all() if m == 0.0 else True


@pytest.mark.parametrize(
    ("name", "limit"),
    [("rotate", 30.0), ("shear_x", 0.3), ("shear_y", 0.3), ("translate_x", 0.3), ("translate_y", 0.3)],
)
def test_geometric_ranges_are_symmetric_and_bounded(name, limit):
    op = RANDAUGMENT_OPS[name]
    random.seed(0)
    values = [op.parameter(random.random()) for _ in range(400)]
    assert max(abs(v) for v in values) <= limit
    assert max(values) > 0.9 * limit and min(values) < -0.9 * limit


def test_translate_moves_by_the_drawn_fraction():
    img = torch.zeros(3, 40, 40, dtype=torch.uint8)
    img[:, 20, 20] = 255
    random.seed(1)
    out = RANDAUGMENT_OPS["translate_x"](img, 1.0)
    col = int(out[0, 20].argmax())
    assert abs(col - 20) == 12  # 0.3 * 40


def test_solarize_threshold_runs_from_255_to_0():
    img = _image()
    assert (RANDAUGMENT_OPS["solarize"](img, 0.0)[img < 255] == img[img < 255]).all()
    assert (RANDAUGMENT_OPS["solarize"](img, 1.0) == 255 - img).all()


def test_cutout_side_is_at_most_half_the_width():
    random.seed(0)
    painted = []
    for _ in range(200):
        out = Cutout(0.5)(torch.zeros(3, 40, 40, dtype=torch.uint8))
        painted.append(int((out[0] == 125).sum()))
    assert max(painted) <= 20 * 20
    assert max(painted) > 0.6 * 20 * 20


def _rows_preserved(view, img) -> bool:
    out = view(img)
    base = build_view("test", 32)(img)
    return torch.allclose(out.sum(-1), base.sum(-1), atol=1e-3)  # a flip keeps row sums, a crop shifts rows


def test_weak_view_crop_probability():
    img = _image(3)
    torch.manual_seed(0)
    assert all(_rows_preserved(weak_view(32, crop_p=0.0), img) for _ in range(10))
    assert sum(_rows_preserved(weak_view(32, crop_p=1.0), img) for _ in range(20)) < 10
    with pytest.raises(ValueError, match="crop_p"):
        weak_view(32, crop_p=1.5)


def test_timm_randaugment_m9_changes_images():
    img = _image(4)
    torch.manual_seed(0)
    random.seed(0)
    aug = TimmRandAugment("rand-m9-mstd0.5-inc1", 32)
    outs = [aug(img) for _ in range(10)]
    assert all(o.dtype == torch.uint8 and o.shape == img.shape for o in outs)
    assert sum(not torch.equal(o, img) for o in outs) >= 5
    assert build_view("randaugment_m9", 32)(img).shape == (3, 32, 32)


def test_timm_posterize_at_full_magnitude_keeps_zero_bits_as_black():
    """rand-m9-mstd0.5 draws magnitudes up to 10, where "inc1" Posterize keeps 0 bits: Pillow 13 raises on
    that, the view must not (it crashed Bridging stage 1 after a few hundred steps)."""
    from semifer.data.views import posterize_any_bits

    img = to_pil_image(torch.randint(1, 256, (3, 16, 16), dtype=torch.uint8))
    black = ((0, 0), (0, 0), (0, 0))
    assert posterize_any_bits(img, 0).getextrema() == black
    assert posterize_any_bits(img, 8) is img and posterize_any_bits(img, 4).getextrema() != black
    aug = TimmRandAugment("rand-m10-mstd0.5-inc1", 16)
    posterize = next(op for op in aug.transform.ops if op.name.startswith("Posterize"))
    posterize.prob, posterize.magnitude, posterize.magnitude_std = 1.0, 10, 0
    assert posterize(img).getextrema() == ((0, 0), (0, 0), (0, 0))
