"""FER2013 (Kaggle CSV of 48x48 grayscale faces) and FER+ (ten annotators' votes on the same rows)."""

from __future__ import annotations

import csv
import gzip
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError
from .faceset import FaceSet
from .parsing import choose_split, class_space, count_dropped, label_table, require_path

FER2013_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
FERPLUS_CLASSES = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt")
FERPLUS_VOTES = (*FERPLUS_CLASSES, "unknown", "NF")
USAGES = ("Training", "PublicTest", "PrivateTest")
SPLITS = {u.lower(): u for u in USAGES} | {
    "train": "Training",
    "val": "PublicTest",
    "valid": "PublicTest",
    "validation": "PublicTest",
    "test": "PrivateTest",
}
SIDE = 48
_NPIX = SIDE * SIDE
_PIXEL_FIX = f"each pixels cell holds {_NPIX} space-separated integers 0..255; re-download the file"


@dataclass
class _Rows:
    """The FER2013 CSV split into fields; pixels stay text until a split is chosen (parsing them is slow)."""

    path: Path
    lines: list[int]
    emotions: np.ndarray
    usages: np.ndarray
    pixels: list[bytes]


def _read_bytes(path: Path) -> bytes:
    try:
        data = path.read_bytes()
        return gzip.decompress(data) if path.suffix.lower() == ".gz" else data
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(
            path, f"cannot read the file ({exc})", fix="re-download it (a .gz file must be gzip-compressed)"
        ) from None


def _read_csv(path: Path) -> _Rows:
    lines = _read_bytes(path).splitlines()
    header = [c.strip().lower() for c in lines[0].decode("utf-8-sig", "replace").split(",")] if lines else []
    for column in ("emotion", "pixels", "usage"):
        if column not in header:
            raise DataError(
                path,
                f"missing column {column!r}",
                line=1,
                fix="a FER2013 CSV starts with the header line emotion,pixels,Usage",
            )
    ie, ip, iu = (header.index(c) for c in ("emotion", "pixels", "usage"))
    rows = _Rows(path, [], np.empty(0), np.empty(0), [])
    emotions: list[int] = []
    usages: list[str] = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = line.split(b",")
        if len(fields) != len(header):
            raise DataError(
                path,
                f"{len(fields)} comma-separated fields, expected {len(header)}",
                line=number,
                fix="each row is emotion,pixels,Usage; the file may be truncated",
            )
        code = fields[ie].strip()
        if not (code.isdigit() and int(code) <= 6):
            raise DataError(
                path,
                f"emotion {code.decode(errors='replace')!r} is not a code 0..6",
                line=number,
                fix="FER2013 codes are 0..6 = " + ", ".join(FER2013_CLASSES),
            )
        usage = fields[iu].strip().decode(errors="replace")
        if usage not in USAGES:
            raise DataError(
                path,
                f"Usage {usage!r} is not one of {', '.join(USAGES)}",
                line=number,
                fix="fix the Usage cell of this row",
            )
        rows.lines.append(number)
        emotions.append(int(code))
        usages.append(usage)
        rows.pixels.append(fields[ip])
    rows.emotions = np.array(emotions, dtype=np.int64)
    rows.usages = np.array(usages, dtype=str)
    return rows


def _parse_row_slowly(text: bytes, path: Path, line: int) -> np.ndarray:
    """Exact parse of one pixel row, naming what is wrong with it; the fast path only handles clean rows."""
    tokens = text.split()
    if len(tokens) != _NPIX:
        raise DataError(
            path, f"pixel row has {len(tokens)} values, expected {_NPIX} (48x48)", line=line, fix=_PIXEL_FIX
        )
    for token in tokens:
        if not token.isdigit() or int(token) > 255:
            raise DataError(
                path,
                f"pixel value {token.decode(errors='replace')!r} is not an integer 0..255",
                line=line,
                fix=_PIXEL_FIX,
            )
    return np.array([int(t) for t in tokens], dtype=np.int16)


def _parse_pixels(rows: _Rows, idx: np.ndarray) -> np.ndarray:
    """uint8 images (N, 48, 48) of rows `idx`; numpy parses each clean row in C (about 1 s for 32k rows)."""
    out = np.empty((len(idx), _NPIX), dtype=np.int16)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        for k, i in enumerate(idx):
            text = rows.pixels[i]
            if text.count(b" ") == _NPIX - 1 and not text.translate(None, b"0123456789 "):
                try:
                    out[k] = np.fromstring(text, dtype=np.int16, sep=" ")
                    continue
                except (ValueError, DeprecationWarning):
                    pass
            out[k] = _parse_row_slowly(text, rows.path, rows.lines[i])
    if len(out) and (out.min() < 0 or out.max() > 255):
        k = int(np.flatnonzero(((out < 0) | (out > 255)).any(axis=1))[0])
        _parse_row_slowly(rows.pixels[idx[k]], rows.path, rows.lines[idx[k]])
    return out.astype(np.uint8).reshape(-1, SIDE, SIDE)


def _select(rows: _Rows, split: str | None) -> tuple[np.ndarray, str | None]:
    usage = choose_split(split, SPLITS, rows.path)
    idx = np.arange(len(rows.lines)) if usage is None else np.flatnonzero(rows.usages == usage)
    return idx, usage


def _ids(rows: _Rows, idx: np.ndarray) -> list[str]:
    """`Usage/row` with the 0-based data row, so saved split files name the same image whatever is loaded."""
    return [f"{rows.usages[i]}/{i}" for i in idx]


def load_fer2013(path: str | Path, split: str | None = None, ferplus: str | Path | bool | None = None) -> FaceSet:
    """FER2013 from the Kaggle CSV (or .csv.gz); `ferplus` = a fer2013new.csv (true: the one beside the CSV)
    swaps in the FER+ majority-vote labels."""
    path = Path(path)
    if ferplus not in (None, False):
        votes = path.with_name("fer2013new.csv") if ferplus is True else Path(str(ferplus))
        return load_ferplus(path.parent, split=split, fer2013=path, votes=votes)
    rows = _read_csv(require_path(path, "FER2013 CSV"))
    idx, usage = _select(rows, split)
    labels = label_table(FER2013_CLASSES, 7)[rows.emotions[idx]]
    name = "fer2013" if usage is None else f"fer2013-{usage.lower()}"
    return FaceSet(
        name, _ids(rows, idx), labels, 7, pixels=_parse_pixels(rows, idx), source=str(path)
    ).require_nonempty()


@dataclass
class _Votes:
    """Vote counts in FERPLUS_VOTES order; `file_order[k]` is the column of FERPLUS_VOTES[k] in the file."""

    lines: list[int]
    usages: np.ndarray
    has_record: np.ndarray
    counts: np.ndarray
    file_order: np.ndarray


def _read_votes(path: Path) -> _Votes:
    with path.open(newline="", encoding="utf-8-sig") as file:
        reader = csv.reader(file)
        header = [c.strip().lower() for c in next(reader, [])]
        wanted = ["usage", "image name", *(c.lower() for c in FERPLUS_VOTES)]
        missing = [c for c in wanted if c not in header]
        if missing:
            raise DataError(
                path,
                f"missing column(s) {', '.join(missing)}",
                line=1,
                fix="the FER+ header is Usage,Image name," + ",".join(FERPLUS_VOTES),
            )
        iu, iname, *ivotes = (header.index(c) for c in wanted)
        lines, usages, names, counts = [], [], [], []
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            try:
                votes = [int(row[i]) for i in ivotes]
                usage, name = row[iu].strip(), row[iname].strip()
            except (ValueError, IndexError):
                votes = [-1]
            if min(votes) < 0:
                raise DataError(
                    path,
                    "vote counts must be non-negative integers",
                    line=reader.line_num,
                    fix="each row is Usage,Image name and ten vote counts",
                )
            lines.append(reader.line_num)
            usages.append(usage)
            names.append(bool(name))
            counts.append(votes)
    return _Votes(
        lines,
        np.array(usages, dtype=str),
        np.array(names, dtype=bool),
        np.array(counts, dtype=np.int64).reshape(-1, len(FERPLUS_VOTES)),
        np.array(ivotes),
    )


def ferplus_majority(votes: np.ndarray) -> np.ndarray:
    """FERPlus "majority" mode per row: the winning column of FERPLUS_VOTES, or -1 without a strict majority.

    As in Microsoft's reference code, a single vote is an outlier and counts as zero, and the winner must
    hold more than half of the remaining votes.
    """
    counts = np.where(votes == 1, 0, votes)
    top = counts.argmax(axis=1)
    winner = np.take_along_axis(counts, top[:, None], axis=1)[:, 0]
    return np.where(2 * winner > counts.sum(axis=1), top, -1)


def ferplus_plurality(votes: np.ndarray, file_order: np.ndarray | None = None) -> np.ndarray:
    """The column of FERPLUS_VOTES with the most votes per row, as pandas' `idxmax` over the file's vote
    columns gives it (Roy & Etemad's FER13 labels): a tie goes to the column that comes first in the file.

    `file_order[k]` is where column k of `votes` sits in the file (default: in FERPLUS_VOTES order, as in
    the published fer2013new.csv).
    """
    order = np.arange(votes.shape[1]) if file_order is None else np.argsort(file_order)
    return order[votes[:, order].argmax(axis=1)]


LABEL_RULES = ("majority", "plurality")


def _find_fer_csv(folder: Path) -> Path:
    for name in ("fer2013.csv", "fer2013.csv.gz"):
        if (folder / name).is_file():
            return folder / name
    raise DataError(
        folder,
        "no fer2013.csv or fer2013.csv.gz here",
        fix="put the FER2013 CSV beside fer2013new.csv, or pass fer2013=PATH",
    )


def load_ferplus(
    path: str | Path,
    split: str | None = None,
    classes: int = 8,
    fer2013: str | Path | None = None,
    votes: str | Path | None = None,
    label: str = "majority",
) -> FaceSet:
    """FER+ labels (vote distributions as soft labels) on the FER2013 images they annotate.

    `label="majority"` is FERPlus' majority mode (`ferplus_majority`: images without a strict majority are
    dropped); `label="plurality"` is the most-voted column (`ferplus_plurality`), the labels of Roy & Etemad
    (ACII 2022), which keeps those images. Under both rules an image is dropped when its winner is unknown
    or not-a-face (or contempt with `classes=7`), or when it has no FER+ record (no image name).
    """
    folder = Path(path)
    num_classes = class_space(classes, folder)
    if label not in LABEL_RULES:
        raise DataError(
            folder,
            f"label={label!r} is not a FER+ label rule",
            fix="use label=majority (FERPlus) or label=plurality (Roy & Etemad)",
        )
    fer_path = require_path(fer2013 if fer2013 is not None else _find_fer_csv(folder), "FER2013 CSV")
    votes_path = require_path(votes if votes is not None else folder / "fer2013new.csv", "FER+ votes file")
    rows, ballot = _read_csv(fer_path), _read_votes(votes_path)
    if len(ballot.lines) != len(rows.lines):
        raise DataError(
            votes_path,
            f"{len(ballot.lines)} vote rows, but {fer_path} has {len(rows.lines)} image rows",
            fix="use the fer2013new.csv made for this FER2013 CSV (a line per image, same order)",
        )
    clash = np.flatnonzero((ballot.usages != "") & (ballot.usages != rows.usages))
    if len(clash):
        i = int(clash[0])
        raise DataError(
            votes_path,
            f"Usage {ballot.usages[i]!r}, but {fer_path} line {rows.lines[i]} says {rows.usages[i]!r}",
            line=ballot.lines[i],
            fix="the two files are not line-aligned; use the matching pair",
        )
    idx, usage = _select(rows, split)
    record, counts = ballot.has_record[idx], ballot.counts[idx]
    top = ferplus_majority(counts) if label == "majority" else ferplus_plurality(counts, ballot.file_order)
    table = label_table(FERPLUS_CLASSES, num_classes)
    emotion = record & (top >= 0) & (top < len(FERPLUS_CLASSES))
    labels = np.full(len(idx), -1, dtype=np.int64)
    labels[emotion] = table[top[emotion]]
    dropped = {
        "no_record": int((~record).sum()),
        "no_majority": int((record & (top < 0)).sum()),
        "unknown": int((record & (top == len(FERPLUS_CLASSES))).sum()),
        "not_face": int((record & (top == len(FERPLUS_CLASSES) + 1)).sum()),
        **count_dropped(FERPLUS_CLASSES, top[emotion], table),
    }
    keep = labels >= 0
    soft = np.zeros((int(keep.sum()), num_classes), dtype=np.float32)
    for column in np.flatnonzero(table >= 0):
        soft[:, table[column]] = counts[keep, column]
    soft /= soft.sum(axis=1, keepdims=True)
    kept = idx[keep]
    name = "ferplus" if usage is None else f"ferplus-{usage.lower()}"
    source = folder if fer2013 is None and votes is None else votes_path
    return FaceSet(
        name,
        _ids(rows, kept),
        labels[keep],
        num_classes,
        pixels=_parse_pixels(rows, kept),
        soft_labels=soft,
        source=str(source),
        dropped={k: v for k, v in dropped.items() if v},
    ).require_nonempty()
