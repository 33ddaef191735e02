"""Dataset specs: one string names a format, a path and options, e.g.

    fer2013:../shared/data/fer2013/fer2013.csv.gz?split=Training
    ferplus:../shared/data/fer2013?split=PublicTest
    rafdb:/data/RAF-DB/basic?split=test
    affectnet:/data/AffectNet?split=validation&classes=8
    ckplus:/data/CK+          folder:/data/CK+48          sfew:/data/SFEW_2.0?split=Val
    unlabeled:/data/casia-webface                          synthetic:?n=2000&seed=0

Each format module exposes a loader `load(path, **options) -> FaceSet`; options come from the query part.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qsl

from ..errors import DataError
from .faceset import FaceSet

FORMATS: dict[str, str] = {
    "fer2013": "semifer.data.fer2013:load_fer2013",
    "ferplus": "semifer.data.fer2013:load_ferplus",
    "rafdb": "semifer.data.rafdb:load_rafdb",
    "affectnet": "semifer.data.affectnet:load_affectnet",
    "ckplus": "semifer.data.ckplus:load_ckplus",
    "folder": "semifer.data.folders:load_class_folders",
    "sfew": "semifer.data.folders:load_sfew",
    "unlabeled": "semifer.data.folders:load_unlabeled_folder",
    "synthetic": "semifer.data.synthetic:load_synthetic",
}

# Formats whose images are stored grayscale: a model trained on them sees grey faces, so a colour photo is
# converted to grey before it reaches the model.
GRAYSCALE_FORMATS = frozenset({"fer2013", "ferplus", "synthetic"})


def _loader(fmt: str) -> Callable[..., FaceSet]:
    module, _, func = FORMATS[fmt].partition(":")
    return getattr(importlib.import_module(module), func)


def _coerce(value: str) -> object:
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    return value


def parse_spec(spec: str) -> tuple[str, str, dict[str, object]]:
    """Split `format:path?key=value&...` into its parts, checking the format name."""
    fmt, sep, rest = spec.partition(":")
    if fmt not in FORMATS and Path(spec).exists():
        raise DataError(spec, "a plain path is not a dataset spec",
                        fix=f"to get predictions for images or videos run `semifer predict MODEL {spec}`; "
                            f"to evaluate, name the format of a labelled dataset, e.g. folder:{spec}")
    if not sep or fmt not in FORMATS:
        raise DataError(spec, f"unknown dataset spec (format {fmt!r})",
                        fix=f"write FORMAT:PATH[?key=value&...] with FORMAT one of {', '.join(FORMATS)}")
    path, _, query = rest.partition("?")
    options = {k: _coerce(v) for k, v in parse_qsl(query, keep_blank_values=True)}
    return fmt, path, options


def load_dataset(spec: str, **overrides: object) -> FaceSet:
    """Parse the dataset a spec names; `overrides` win over the spec's own options."""
    fmt, path, options = parse_spec(spec)
    options.update(overrides)
    loader = _loader(fmt)
    if fmt != "synthetic" and not Path(path).exists():
        raise DataError(path, f"{fmt} dataset path does not exist", fix="check the path in the dataset spec")
    try:
        return loader(path, **options) if fmt != "synthetic" else loader(**options)
    except TypeError as exc:
        raise DataError(spec, f"bad option for the {fmt} format ({exc})") from None


def image_colour(spec: str) -> str:
    """'gray' when the format named by `spec` stores grey faces, else 'rgb'."""
    return "gray" if spec.partition(":")[0] in GRAYSCALE_FORMATS else "rgb"
