"""What a trained model needs beside its weights to be used and described: architecture, head, classes, how
its input was prepared, and where it came from (method, data, split, metrics). Saved as `model.json`."""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ..config import Config
from ..data.registry import image_colour
from ..data.views import IMAGENET_MEAN, IMAGENET_STD
from ..errors import SemiferError
from ..runtime.precision import PRECISIONS
from ..version import __version__
from .backbones import BACKBONES

FORMAT = "semifer-model"
HEAD_KEYS = ("dropout", "l2norm", "attention", "feature_dropout")
IMG_SIZES = (8, 1024)  # data.img_size's lower bound; above 1024 px a batch of faces alone would fill the memory
COLOURS = ("gray", "rgb")
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass
class ModelInfo:
    """`colour` is 'gray' for models trained on grey faces (FER2013): colour photos are converted to grey
    (and repeated to 3 channels, as the data loaders do) before they reach such a model. `files` maps each
    weight file of an export to its sha256, checked before the file is read; `builtin` describes a model
    shipped inside the package (name, kind, data, licence, the command that rebuilds it). `flip_average`: its
    answers average the probabilities of the face and its mirror image (`FlipAverage`), wherever it is used:
    `semifer predict`, `semifer eval`, the ONNX graph. `precision`: what its answers are computed in unless the
    caller asks otherwise (`runtime.precision.PRECISIONS`; auto = bf16 where the hardware computes it
    natively): `semifer predict` and `semifer eval` of the PyTorch weights; an ONNX graph runs in fp32."""

    arch: str
    classes: list[str]
    img_size: int
    colour: str
    head: dict[str, Any]
    bgr_quirk: bool = False
    flip_average: bool = False
    precision: str = "fp32"
    mean: list[float] = field(default_factory=lambda: list(IMAGENET_MEAN))
    std: list[float] = field(default_factory=lambda: list(IMAGENET_STD))
    method: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] | None = None
    evaluations: list[dict[str, Any]] = field(default_factory=list)
    source: str = ""
    files: dict[str, str] = field(default_factory=dict)
    builtin: dict[str, Any] = field(default_factory=dict)
    format: str = FORMAT
    semifer_version: str = __version__

    @classmethod
    def from_run(cls, cfg: Config, classes: list[str], run_dir: Path | None) -> ModelInfo:
        """The info of a trained run; the split, final metrics and any `semifer eval --out` results are read
        from the run directory when it is there (a lone checkpoint has only its config)."""
        data: dict[str, Any] = {
            "train": cfg.data.train,
            "test": cfg.data.test,
            "split": cfg.data.split,
            "extra_unlabeled": list(cfg.data.extra_unlabeled),
        }
        metrics = None
        evaluations: list[dict[str, Any]] = []
        if run_dir is not None:
            data.update(_split_summary(run_dir / "split.json"))
            final = _read_json(run_dir / "final.json")
            metrics = final.get("final") if final else None
            evaluations = [
                blob
                for path in sorted(run_dir.glob("*/metrics.json"))
                if isinstance(blob := _read_json(path), dict) and "data" in blob
            ]
        return cls(
            arch=cfg.model.arch,
            classes=list(classes),
            img_size=cfg.data.img_size,
            colour=image_colour(cfg.data.train),
            head={k: getattr(cfg.model, k) for k in HEAD_KEYS},
            bgr_quirk=cfg.data.bgr_quirk,
            method=dict(cfg.method),
            data=data,
            metrics=metrics,
            evaluations=evaluations,
            source=str(run_dir or ""),
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    def save(self, path: Path) -> Path:
        path.write_text(self.to_json() + "\n")
        return path

    @classmethod
    def from_dict(cls, blob: dict[str, Any], where: str) -> ModelInfo:
        """The description in `blob`, checked field by field before anything is built from it: a wrong value
        is one SemiferError naming `where` and the field (an img_size of 100000 would otherwise allocate
        tens of GB per face, a repeated class name merge two probability columns)."""
        if not isinstance(blob, dict) or blob.get("format") != FORMAT:
            raise SemiferError(f'{where}: not a semifer model description (expected "format": "{FORMAT}")')
        known = {f.name: f for f in fields(cls)}
        missing = [
            name
            for name, f in known.items()
            if f.default is MISSING and f.default_factory is MISSING and name not in blob
        ]
        if missing:
            raise SemiferError(
                f"{where}: incomplete model description: no {', '.join(repr(m) for m in missing)} "
                "field; export the model again"
            )
        values = {k: v for k, v in blob.items() if k in known}
        _validate(values, where)
        return cls(**values)

    @classmethod
    def load(cls, path: Path) -> ModelInfo:
        try:
            blob = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise SemiferError(f"{path}: cannot read the model description ({exc.strerror or exc})") from None
        except (ValueError, RecursionError) as exc:
            raise SemiferError(
                f"{path}: the model description is not valid JSON ({exc}); export the model again"
            ) from None
        return cls.from_dict(blob, str(path))


def _invalid(where: str, name: str, problem: str) -> SemiferError:
    return SemiferError(f"{where}: invalid model description: {_show(name)} {problem}; export the model again")


def _show(value: Any) -> str:
    """A value as the error shows it, cut short (a fuzzed or damaged file can hold anything)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))


def _check_classes(classes: Any, where: str) -> None:
    if not isinstance(classes, list) or not classes:
        raise _invalid(where, "classes", "must be a non-empty list of class names")
    for name in classes:
        if not isinstance(name, str) or not name.strip():
            raise _invalid(where, "classes", f"holds {_show(name)}; every class name must be a non-empty string")
    repeated = sorted(name for name, n in Counter(classes).items() if n > 1)
    if repeated:
        raise _invalid(where, "classes", f"repeats {_show(repeated)}; class names must be unique")


def _check_head(head: Any, where: str) -> None:
    if not isinstance(head, dict):
        raise _invalid(where, "head", "must be a mapping of head options")
    for key, value in head.items():
        if key not in HEAD_KEYS:
            raise _invalid(where, f"head.{key}", f"is not a head option (known: {', '.join(HEAD_KEYS)})")
        if value is None:
            continue
        if key in ("l2norm", "attention"):
            if not isinstance(value, bool):
                raise _invalid(where, f"head.{key}", f"is {_show(value)}; expected true or false")
        elif not _is_number(value) or not 0 <= value < 1:
            raise _invalid(where, f"head.{key}", f"is {_show(value)}; expected a number in [0, 1)")


def _check_files(files: Any, where: str) -> None:
    if not isinstance(files, dict):
        raise _invalid(where, "files", "must map file names to their sha256")
    for name, digest in files.items():
        if not name or Path(name).name != name or name in (".", ".."):
            raise _invalid(where, "files", f"names {_show(name)}; only files beside model.json are listed")
        if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
            raise _invalid(where, f"files.{name}", "is not a sha256 (64 lowercase hex digits)")


def _validate(values: dict[str, Any], where: str) -> None:
    """Check every field a ModelInfo would be built from (see `ModelInfo.from_dict`)."""
    arch = values["arch"]
    if not isinstance(arch, str) or arch not in BACKBONES:
        raise _invalid(where, "arch", f"is {_show(arch)}, not a known architecture ({', '.join(BACKBONES)})")
    _check_classes(values["classes"], where)
    size = values["img_size"]
    low, high = IMG_SIZES
    if not isinstance(size, int) or isinstance(size, bool) or not low <= size <= high:
        raise _invalid(where, "img_size", f"is {_show(size)}; expected a whole number of pixels from {low} to {high}")
    if values["colour"] not in COLOURS:
        raise _invalid(where, "colour", f"is {_show(values['colour'])}; expected one of {', '.join(COLOURS)}")
    _check_head(values["head"], where)
    for name in ("mean", "std"):
        if name in values:
            triple = values[name]
            if not isinstance(triple, list) or len(triple) != 3 or not all(map(_is_number, triple)):
                raise _invalid(where, name, f"is {_show(triple)}; expected 3 finite numbers (one per channel)")
    if "std" in values and min(values["std"]) <= 0:
        raise _invalid(where, "std", f"is {_show(values['std'])}; every channel's std must be above 0")
    for name in ("bgr_quirk", "flip_average"):
        if name in values and not isinstance(values[name], bool):
            raise _invalid(where, name, f"is {_show(values[name])}; expected true or false")
    if "precision" in values and values["precision"] not in PRECISIONS:
        raise _invalid(where, "precision", f"is {_show(values['precision'])}; expected one of {', '.join(PRECISIONS)}")
    if "files" in values:
        _check_files(values["files"], where)
    for name in ("method", "data", "builtin"):
        if name in values and not isinstance(values[name], dict):
            raise _invalid(where, name, "must be a mapping")
    if values.get("metrics") is not None and not isinstance(values["metrics"], dict):
        raise _invalid(where, "metrics", "must be a mapping or null")
    evaluations = values.get("evaluations", [])
    if not isinstance(evaluations, list) or not all(isinstance(e, dict) for e in evaluations):
        raise _invalid(where, "evaluations", "must be a list of metrics mappings")
    for name in ("source", "semifer_version"):
        if name in values and not isinstance(values[name], str):
            raise _invalid(where, name, "must be a string")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None


def _split_summary(path: Path) -> dict[str, Any]:
    """Protocol, seed, labeled/unlabeled sizes and per-class label counts of a split file (not its ids)."""
    blob = _read_json(path)
    if not blob:
        return {}
    return {
        "split": blob.get("protocol"),
        "split_seed": blob.get("seed"),
        "labeled": len(blob.get("labeled", [])),
        "unlabeled": len(blob.get("unlabeled", [])),
        "label_counts": blob.get("counts", {}),
    }
