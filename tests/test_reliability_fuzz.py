"""Property-based fuzzing of every parser of user input: the FER2013 CSV, the FER+ votes, split files and
protocols, config overrides and YAML files. Whatever the input, a parser returns or raises one of
semifer's own errors (one clear message), never a raw traceback."""

from __future__ import annotations

import contextlib
import gzip
import json
import tempfile
import warnings
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fixture_layouts import FER_HEADER, FERPLUS_HEADER, fer_pixels
from semifer.config import load_config, parse_override, read_preset
from semifer.data.faceset import FaceSet
from semifer.data.fer2013 import load_fer2013, load_ferplus
from semifer.data.registry import load_dataset
from semifer.data.splits import Split, apply_split, make_split
from semifer.errors import DataWarning, SemiferError

FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
WORK = Path(tempfile.mkdtemp(prefix="semifer-fuzz-"))


def only_own_errors(call, *args, **kwargs) -> None:
    """Run a parser; anything it raises must be a SemiferError (the test fails on any other exception)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        with contextlib.suppress(SemiferError):
            call(*args, **kwargs)


cells = st.one_of(
    st.integers(-3, 300).map(str), st.sampled_from(["", " ", "x", "1.5", "-", "nan", "\x00", '"']), st.text(max_size=6)
)
pixel_text = st.one_of(
    st.just(fer_pixels(0)),
    st.lists(cells, max_size=6).map(" ".join),
    st.integers(0, 2400).map(lambda n: " ".join(["7"] * n)),
)
usages = st.sampled_from(["Training", "PublicTest", "PrivateTest", "training", "", "Other", "Training\r"])
fer_rows = st.lists(st.tuples(cells, pixel_text, usages), max_size=5)
headers = st.sampled_from([FER_HEADER, "Usage,pixels,emotion", "emotion,pixels", "", "a,b,c", "\ufeff" + FER_HEADER])


def fer_csv(header: str, rows: list[tuple[str, str, str]], extra: str) -> bytes:
    return ("\n".join([header, *(",".join(r) for r in rows)]) + extra).encode()


@FUZZ
@given(
    header=headers,
    rows=fer_rows,
    extra=st.sampled_from(["", "\n", "\n,,\n", "\n1,2"]),
    split=st.sampled_from([None, "Training", "test", "bogus"]),
    gz=st.booleans(),
)
def test_fer2013_csv_parser(header, rows, extra, split, gz):
    path = WORK / ("fer.csv.gz" if gz else "fer.csv")
    data = fer_csv(header, rows, extra)
    path.write_bytes(gzip.compress(data) if gz else data)
    only_own_errors(load_fer2013, path, split=split)


@FUZZ
@given(data=st.binary(max_size=300))
def test_fer2013_csv_parser_on_raw_bytes(data):
    path = WORK / "raw.csv"
    path.write_bytes(data)
    only_own_errors(load_fer2013, path)
    gz = WORK / "raw.csv.gz"
    gz.write_bytes(data)
    only_own_errors(load_fer2013, gz)


votes = st.lists(
    st.one_of(st.integers(-2, 12).map(str), st.sampled_from(["", "x", "1.5", " 3"])), min_size=0, max_size=12
)


@FUZZ
@given(
    rows=st.lists(st.tuples(usages, st.sampled_from(["fer0000000.png", "", "x"]), votes), max_size=4),
    header=st.sampled_from([FERPLUS_HEADER, "Usage,Image name", "", "Usage,Image name,a,b"]),
    classes=st.sampled_from([7, 8, 9]),
)
def test_ferplus_votes_parser(rows, header, classes):
    folder = WORK / "ferplus"
    folder.mkdir(exist_ok=True)
    (folder / "fer2013.csv").write_text("\n".join([FER_HEADER, *(f"0,{fer_pixels(i)},Training" for i in range(3))]))
    lines = [header, *(f"{u},{n}," + ",".join(v) for u, n, v in rows)]
    (folder / "fer2013new.csv").write_text("\n".join(lines) + "\n")
    only_own_errors(load_ferplus, folder, classes=classes)


POOL = FaceSet(
    "pool", [f"id{i}" for i in range(28)], np.arange(28) % 7, pixels=np.zeros((28, 4, 4), np.uint8), source="pool"
)
scalars = st.none() | st.booleans() | st.integers(-5, 5) | st.floats(allow_nan=True) | st.text(max_size=5)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
split_blobs = st.fixed_dictionaries(
    {},
    optional={
        "protocol": json_values,
        "seed": json_values,
        "counts": json_values,
        "dataset": json_values,
        "fingerprint": json_values,
        "labeled": st.one_of(json_values, st.lists(st.sampled_from(POOL.ids + ["zz", ""]), max_size=4)),
        "unlabeled": st.one_of(json_values, st.lists(st.sampled_from(POOL.ids), max_size=4)),
        "extra": json_values,
    },
)


@FUZZ
@given(blob=st.one_of(split_blobs, json_values), raw=st.one_of(st.none(), st.text(max_size=40)))
def test_split_file_parser(blob, raw):
    path = WORK / "split.json"
    path.write_text(raw if raw is not None else json.dumps(blob))
    try:
        split = Split.load(path)
    except SemiferError:
        return
    only_own_errors(apply_split, POOL, split, str(path))


protocol_parts = st.sampled_from(["all", "adacm", "per_class", "fraction", "total", "counts", "", "x"])
protocol_args = st.one_of(
    st.integers(-5, 5000).map(str),
    st.floats().map(str),
    st.sampled_from(["", "happy=3,sad=-1", "happy=x", "fear", "=", "happy=2,,"]),
    st.text(max_size=8),
)


@FUZZ
@given(kind=protocol_parts, arg=protocol_args, seed=st.integers(0, 2**32 - 1))
def test_split_protocol_parser(kind, arg, seed):
    only_own_errors(make_split, POOL, f"{kind}:{arg}", seed)


KEYS = [
    "train.lr",
    "train.epochs",
    "train.batch_size",
    "train.amp",
    "train.milestones",
    "data.img_size",
    "data.extra_unlabeled",
    "data.extra_ratio",
    "model.pretrained",
    "method.name",
    "method.tau",
    "method.threshold",
    "seed",
    "name",
    "train",
    "data.nope",
    "",
    "method",
]
yaml_values = st.one_of(
    st.sampled_from(
        [
            "abc",
            "1",
            "-1",
            "0",
            "0.5",
            "1e-3",
            "5e-4",
            "true",
            "null",
            "[1, 2]",
            "{a: 1}",
            "[",
            "'",
            "fixmatch",
            "nan",
            ".inf",
            "2.5",
            "auto",
            "bf16",
        ]
    ),
    st.text(max_size=10),
)


@FUZZ
@given(overrides=st.lists(st.tuples(st.sampled_from(KEYS), st.sampled_from(["=", "", "=="]), yaml_values), max_size=4))
def test_config_override_parser(overrides):
    only_own_errors(load_config, "demo", [f"{k}{sep}{v}" for k, sep, v in overrides])


@FUZZ
@given(text=st.text(max_size=20))
def test_single_override_parser(text):
    only_own_errors(parse_override, text)


yaml_lines = st.one_of(
    st.sampled_from(
        [
            "base: demo",
            "base: missing_preset",
            "base: [1]",
            "train:",
            "  lr: x",
            "  epochs: 3",
            "data: 3",
            "- a",
            "key: [",
            "\tbad",
            "method: {name: 7}",
            "base: {path}",
        ]
    ),
    st.text(max_size=12),
)


@FUZZ
@given(lines=st.lists(yaml_lines, max_size=5))
def test_config_yaml_file_parser(lines):
    path = WORK / "fuzz.yaml"
    path.write_text("\n".join(line.replace("{path}", str(path)) for line in lines))
    only_own_errors(read_preset, str(path))
    only_own_errors(load_config, str(path))


@FUZZ
@given(
    spec=st.one_of(
        st.text(max_size=20),
        st.tuples(st.sampled_from(["synthetic", "fer2013", "folder", "x"]), st.text(max_size=10)).map(
            lambda t: f"{t[0]}:?{t[1]}&n=7"
        ),
    )
)
def test_dataset_spec_parser(spec):
    only_own_errors(load_dataset, spec)
