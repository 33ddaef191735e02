"""What a trained model needs beside its weights to be used and described: architecture, head, classes, how
its input was prepared, and where it came from (method, data, split, metrics). Saved as `model.json`."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from .. import __version__
from ..config import Config
from ..data.registry import image_colour
from ..data.views import IMAGENET_MEAN, IMAGENET_STD
from ..errors import SemiferError

FORMAT = "semifer-model"
HEAD_KEYS = ("dropout", "l2norm", "attention", "feature_dropout")


@dataclass
class ModelInfo:
    """`colour` is 'gray' for models trained on grey faces (FER2013): colour photos are converted to grey
    (and repeated to 3 channels, as the data loaders do) before they reach such a model. `files` maps each
    weight file of an export to its sha256, checked before the file is read; `builtin` describes a model
    shipped inside the package (name, kind, data, licence, the command that rebuilds it)."""

    arch: str
    classes: list[str]
    img_size: int
    colour: str
    head: dict[str, Any]
    bgr_quirk: bool = False
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
        data: dict[str, Any] = {"train": cfg.data.train, "test": cfg.data.test, "split": cfg.data.split,
                                "extra_unlabeled": list(cfg.data.extra_unlabeled)}
        metrics = None
        evaluations: list[dict[str, Any]] = []
        if run_dir is not None:
            data.update(_split_summary(run_dir / "split.json"))
            final = _read_json(run_dir / "final.json")
            metrics = final.get("final") if final else None
            evaluations = [blob for path in sorted(run_dir.glob("*/metrics.json"))
                           if (blob := _read_json(path)) and "data" in blob]
        return cls(arch=cfg.model.arch, classes=list(classes), img_size=cfg.data.img_size,
                   colour=image_colour(cfg.data.train), head={k: getattr(cfg.model, k) for k in HEAD_KEYS},
                   bgr_quirk=cfg.data.bgr_quirk, method=dict(cfg.method), data=data, metrics=metrics,
                   evaluations=evaluations, source=str(run_dir or ""))

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    def save(self, path: Path) -> Path:
        path.write_text(self.to_json() + "\n")
        return path

    @classmethod
    def from_dict(cls, blob: dict[str, Any], where: str) -> ModelInfo:
        if not isinstance(blob, dict) or blob.get("format") != FORMAT:
            raise SemiferError(f"{where}: not a semifer model description (expected \"format\": \"{FORMAT}\")")
        known = {f.name for f in fields(cls)}
        try:
            return cls(**{k: v for k, v in blob.items() if k in known})
        except TypeError as exc:
            raise SemiferError(f"{where}: incomplete model description ({exc})") from None

    @classmethod
    def load(cls, path: Path) -> ModelInfo:
        blob = _read_json(path)
        if blob is None:
            raise SemiferError(f"{path}: cannot read the model description; export the model again")
        return cls.from_dict(blob, str(path))


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _split_summary(path: Path) -> dict[str, Any]:
    """Protocol, seed, labeled/unlabeled sizes and per-class label counts of a split file (not its ids)."""
    blob = _read_json(path)
    if not blob:
        return {}
    return {"split": blob.get("protocol"), "split_seed": blob.get("seed"), "labeled": len(blob.get("labeled", [])),
            "unlabeled": len(blob.get("unlabeled", [])), "label_counts": blob.get("counts", {})}
