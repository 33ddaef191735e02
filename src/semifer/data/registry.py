"""Dataset specs: one string names a format, a path and options, e.g.

    fer2013:fer2013/fer2013.csv.gz?split=Training
    ferplus:fer2013?split=PublicTest
    rafdb:/data/RAF-DB/basic?split=test
    affectnet:/data/AffectNet?split=validation&classes=8
    ckplus:/data/CK+          folder:/data/CK+48          sfew:/data/SFEW_2.0?split=Val
    unlabeled:/data/casia-webface                          synthetic:?n=2000&seed=0
    list:/data/my-faces.csv   (a `path` column, optionally `label`; or one image path per line)

Each format module exposes a loader `load(path, **options) -> FaceSet`; options come from the query part.
A relative path is found in the current folder or else under the data root (`data.root=`, or the
`SEMIFER_DATA` environment variable), so the packaged presets name `fer2013/fer2013.csv.gz` and find it
wherever the user keeps their datasets.
"""

from __future__ import annotations

import importlib
import os
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
    "list": "semifer.data.folders:load_image_list",
    "synthetic": "semifer.data.synthetic:load_synthetic",
}

# Formats whose images are stored grayscale: a model trained on them sees grey faces, so a colour photo is
# converted to grey before it reaches the model.
GRAYSCALE_FORMATS = frozenset({"fer2013", "ferplus", "synthetic"})


DATA_ROOT_ENV = "SEMIFER_DATA"

# What each format expects on disk and where the dataset is published, for the error a missing one gives.
LAYOUTS: dict[str, tuple[str, str]] = {
    "fer2013": (
        "the Kaggle CSV fer2013.csv (or .csv.gz) with columns emotion,pixels,Usage",
        "Kaggle, 'Challenges in Representation Learning: Facial Expression Recognition Challenge'",
    ),
    "ferplus": (
        "a folder holding the FER2013 CSV (fer2013.csv or .csv.gz) and FER+'s fer2013new.csv",
        "Microsoft's FERPlus repository on GitHub (fer2013new.csv), with the Kaggle FER2013 CSV",
    ),
    "rafdb": (
        "RAF-DB's basic/ folder: EmoLabel/list_patition_label.txt and Image/aligned/",
        "the RAF-DB authors, on request (whdeng.cn/RAF)",
    ),
    "affectnet": (
        "training.csv and validation.csv with Manually_Annotated_Images/, or train_set/images and "
        "annotations/*_exp.npy",
        "the AffectNet authors, on request (mohammadmahoor.com/affectnet)",
    ),
    "ckplus": (
        "cohn-kanade-images/ and Emotion/, or a CK+48 class-folder tree",
        "the CK+ authors, on request (jeffcohn.net)",
    ),
    "sfew": ("SFEW 2.0 with Train/ and Val/ class folders", "the EmotiW challenge organisers, on request"),
    "folder": ("one sub-folder per class (angry/, happy/, ...) holding its face images", "your own faces"),
    "unlabeled": ("a folder of face images (sub-folders are searched)", "your own faces"),
    "list": (
        "a CSV with a path column (and optionally a label column), or a text file of one image path per line",
        "your own faces",
    ),
}


def data_root(root: str | Path | None = None) -> Path | None:
    """The data root: `root` (the `data.root` setting) or else $SEMIFER_DATA; None when neither is set."""
    value = root or os.environ.get(DATA_ROOT_ENV)
    return Path(value).expanduser() if value else None


def resolve_data_path(fmt: str, path: str, root: str | Path | None = None) -> Path:
    """Where a spec's path is: as given when absolute or present from here, else under the data root.
    A dataset found in neither place is one DataError naming the dataset, its layout, where it is published
    and the setting that points at it."""
    given, base = Path(path).expanduser(), data_root(root)
    if given.exists():
        return given
    if not given.is_absolute() and base is not None and (base / given).exists():
        return base / given
    looked = "" if given.is_absolute() or base is None else f" (nor under the data root: {base / given})"
    layout, published = LAYOUTS.get(fmt, ("", ""))
    fix = (
        f"put the dataset at {given} under a data root and set data.root=DIR (or {DATA_ROOT_ENV}=DIR), "
        "or give its full path in the dataset spec (data.train=... / data.test=...)"
    )
    if not given.is_absolute() and base is None:
        fix = f"no data root is set: {fix}"
    message = f"the {fmt} dataset does not exist at this path{looked}"
    if layout:
        message += f"; it should be {layout}; it is published by {published}"
    raise DataError(path, message, fix=fix)


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
        raise DataError(
            spec,
            "a plain path is not a dataset spec",
            fix=f"to get predictions for images or videos run `semifer predict MODEL {spec}`; "
            f"to evaluate, name the format of a labelled dataset, e.g. folder:{spec}",
        )
    if not sep or fmt not in FORMATS:
        raise DataError(
            spec,
            f"unknown dataset spec (format {fmt!r})",
            fix=f"write FORMAT:PATH[?key=value&...] with FORMAT one of {', '.join(FORMATS)}",
        )
    path, _, query = rest.partition("?")
    options = {k: _coerce(v) for k, v in parse_qsl(query, keep_blank_values=True)}
    return fmt, path, options


def load_dataset(spec: str, root: str | Path | None = None, **overrides: object) -> FaceSet:
    """Parse the dataset a spec names, a relative path found under `root` (else $SEMIFER_DATA) when not
    here; `overrides` win over the spec's own options."""
    fmt, path, options = parse_spec(spec)
    options.update(overrides)
    loader = _loader(fmt)
    try:
        if fmt == "synthetic":
            return loader(**options)
        return loader(str(resolve_data_path(fmt, path, root)), **options)
    except TypeError as exc:
        raise DataError(spec, f"bad option for the {fmt} format ({exc})") from None


def image_colour(spec: str) -> str:
    """'gray' when the format named by `spec` stores grey faces, else 'rgb'."""
    return "gray" if spec.partition(":")[0] in GRAYSCALE_FORMATS else "rgb"
