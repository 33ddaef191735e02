"""Procedural face images with the seven basic expressions: the data `semifer demo` runs on.

No real FER data may ship with the package, so the demo draws its own faces. Each face combines an
identity (face shape, feature placement, skin, hair), an expression given as FACS-like action-unit (AU)
intensities, and nuisances (pose, lighting, blur, noise, occlusion, background clutter). Expression
strength varies down to subtle, so weak faces sit close to neighbouring classes (fear/surprise,
anger/disgust, sad/neutral) the way real FER is confusable, and a handful of labels per class is
clearly not enough to learn it.

Sample i is drawn from its own random stream (seed, i), so a bigger `n` extends a smaller one. Rendering
is vectorised over a batch with numpy: shapes are signed distances turned into coverage with a
one-pixel ramp (anti-aliasing), curves are thick quadratic strokes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..labels import BASIC7
from .faceset import FaceSet

Array = np.ndarray
Scalar = Array | float  # a number, or one per sample shaped (n, 1, 1)
AUMap = dict[str, Array]  # AU name -> intensities shaped (n, 1, 1)

AUS: tuple[str, ...] = (
    "inner_brow_raise",  # AU1
    "outer_brow_raise",  # AU2
    "brow_lower",  # AU4
    "upper_lid_raise",  # AU5
    "lid_tighten",  # AU7
    "cheek_raise",  # AU6
    "nose_wrinkle",  # AU9
    "upper_lip_raise",  # AU10
    "lip_corner_pull",  # AU12
    "lip_corner_depress",  # AU15
    "lip_stretch",  # AU20
    "lip_press",  # AU24
    "jaw_drop",  # AU25/26
)

PROTOTYPES: dict[str, dict[str, float]] = {
    "neutral": {},
    "happy": {"lip_corner_pull": 1.0, "cheek_raise": 0.8, "lid_tighten": 0.3, "jaw_drop": 0.25},
    "sad": {"inner_brow_raise": 0.9, "brow_lower": 0.35, "lip_corner_depress": 0.9, "lid_tighten": 0.2},
    "surprise": {"inner_brow_raise": 1.0, "outer_brow_raise": 1.0, "upper_lid_raise": 1.0, "jaw_drop": 1.0},
    "fear": {
        "inner_brow_raise": 1.0,
        "outer_brow_raise": 0.5,
        "brow_lower": 0.6,
        "upper_lid_raise": 0.9,
        "lip_stretch": 1.0,
        "jaw_drop": 0.4,
    },
    "disgust": {
        "nose_wrinkle": 1.0,
        "upper_lip_raise": 0.9,
        "brow_lower": 0.5,
        "lid_tighten": 0.4,
        "cheek_raise": 0.3,
        "lip_corner_depress": 0.3,
    },
    "anger": {"brow_lower": 1.0, "lid_tighten": 0.8, "lip_press": 1.0, "upper_lid_raise": 0.2},
}

_PROTO = np.array([[PROTOTYPES[c].get(au, 0.0) for au in AUS] for c in BASIC7], dtype=np.float32)
_AU = {name: k for k, name in enumerate(AUS)}
_N_UNIFORM, _N_NORMAL = 128, 48
_BATCH = 32  # samples rendered together: small enough for the arrays to stay in cache
TEST_SEED_OFFSET = 1_000_003
MIN_STRENGTH = 0.35  # the subtlest expression, as a fraction of the full prototype


# ----------------------------------------------------------------------------------------- random draws
class _Draws:
    """Per-sample random numbers handed out column by column, so every parameter has a fixed slot.

    Each row comes from the sample's own generator, so a parameter of sample i never depends on
    which other samples are drawn in the same batch.
    """

    def __init__(self, uniforms: np.ndarray, normals: np.ndarray) -> None:
        self._u, self._z = uniforms, normals
        self._iu = self._iz = 0

    def _take(self, source: str, k: int) -> np.ndarray:
        if source == "u":
            cols, self._iu = self._u[:, self._iu : self._iu + k], self._iu + k
            if self._iu > _N_UNIFORM:
                raise RuntimeError("more uniform parameters than reserved slots; raise _N_UNIFORM")
        else:
            cols, self._iz = self._z[:, self._iz : self._iz + k], self._iz + k
            if self._iz > _N_NORMAL:
                raise RuntimeError("more normal parameters than reserved slots; raise _N_NORMAL")
        return cols.astype(np.float32)

    def uniform(self, lo: float, hi: float) -> np.ndarray:
        """One parameter per sample, shaped (n, 1, 1) to broadcast against image grids."""
        return (lo + (hi - lo) * self._take("u", 1))[:, :, None]

    def normal(self, sd: float, limit: float = 2.5) -> np.ndarray:
        return (sd * np.clip(self._take("z", 1), -limit, limit))[:, :, None]

    def chance(self, p: float) -> np.ndarray:
        return self._take("u", 1)[:, :, None] < p

    def integers(self, k: int) -> np.ndarray:
        return np.minimum((self._take("u", 1)[:, :, None] * k).astype(np.int64), k - 1)

    def normals(self, k: int) -> np.ndarray:
        return self._take("z", k)


def _sample_streams(seed: int, start: int, stop: int, size: int) -> tuple[_Draws, np.ndarray]:
    """Parameter draws and pixel noise of samples start..stop-1, each from the stream (seed, i)."""
    uniforms = np.empty((stop - start, _N_UNIFORM))
    normals = np.empty((stop - start, _N_NORMAL))
    noise = np.empty((stop - start, size, size), dtype=np.float32)
    for row, i in enumerate(range(start, stop)):
        rng = np.random.default_rng([seed, i, 0])
        uniforms[row] = rng.random(_N_UNIFORM)
        normals[row] = rng.standard_normal(_N_NORMAL)
        noise[row] = rng.standard_normal((size, size), dtype=np.float32)
    return _Draws(uniforms, normals), noise


def _labels(seed: int, n: int) -> np.ndarray:
    """Balanced labels: every block of 7 consecutive samples holds each class once, in a random order."""
    blocks = -(-n // 7)
    perms = [np.random.default_rng([seed, b, 1]).permutation(7) for b in range(blocks)]
    return np.concatenate(perms)[:n].astype(np.int64) if perms else np.zeros(0, dtype=np.int64)


# ----------------------------------------------------------------------------------------- parameters
@dataclass
class _Identity:
    """Who the face is: shape, feature layout and colours (all (n, 1, 1) arrays)."""

    face_w: np.ndarray
    face_h: np.ndarray
    chin: np.ndarray
    skin: np.ndarray
    eye_y: np.ndarray
    eye_dx: np.ndarray
    eye_w: np.ndarray
    eye_open: np.ndarray
    iris: np.ndarray
    brow_gap: np.ndarray
    brow_thick: np.ndarray
    brow_dark: np.ndarray
    brow_arch: np.ndarray
    nose_y: np.ndarray
    nose_w: np.ndarray
    mouth_y: np.ndarray
    mouth_w: np.ndarray
    lip: np.ndarray
    lip_dark: np.ndarray
    rest_corner: np.ndarray
    folds: np.ndarray
    has_hair: np.ndarray
    long_hair: np.ndarray
    hairline: np.ndarray
    hair_tone: np.ndarray


def _sample_identity(d: _Draws) -> _Identity:
    return _Identity(
        face_w=d.uniform(0.58, 0.72),
        face_h=d.uniform(0.78, 0.92),
        chin=d.uniform(0.0, 0.3),
        skin=d.uniform(0.35, 0.85),
        eye_y=d.uniform(-0.16, -0.06),
        eye_dx=d.uniform(0.22, 0.3),
        eye_w=d.uniform(0.085, 0.115),
        eye_open=d.uniform(0.38, 0.55),
        iris=d.uniform(0.05, 0.35),
        brow_gap=d.uniform(0.12, 0.18),
        brow_thick=d.uniform(0.028, 0.055),
        brow_dark=d.uniform(0.35, 0.8),
        brow_arch=d.uniform(0.0, 0.04),
        nose_y=d.uniform(0.15, 0.25),
        nose_w=d.uniform(0.05, 0.08),
        mouth_y=d.uniform(0.4, 0.5),
        mouth_w=d.uniform(0.17, 0.24),
        lip=d.uniform(0.018, 0.035),
        lip_dark=d.uniform(0.6, 0.85),
        rest_corner=d.normal(0.012),
        folds=d.uniform(0.0, 0.3),
        has_hair=d.chance(0.8),
        long_hair=d.chance(0.45),
        hairline=d.uniform(-0.72, -0.48),
        hair_tone=d.uniform(0.05, 0.65),
    )


def _sample_aus(d: _Draws, labels: np.ndarray, min_strength: float = MIN_STRENGTH) -> np.ndarray:
    """AU intensities (n, len(AUS)): the class prototype at a random strength, jittered per AU.

    Strength runs from subtle (`min_strength`) to full, and a stray AU now and then fires on its own (a
    neutral face with a slight smile), so weak expressions overlap their neighbours.
    """
    strength = d.uniform(min_strength, 1.0)[:, :, 0]
    jitter = 0.08 * d.normals(len(AUS))
    stray_au = d.integers(len(AUS))[:, 0, 0]
    stray = np.where(d.chance(0.3), d.uniform(0.0, 0.3), 0.0)[:, :, 0]
    aus = strength * _PROTO[labels] + jitter
    aus[np.arange(len(labels)), stray_au] += stray[:, 0]
    return np.clip(aus, 0.0, 1.0).astype(np.float32)


# ----------------------------------------------------------------------------------------- geometry
def _cover(dist: Array, px: Scalar) -> Array:
    """Anti-aliased coverage of the region dist < 0: a linear ramp one pixel wide across the edge."""
    return np.clip(0.5 - dist / px, 0.0, 1.0)


def _paint(img: Array, alpha: Array, color: Scalar) -> Array:
    """Lay `color` over `img` with coverage `alpha` (the 'over' operator)."""
    return img + alpha * (color - img)


def _ellipse(u: Array, v: Array, cu: Scalar, cv: Scalar, ru: Scalar, rv: Scalar) -> Array:
    """Approximate signed distance to an axis-aligned ellipse (exact for circles)."""
    r = np.sqrt(((u - cu) / ru) ** 2 + ((v - cv) / rv) ** 2)
    return (r - 1.0) * np.minimum(ru, rv)


def _stroke(u: Array, v: Array, u0: Scalar, u1: Scalar, y0: Scalar, y1: Scalar, bend: Scalar, width: Scalar) -> Array:
    """Signed distance to a thick quadratic curve over u0..u1 (u0 < u1) with round caps.

    The curve runs from (u0, y0) to (u1, y1) and its middle is displaced by `bend` (down is +). The
    distance to the curve is approximated by the vertical gap divided by the slope's secant.
    """
    span = u1 - u0
    t = np.clip((u - u0) / span, 0.0, 1.0)
    curve = y0 + (y1 - y0) * t + 4.0 * bend * t * (1.0 - t)
    slope = ((y1 - y0) + 4.0 * bend * (1.0 - 2.0 * t)) / span
    dv = (v - curve) / np.sqrt(1.0 + slope * slope)
    du = np.maximum(np.maximum(u0 - u, u - u1), 0.0)
    return np.sqrt(dv * dv + du * du) - 0.5 * width


# ----------------------------------------------------------------------------------------- face parts
def _draw_background(d: _Draws, x: np.ndarray, y: np.ndarray, n: int) -> np.ndarray:
    """A grey level with a gradient, two soft gratings and two boxes: clutter for the edges."""
    img = d.uniform(0.1, 0.9) + d.uniform(-0.2, 0.2) * x + d.uniform(-0.2, 0.2) * y
    for _ in range(2):
        angle, freq = d.uniform(0, np.pi), d.uniform(1.0, 6.0)
        phase, amp = d.uniform(0, 2 * np.pi), d.uniform(0.0, 0.15)
        img = img + amp * np.sin(freq * np.pi * (np.cos(angle) * x + np.sin(angle) * y) + phase)
    for _ in range(2):
        cx, cy, w, h = d.uniform(-1, 1), d.uniform(-1, 1), d.uniform(0.1, 0.5), d.uniform(0.1, 0.5)
        box = np.maximum(np.abs(x - cx) - w, np.abs(y - cy) - h)
        img = _paint(img, _cover(box, 2.0 / x.shape[-1]) * d.chance(0.6), d.uniform(0.0, 1.0))
    return np.broadcast_to(img, (n, y.shape[1], x.shape[2])).astype(np.float32)


def _draw_head(idn: _Identity, axis: np.ndarray, px: float) -> tuple[np.ndarray, np.ndarray]:
    """Hair behind, neck, face skin with rounded shading and a fringe: colour and coverage of the head."""
    u, v = axis[None, None, :], axis[None, :, None]
    n = len(idn.skin)
    color = np.broadcast_to(idn.skin, (n, len(axis), len(axis))).copy()
    alpha = np.zeros_like(color)
    hair_back = _ellipse(u, v, 0.0, -0.08, idn.face_w * 1.18, idn.face_h * 1.08)
    hair_back = np.maximum(hair_back, v - np.where(idn.long_hair, 0.55, -0.1).astype(np.float32))
    neck = np.maximum(np.abs(u) - 0.46 * idn.face_w, 0.5 - v)
    width = idn.face_w * (1.0 - idn.chin * np.clip(v / idn.face_h, 0.0, 1.0) ** 2)
    radius = np.sqrt((u / width) ** 2 + (v / idn.face_h) ** 2)
    fringe = np.maximum(hair_back, v - idn.hairline - 0.04 * np.cos(9.0 * u))
    layers = (
        (_cover(hair_back, px) * idn.has_hair, idn.hair_tone),
        (_cover(neck, px), idn.skin * 0.75),
        (_cover((radius - 1.0) * idn.face_w, px), idn.skin * (1.0 - 0.3 * radius**4)),
        (_cover(fringe, px) * idn.has_hair, idn.hair_tone),
    )
    for cover, tone in layers:
        color = _paint(color, cover, tone)
        alpha = _paint(alpha, cover, 1.0)
    return color, alpha


def _draw_eyes(img: Array, u: Array, v: Array, idn: _Identity, au: AUMap, px: float) -> Array:
    """Almond eyes whose lids open with AU5 and close with AU7/AU6, plus lid line, iris and socket shade."""
    lid_up = 1.0 + 0.9 * au["upper_lid_raise"] - 0.5 * au["lid_tighten"]
    lid_low = 1.0 + 0.3 * au["upper_lid_raise"] - 0.35 * au["lid_tighten"] - 0.5 * au["cheek_raise"]
    for side in (-1.0, 1.0):
        half_w = idn.eye_w
        cu = side * idn.eye_dx
        t2 = np.clip(((u - cu) / half_w) ** 2, 0.0, 1.0)
        h = idn.eye_w * idn.eye_open
        top = idn.eye_y - h * lid_up * (1.0 - t2)
        bottom = idn.eye_y + 0.8 * h * lid_low * (1.0 - t2)
        socket = _ellipse(u, v, cu, idn.eye_y - 0.02, half_w * 1.6, idn.eye_w * 0.9)
        img = _paint(img, 0.25 * _cover(socket, 4 * px), idn.skin * 0.6)
        eye = np.maximum(np.maximum(top - v, v - bottom), np.abs(u - cu) - half_w)
        img = _paint(img, _cover(eye, px), 0.92)
        iris = _ellipse(u, v, cu, idn.eye_y, 0.55 * idn.eye_w, 0.55 * idn.eye_w)
        img = _paint(img, _cover(np.maximum(iris, eye), px), idn.iris)
        lash = _stroke(
            u, v, cu - half_w, cu + half_w, idn.eye_y, idn.eye_y, -h * lid_up, 0.022 + 0.01 * au["lid_tighten"]
        )
        img = _paint(img, _cover(lash, px), idn.iris * 0.5)
        crease = _stroke(
            u,
            v,
            cu - 0.8 * half_w,
            cu + 0.8 * half_w,
            idn.eye_y + 0.8 * h * lid_low + 0.03,
            idn.eye_y + 0.8 * h * lid_low + 0.03,
            0.015,
            0.014,
        )
        img = _paint(img, 0.6 * au["cheek_raise"] * _cover(crease, px), idn.skin * 0.55)
    return img


def _draw_brows(img: Array, u: Array, v: Array, idn: _Identity, au: AUMap, px: float) -> Array:
    """Brows: AU1 lifts the inner ends, AU2 the outer ends, AU4 lowers them and draws them together.

    Raised brows crease the forehead; lowered ones crease the skin between the brows.
    """
    base = idn.eye_y - idn.eye_w * idn.eye_open - idn.brow_gap
    lower = 0.07 * au["brow_lower"]
    inner_y = base - 0.13 * au["inner_brow_raise"] + 1.4 * lower
    outer_y = base - 0.11 * au["outer_brow_raise"] + 0.5 * lower + 0.02
    inner_u = 0.1 - 0.045 * au["brow_lower"]
    outer_u = idn.eye_dx + 0.16
    bend = -idn.brow_arch - 0.03 * au["outer_brow_raise"]
    for side in (-1.0, 1.0):
        uu = side * u
        brow = _stroke(uu, v, inner_u, outer_u, inner_y, outer_y, bend, idn.brow_thick)
        img = _paint(img, _cover(brow, px), idn.iris * idn.brow_dark)
    raise_ = np.maximum(au["inner_brow_raise"], au["outer_brow_raise"])
    for k in range(2):
        y = base - 0.2 - 0.07 * k
        line = _stroke(u, v, -0.3 + 0.05 * k, 0.3 - 0.05 * k, y, y, -0.02, 0.014)
        img = _paint(img, 0.7 * raise_ * _cover(line, px), idn.skin * 0.6)
    for side in (-1.0, 1.0):
        furrow = _stroke(v, u, base - 0.08, base + 0.06, side * 0.03, side * 0.045, 0.0, 0.016)
        img = _paint(img, 0.8 * au["brow_lower"] * _cover(furrow, px), idn.skin * 0.55)
    return img


def _draw_nose(img: Array, u: Array, v: Array, idn: _Identity, au: AUMap, px: float) -> Array:
    """Nose sides, base shadow and nostrils; AU9 lifts the nostrils and wrinkles the bridge."""
    lift = 0.035 * au["nose_wrinkle"] + 0.015 * au["upper_lip_raise"]
    tip = idn.nose_y - lift
    width = idn.nose_w * (1.0 + 0.3 * au["nose_wrinkle"])
    for side in (-1.0, 1.0):
        ridge = _stroke(v, side * u, idn.eye_y + 0.06, tip - 0.02, 0.045, idn.nose_w * 0.9, 0.0, 0.016)
        img = _paint(img, 0.35 * _cover(ridge, px), idn.skin * 0.6)
        nostril = _ellipse(u, v, side * 0.55 * width, tip + 0.015, 0.028, 0.016)
        img = _paint(img, 0.8 * _cover(nostril, px), idn.skin * 0.35)
    base = _stroke(u, v, -width, width, tip, tip, 0.03, 0.022)
    img = _paint(img, 0.5 * _cover(base, px), idn.skin * 0.55)
    for k in range(3):
        y = idn.eye_y + 0.05 + 0.035 * k
        wrinkle = _stroke(u, v, -0.07, 0.07, y, y, -0.012, 0.012)
        img = _paint(img, 0.9 * au["nose_wrinkle"] * _cover(wrinkle, px), idn.skin * 0.5)
    return img


def _mouth_shape(idn: _Identity, au: AUMap) -> tuple[Array, Array, Array, Array]:
    """Half width, corner height, and upper/lower lip mid-points of the mouth opening."""
    half_w = idn.mouth_w * (
        1.0 + 0.3 * au["lip_stretch"] + 0.15 * au["lip_corner_pull"] - 0.12 * au["lip_press"] - 0.08 * au["jaw_drop"]
    )
    corner = (
        idn.mouth_y
        - idn.rest_corner
        - 0.1 * au["lip_corner_pull"]
        + 0.075 * au["lip_corner_depress"]
        + 0.02 * au["lip_stretch"]
    )
    gap = 0.24 * au["jaw_drop"] + 0.03 * au["lip_stretch"]
    upper = idn.mouth_y - 0.3 * gap - 0.06 * au["upper_lip_raise"]
    lower = idn.mouth_y + 0.7 * gap + 0.01 * au["upper_lip_raise"]
    return half_w, corner, upper, lower


def _draw_mouth(img: Array, u: Array, v: Array, idn: _Identity, au: AUMap, px: float) -> Array:
    """Lips around an opening; AU12/15 move the corners, AU10 lifts the upper lip, AU24 thins the lips."""
    half_w, corner, upper, lower = _mouth_shape(idn, au)
    thick = idn.lip * (1.0 - 0.7 * au["lip_press"])
    lip_color = idn.skin * idn.lip_dark
    top_lip = _stroke(
        u, v, -half_w, half_w, corner - 0.5 * thick, corner - 0.5 * thick, upper - corner - 0.5 * thick, thick * 1.3
    )
    low_lip = _stroke(
        u, v, -half_w, half_w, corner + 0.5 * thick, corner + 0.5 * thick, lower - corner + 0.8 * thick, thick * 1.8
    )
    img = _paint(img, _cover(np.minimum(top_lip, low_lip), px), lip_color)
    t2 = np.clip((u / half_w) ** 2, 0.0, 1.0)
    top = corner + (upper - corner) * (1.0 - t2)
    bottom = corner + (lower - corner) * (1.0 - t2)
    opening = np.maximum(np.maximum(top - v, v - bottom), np.abs(u) - half_w)
    img = _paint(img, _cover(opening, px), 0.08)
    teeth_show = np.clip(au["lip_corner_pull"] + au["upper_lip_raise"] - 0.3, 0.0, 1.0)
    teeth = np.maximum(opening, v - top - 0.045)
    img = _paint(img, teeth_show * _cover(teeth, px), 0.85)
    line = _stroke(
        u, v, -half_w, half_w, corner, corner, 0.5 * (upper + lower) - corner, 0.014 + 0.012 * au["lip_press"]
    )
    return _paint(img, _cover(line, px), lip_color * 0.35)


def _draw_cheeks(img: Array, u: Array, v: Array, idn: _Identity, au: AUMap, px: float) -> Array:
    """Nasolabial folds that deepen with AU6/9/10/12 and cheek highlights raised by AU6."""
    half_w, corner, _, _ = _mouth_shape(idn, au)
    depth = np.clip(
        idn.folds + 0.7 * au["lip_corner_pull"] + 0.5 * au["upper_lip_raise"] + 0.4 * au["nose_wrinkle"], 0.0, 1.0
    )
    for side in (-1.0, 1.0):
        fold = _stroke(v, side * u, idn.nose_y - 0.03, corner + 0.03, idn.nose_w + 0.05, half_w + 0.05, 0.04, 0.018)
        img = _paint(img, 0.6 * depth * _cover(fold, px), idn.skin * 0.55)
        cheek = _ellipse(u, v, side * (idn.eye_dx + 0.05), idn.nose_y - 0.02 - 0.06 * au["cheek_raise"], 0.12, 0.08)
        img = _paint(img, 0.4 * au["cheek_raise"] * _cover(cheek, 6 * px), np.minimum(idn.skin * 1.3, 1.0))
    return img


def _draw_occluder(
    d: _Draws, img: Array, x: Array, y: Array, u: Array, v: Array, idn: _Identity, px: float, nuisance: float = 1.0
) -> Array:
    """On some faces (a quarter at full `nuisance`): a glasses-like bar over the eyes, a hand-like blob, or a
    box anywhere."""
    kind = d.integers(3)
    present = d.chance(0.25 * nuisance)
    alpha = d.uniform(0.6, 1.0)
    tone = d.uniform(0.0, 1.0)
    bar = np.abs(v - idn.eye_y - d.normal(0.03)) - d.uniform(0.05, 0.1)
    bar = np.maximum(bar, np.abs(u) - idn.face_w * 1.05)
    hand = _ellipse(x, y, d.uniform(-0.6, 0.6), d.uniform(0.1, 0.9), d.uniform(0.25, 0.45), d.uniform(0.15, 0.3))
    cx, cy, w, h = d.uniform(-0.8, 0.8), d.uniform(-0.8, 0.8), d.uniform(0.1, 0.4), d.uniform(0.1, 0.4)
    box = np.maximum(np.abs(x - cx) - w, np.abs(y - cy) - h)
    shape = np.where(kind == 0, bar, np.where(kind == 1, hand, box))
    color = np.where(kind == 0, 0.15 * tone, np.where(kind == 1, idn.skin * d.uniform(0.8, 1.1), tone))
    return _paint(img, present * alpha * _cover(shape, px), color)


# ----------------------------------------------------------------------------------------- nuisances
def _blur_rows(img: np.ndarray, w1: np.ndarray, w2: np.ndarray) -> np.ndarray:
    size = img.shape[-1]
    p = np.pad(img, ((0, 0), (0, 0), (2, 2)), mode="edge")
    return (
        p[..., 2 : 2 + size]
        + w1 * (p[..., 1 : 1 + size] + p[..., 3 : 3 + size])
        + w2 * (p[..., :size] + p[..., 4 : 4 + size])
    ) / (1.0 + 2.0 * w1 + 2.0 * w2)


def _blur(img: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Separable 5-tap Gaussian blur with a per-image sigma (near 0 leaves the image unchanged)."""
    s2 = 2.0 * np.maximum(sigma, 1e-2) ** 2
    w1, w2 = np.exp(-1.0 / s2), np.exp(-4.0 / s2)
    img = _blur_rows(img, w1, w2)
    return _blur_rows(img.transpose(0, 2, 1), w1, w2).transpose(0, 2, 1)


def _apply_camera(d: _Draws, img: Array, x: Array, y: Array, noise: Array, nuisance: float = 1.0) -> Array:
    """Directional light, contrast/brightness/gamma, blur and sensor noise, each drawn over its range
    shrunk towards "no change" by `nuisance` (1: the full ranges, 0: none of them)."""

    def scaled(value: Array, neutral: float) -> Array:  # exactly `value` at full nuisance
        return value if nuisance == 1.0 else neutral + nuisance * (value - neutral)

    angle = d.uniform(0.0, 2.0 * np.pi)
    light = 1.0 + scaled(d.uniform(0.0, 0.45), 0.0) * (np.cos(angle) * x + np.sin(angle) * y)
    img = np.clip(img * light, 0.0, 1.0)
    contrast, shift = scaled(d.uniform(0.7, 1.2), 1.0), scaled(d.uniform(-0.15, 0.15), 0.0)
    img = np.clip(0.5 + contrast * (img - 0.5) + shift, 0.0, 1.0)
    img = img ** scaled(d.uniform(0.7, 1.4), 1.0)
    img = _blur(img, scaled(d.uniform(0.0, 0.9), 0.0))
    return img + scaled(d.uniform(0.0, 0.05), 0.0) * noise


# ----------------------------------------------------------------------------------------- rendering
_EXTENT = 1.12  # the upright face frame is drawn on a canvas over -_EXTENT.._EXTENT on both axes

# Each part is drawn only inside its window of the face frame, (v range, u range, nose-like depth):
# the windows hold that part for every identity, expression and yaw, and keep the drawing cheap.
_PARTS = (
    (_draw_cheeks, (-0.18, 0.7), (-0.82, 0.82), 0.0),
    (_draw_eyes, (-0.4, 0.16), (-0.82, 0.82), 0.0),
    (_draw_brows, (-0.74, -0.04), (-0.82, 0.82), 0.0),
    (_draw_nose, (-0.16, 0.34), (-0.56, 0.56), 0.06),
    (_draw_mouth, (0.18, 0.82), (-0.72, 0.72), 0.0),
)


def _yawed(u: np.ndarray, idn: _Identity, yaw: np.ndarray, depth: float) -> np.ndarray:
    """Where a feature at frame column u sits on a head turned by `yaw` (a cylinder of the face's width).

    Features on the far side get squeezed and everything slides sideways; parts that stick out (the
    nose, `depth`) slide further.
    """
    radius = 1.05 * idn.face_w
    angle = np.arcsin(np.clip(u / radius, -1.0, 1.0)) - yaw
    return radius * np.sin(angle) - depth * yaw


def _draw_face(idn: _Identity, au: AUMap, yaw: Array, size: int) -> tuple[Array, Array]:
    """The head in its upright frame: colour and coverage on a canvas a bit finer than the image."""
    m = int(np.ceil(1.27 * size))
    axis = ((np.arange(m, dtype=np.float32) + 0.5) * (2.0 * _EXTENT / m) - _EXTENT).astype(np.float32)
    px = 2.0 * _EXTENT / m
    color, alpha = _draw_head(idn, axis, px)
    for draw, v_range, u_range, depth in _PARTS:
        rows = slice(*np.searchsorted(axis, v_range))
        cols = slice(*np.searchsorted(axis, u_range))
        u = _yawed(axis[None, None, cols], idn, yaw, depth)
        color[:, rows, cols] = draw(color[:, rows, cols], u, axis[None, rows, None], idn, au, px)
    return color, alpha


def _pose(color: Array, alpha: Array, u: Array, v: Array) -> tuple[Array, Array]:
    """Bilinear lookup of the face canvas at frame coordinates (u, v); the canvas edge extends outward."""
    n, m, _ = color.shape
    fx = np.clip((u + _EXTENT) * (m / (2.0 * _EXTENT)) - 0.5, 0.0, m - 1.001)
    fy = np.clip((v + _EXTENT) * (m / (2.0 * _EXTENT)) - 0.5, 0.0, m - 1.001)
    x0, y0 = fx.astype(np.int32), fy.astype(np.int32)
    wx, wy = fx - x0, fy - y0
    idx = (np.arange(n, dtype=np.int32)[:, None, None] * m + y0) * m + x0
    out = []
    for plane in (color.reshape(-1), alpha.reshape(-1)):
        p00, p01 = np.take(plane, idx), np.take(plane, idx + 1)
        p10, p11 = np.take(plane, idx + m), np.take(plane, idx + m + 1)
        top = p00 + wx * (p01 - p00)
        out.append(top + wy * (p10 + wx * (p11 - p10) - top))
    return out[0], out[1]


def _render(
    d: _Draws, labels: Array, noise: Array, size: int, min_strength: float = MIN_STRENGTH, nuisance: float = 1.0
) -> Array:
    """Draw one batch: upright face on its canvas, posed into the image over clutter, then the camera."""
    n = len(labels)
    coords = (np.arange(size, dtype=np.float32) + 0.5) * (2.0 / size) - 1.0
    x, y = coords[None, None, :], coords[None, :, None]
    idn = _sample_identity(d)
    au_matrix = _sample_aus(d, labels, min_strength)
    au = {name: au_matrix[:, k, None, None] for name, k in _AU.items()}
    angle = d.normal(np.deg2rad(9.0))
    scale = d.uniform(0.84, 1.06)
    cx, cy = d.uniform(-0.1, 0.1), d.uniform(-0.08, 0.1)
    yaw = d.uniform(-0.45, 0.45)
    color, alpha = _draw_face(idn, au, yaw, size)
    dx, dy = x - cx, y - cy
    u = (np.cos(angle) * dx + np.sin(angle) * dy) / scale
    v = (-np.sin(angle) * dx + np.cos(angle) * dy) / scale
    color, alpha = _pose(color, alpha, u, v)
    img = _draw_background(d, x, y, n)
    img = _paint(img, alpha, color)
    img = _draw_occluder(d, img, x, y, u, v, idn, 2.0 / size, nuisance)
    img = _apply_camera(d, img, x, y, noise, nuisance)
    return np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)


def generate_faces(
    n: int, seed: int = 0, size: int = 48, min_strength: float = MIN_STRENGTH, nuisance: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """`n` grayscale faces, uint8 (n, size, size), and their canonical labels 0..6 (int64); expressions
    at `min_strength`..1 of their full prototype (a higher floor drops the subtlest, most confusable ones);
    `nuisance` scales the camera (light, contrast, gamma, blur, noise) and the chance of an occluder, from
    0 (none) to 1 (the full ranges). Pose, identity and background clutter are never scaled.

    Deterministic in (seed, i) per sample, so `generate_faces(50)[:20]` equals `generate_faces(20)`.
    """
    if n < 0 or seed < 0 or size < 8 or not 0.0 <= min_strength <= 1.0 or not 0.0 <= nuisance <= 1.0:
        raise ValueError(
            f"need n >= 0, seed >= 0, size >= 8, 0 <= min_strength <= 1 and 0 <= nuisance <= 1 "
            f"(got n={n}, seed={seed}, size={size}, min_strength={min_strength}, "
            f"nuisance={nuisance})"
        )
    labels = _labels(seed, n)
    images = np.empty((n, size, size), dtype=np.uint8)
    for start in range(0, n, _BATCH):
        stop = min(start + _BATCH, n)
        draws, noise = _sample_streams(seed, start, stop, size)
        images[start:stop] = _render(draws, labels[start:stop], noise, size, min_strength, nuisance)
    return images, labels


def load_synthetic(
    n: int = 4000,
    seed: int = 0,
    size: int = 48,
    split: str | None = None,
    min_strength: float = MIN_STRENGTH,
    nuisance: float = 1.0,
) -> FaceSet:
    """The procedural faces as a FaceSet; the "test" split draws other identities from another stream."""
    if split not in (None, "train", "test"):
        raise DataError("synthetic", f"split must be train or test, not {split!r}", fix="use split=train or split=test")
    for key, value, low in (("n", n, 1), ("seed", seed, 0), ("size", size, 8)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise DataError(
                "synthetic",
                f"{key} must be a whole number >= {low}, not {value!r}",
                fix="e.g. synthetic:?n=2000&seed=0&size=48",
            )
    stream = seed + TEST_SEED_OFFSET if split == "test" else seed
    images, labels = generate_faces(n, stream, size, min_strength, nuisance)
    ids = [f"synthetic/{stream}/{i}" for i in range(n)]
    return FaceSet("synthetic", ids, labels, num_classes=7, pixels=images, source="synthetic")


def preview_grid(
    path: str | Path,
    n_per_class: int = 8,
    seed: int = 0,
    size: int = 48,
    min_strength: float = MIN_STRENGTH,
    nuisance: float = 1.0,
) -> Path:
    """Save a PNG grid of faces, one row per expression, so a person can judge what the demo learns."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    images, labels = generate_faces(7 * n_per_class, seed, size, min_strength, nuisance)
    fig = Figure(figsize=(1.1 * n_per_class + 1.0, 7.7))
    FigureCanvasAgg(fig)
    axes = fig.subplots(7, n_per_class, squeeze=False)
    for c, name in enumerate(BASIC7):
        picks = np.flatnonzero(labels == c)[:n_per_class]
        for k, ax in enumerate(axes[c]):
            ax.set_xticks([])
            ax.set_yticks([])
            if k < len(picks):
                ax.imshow(images[picks[k]], cmap="gray", vmin=0, vmax=255)
        axes[c, 0].set_ylabel(name, rotation=0, ha="right", va="center")
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80)
    return out
