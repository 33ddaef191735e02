"""`semifer export`: a trained run as safetensors weights or an ONNX graph (pixels in, logits out, dynamic
batch axis, checked against PyTorch with onnxruntime), each with `model.json` and `MODEL_CARD.md`.

Every file is written to a temp file in the output folder and renamed into place only once all of them are
written, model.json last, so a full disk, a folder that cannot be written or a failed ONNX check leaves no
half-written file and no new weights beside an old model.json (whose sha256 would refuse them anyway).
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save as safetensors_bytes

from ..errors import SemiferError
from ..models.factory import WEIGHTS, load_model
from ..models.model_info import ModelInfo
from ..runtime.precision import check_precision
from ..tensorfile import check_finite, temp_beside, write_error
from ..weights import MODEL_JSON, is_builtin, sha256_file
from .backends import ONNX_METADATA_KEY, OnnxBackend, PixelInputNet
from .loading import ONNX
from .model_card import model_card

FORMATS = ("onnx", "safetensors")
ONNX_TOLERANCE = 1e-4


@dataclass
class ExportResult:
    out_dir: Path
    files: list[Path]
    max_abs_diff: float | None = None


def _default_out(path: Path) -> Path:
    """RUN/export for a run or checkpoint; NAME-export in the current folder for a built-in (never inside the
    installed package)."""
    if is_builtin(path):
        return Path(f"{path}-export")
    run_dir = path if path.is_dir() else path.parent.parent if path.parent.name == "checkpoints" else path.parent
    return run_dir / "export"


def export_onnx(model: torch.nn.Module, info: ModelInfo, path: Path, check_batch: int = 5) -> float:
    """Write the graph (uint8 pixels (B, 3, S, S) -> logits, B dynamic, model.json in its metadata) and
    return the largest |logit difference| to PyTorch on a random batch of `check_batch` images."""
    try:
        import onnx
    except ImportError:
        raise SemiferError(
            "ONNX export needs onnx, onnxscript and onnxruntime: pip install 'semifer[export]'"
        ) from None
    net = PixelInputNet(model, info).cpu().eval()
    size = info.img_size
    example = torch.randint(0, 256, (2, 3, size, size), dtype=torch.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            net,
            (example,),
            input_names=["pixels"],
            output_names=["logits"],
            dynamic_shapes={"pixels": {0: torch.export.Dim("batch")}},
            dynamo=True,
            verbose=False,
        )
    graph = program.model_proto
    onnx.helper.set_model_props(graph, {ONNX_METADATA_KEY: info.to_json()})
    onnx.save(graph, str(path), format="protobuf")
    pixels = torch.randint(0, 256, (check_batch, 3, size, size), dtype=torch.uint8)
    with torch.inference_mode():
        expected = net(pixels).numpy()
    got = OnnxBackend(path)(pixels.numpy())
    return float(np.abs(got - expected).max())


class _Staging:
    """Files of one export written to temp files in its folder, then renamed into place together (`commit`,
    in the order written: model.json last) or removed (`discard`)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.temps: dict[Path, Path] = {}  # final path -> temp path

    def path(self, name: str) -> Path:
        """A new empty temp file for `name` (for writers that take a path)."""
        fd, tmp = temp_beside(self.folder / name)
        os.close(fd)
        self.temps[self.folder / name] = Path(tmp)
        return Path(tmp)

    def write(self, name: str, data: bytes | str) -> Path:
        tmp = self.path(name)
        with tmp.open("wb") as handle:
            handle.write(data.encode() if isinstance(data, str) else data)
            handle.flush()
            os.fsync(handle.fileno())
        return tmp

    def commit(self) -> None:
        for final, tmp in list(self.temps.items()):
            os.replace(tmp, final)
            del self.temps[final]

    def discard(self) -> None:
        for tmp in self.temps.values():
            tmp.unlink(missing_ok=True)
        self.temps.clear()


def _make_folder(out_dir: Path) -> list[Path]:
    """Create `out_dir` (and its parents); the folders created, deepest first, to remove if the export fails."""
    if out_dir.exists() and not out_dir.is_dir():
        raise SemiferError(f"{out_dir}: a file, not a folder; give --out a folder to write the export in")
    missing = [p for p in (out_dir, *out_dir.parents) if not p.exists()]
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise write_error(out_dir, exc, "export folder") from None
    return missing


def _remove_folders(created: list[Path]) -> None:
    for folder in created:
        try:
            folder.rmdir()
        except OSError:
            return  # not empty (something else wrote there) or already gone: leave it


def _read_evaluation(folder: str | Path) -> dict[str, Any]:
    """The metrics.json of a `semifer eval --out` folder, refused with one clear error when it is not one."""
    path = Path(folder) / "metrics.json"
    if not path.is_file():
        raise SemiferError(f"{path}: not found; give folders written by `semifer eval --out`")
    try:
        blob = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SemiferError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    except (ValueError, RecursionError) as exc:
        raise SemiferError(f"{path}: not valid JSON ({exc}); run `semifer eval --out` again to rewrite it") from None
    if not isinstance(blob, dict) or not isinstance(blob.get("data"), str):
        raise SemiferError(f'{path}: not metrics written by `semifer eval --out` (no "data" entry); run it again')
    return blob


_SAME_MODEL = ("arch", "classes", "img_size", "colour", "head", "bgr_quirk", "mean", "std", "method", "data", "source")


def _other_format_hashes(out_dir: Path, info: ModelInfo, written: str) -> dict[str, str]:
    """The sha256 of the other format's file already in `out_dir` (safetensors beside a new ONNX graph, or the
    reverse), kept in the new model.json when the old one describes the same model and the file still matches;
    otherwise that file is left unlisted, and loading refuses it."""
    path = out_dir / MODEL_JSON
    if not path.is_file():
        return {}
    try:
        old = ModelInfo.load(path)
    except SemiferError:
        return {}
    if any(getattr(old, key) != getattr(info, key) for key in _SAME_MODEL):
        return {}
    return {
        name: digest
        for name, digest in old.files.items()
        if name in (WEIGHTS, ONNX)
        and name != written
        and (out_dir / name).is_file()
        and sha256_file(out_dir / name) == digest
    }


def export_model(
    source: str | Path,
    fmt: str,
    out: str | Path | None = None,
    eval_dirs: list[str] | None = None,
    use_ema: bool = True,
    flip_average: bool | None = None,
    precision: str | None = None,
) -> ExportResult:
    """Export the model at `source` (run, checkpoint, safetensors export or built-in name) in `fmt` to `out`
    (default: RUN/export, or NAME-export for a built-in); model.json lists the sha256 of the weight file.
    `eval_dirs` are `semifer eval --out` folders whose metrics go into the model card. `flip_average` sets
    whether the exported model's answers average each face and its mirror image (None: as the source's); a
    change drops the source's recorded metrics, which scored the other model (`semifer eval` the export).
    `precision` sets what its PyTorch answers are computed in (`ModelInfo.precision`; None: as the source's),
    with the same rule for its metrics. All files appear together or, on any failure, none (see the module's note)."""
    if fmt not in FORMATS:
        raise SemiferError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    source = Path(source)
    model, info = load_model(source, use_ema=use_ema, device="cpu")
    weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    check_finite(weights, source, "model's weights")  # a diverged run exported would predict one class
    if flip_average is not None and flip_average != info.flip_average:
        info.flip_average, info.metrics, info.evaluations = flip_average, None, []
    if precision is not None and precision != info.precision:
        info.precision, info.metrics, info.evaluations = check_precision(precision), None, []
    info.files = {}  # the source's hashes; this export's are added once its file is written
    info.evaluations += [_read_evaluation(folder) for folder in eval_dirs or []]
    out_dir = Path(out) if out else _default_out(source)
    name = WEIGHTS if fmt == "safetensors" else ONNX
    created = _make_folder(out_dir)
    staging = _Staging(out_dir)
    diff, done = None, False
    try:
        if fmt == "safetensors":
            tmp = staging.write(WEIGHTS, safetensors_bytes(weights, metadata={"format": "pt"}))
        else:
            tmp = staging.path(ONNX)
            diff = export_onnx(model, info, tmp)
            if diff > ONNX_TOLERANCE:
                raise SemiferError(
                    f"{out_dir / ONNX}: onnxruntime's logits differ from PyTorch's by {diff:.2e} "
                    f"(> {ONNX_TOLERANCE:.0e}); the graph was not written"
                )
        info.files = {**_other_format_hashes(out_dir, info, name), name: sha256_file(tmp)}
        staging.write("MODEL_CARD.md", model_card(info))
        staging.write(MODEL_JSON, info.to_json() + "\n")
        staging.commit()
        done = True
    except OSError as exc:
        raise write_error(out_dir, exc, "export") from None
    finally:
        if not done:
            staging.discard()
            _remove_folders(created)
    return ExportResult(out_dir, [out_dir / MODEL_JSON, out_dir / name, out_dir / "MODEL_CARD.md"], diff)
