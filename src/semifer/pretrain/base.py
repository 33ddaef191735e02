"""What every pretraining objective shares: the backbone it trains, the unlabeled pool it draws from, the
backbone file it leaves for `model.pretrained=`, and the preview figure it redraws at the end of an epoch.

A pretraining is an objective of the engine's loop (`methods.objective.Objective`): the loop runs the steps,
checkpoints, resume, time budget and metrics; an objective here says what a step computes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..config import Config
from ..data.faceset import FaceSet, concat
from ..data.loaders import ViewDataset
from ..data.registry import load_dataset
from ..data.views import IMAGENET_MEAN, IMAGENET_STD, View, test_view
from ..errors import ConfigError
from ..methods.objective import EpochEnd, Objective, Stream
from ..models import create_backbone, list_models, load_backbone_weights
from ..models.vit import VIT_SIZES

BACKBONE_FILE = "backbone.safetensors"


def pretrain_pool(cfg: Config) -> tuple[FaceSet, int | None]:
    """`data.train` (labels dropped) followed by the `data.extra_unlabeled` pools, and where the extras start."""
    pool = load_dataset(cfg.data.train, cfg.data.root).require_nonempty().without_labels()
    extras = [
        load_dataset(spec, cfg.data.root).require_nonempty().without_labels() for spec in cfg.data.extra_unlabeled
    ]
    if cfg.data.extra_ratio is not None and not extras:
        raise ConfigError("data.extra_ratio needs data.extra_unlabeled pools to draw from")
    if not extras:
        return pool, None
    return concat([pool, *extras], name="pretrain"), len(pool)


def pretrain_backbone(cfg: Config, report_dir: Path | None) -> nn.Module:
    """A fresh `model.arch` backbone, or the one `model.pretrained` names (its key report kept in
    `report_dir`); a ViT pretrains without stochastic depth unless `model.drop_path` asks for it, as MAE."""
    m = cfg.model
    if m.arch not in list_models():
        raise ConfigError(f"unknown model.arch {m.arch!r}; choose one of {', '.join(list_models())}")
    no_drop_path = 0.0 if m.arch in VIT_SIZES else None
    backbone = create_backbone(
        m.arch,
        img_size=cfg.data.img_size,
        patch_size=m.patch_size,
        drop_path=no_drop_path if m.drop_path is None else m.drop_path,
    )
    if m.pretrained:
        report = load_backbone_weights(backbone, m.pretrained, strict=m.strict_load)
        if report_dir is not None:
            (report_dir / "pretrained_load.txt").write_text(f"{report}\n")
    return backbone


def backbone_file(state: dict[str, torch.Tensor], arch: str) -> bytes:
    """A backbone's state dict as safetensors, its architecture in the metadata."""
    from safetensors.torch import save

    state = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    return save(state, metadata={"arch": arch, "source": "semifer pretrain"})


def _to_display(images: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (images.float().cpu() * std + mean).clamp(0, 1)


def plot_reconstructions(
    images: torch.Tensor,
    masked: torch.Tensor,
    recon: torch.Tensor,
    path: Path,
    title: str,
    labels: tuple[str, str, str] = ("input", "masked", "reconstruction"),
) -> Path:
    """One column per face, three rows: by default input, masked input (what the encoder sees), reconstruction."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(zip(labels, (images, masked, recon), strict=True))
    n = len(images)
    fig, axes = plt.subplots(3, n, figsize=(1.6 * n, 5.0), squeeze=False)
    for r, (label, batch) in enumerate(rows):
        pictures = _to_display(batch)
        for c in range(n):
            axes[r][c].imshow(pictures[c].permute(1, 2, 0).numpy())
            axes[r][c].set_xticks([])
            axes[r][c].set_yticks([])
        axes[r][0].set_ylabel(label)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


class PretrainObjective(Objective):
    """A pretraining of `model.arch` on the unlabeled pool: subclasses give `options`, `build_model` (a module
    keeping the backbone as `.backbone`, with `encoder_state_dict`), `train_view`, `step` and the preview.
    `main`: whether this process writes the run directory (rank 0 of a distributed run)."""

    name = "pretrain"

    def __init__(self, cfg: Config, run_dir: Path, main: bool = True):
        self.cfg, self.run_dir = cfg, run_dir
        self.opts = self.options(cfg)
        self.model = self.build_model(pretrain_backbone(cfg, run_dir if main else None))
        self.faces, self.extra_from = pretrain_pool(cfg)
        self._preview: tuple[torch.Tensor, torch.Tensor] | None = None

    @staticmethod
    def options(cfg: Config) -> Any:
        """The validated `pretrain:` section of this kind of pretraining."""
        raise NotImplementedError

    def build_model(self, backbone: nn.Module) -> nn.Module:
        """The trained module around `backbone`."""
        raise NotImplementedError

    def train_view(self) -> View:
        """The loader's view of a face."""
        raise NotImplementedError

    def streams(self) -> list[Stream]:
        d, tc = self.cfg.data, self.cfg.train
        view = self.train_view() if d.augment else test_view(d.img_size, d.bgr_quirk)
        dataset = ViewDataset(self.faces, [view])
        return [Stream(dataset, tc.batch_size, self.cfg.seed, self.extra_from, d.extra_ratio)]

    def exports(self) -> dict[str, bytes]:
        """`backbone.safetensors`: the encoder alone, what `model.pretrained=` loads."""
        return {BACKBONE_FILE: backbone_file(self.model.encoder_state_dict(), self.cfg.model.arch)}

    def preview_batch(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """The fixed inputs of the preview figure, drawn from their own seeded generator."""
        raise NotImplementedError

    def write_preview(self, first: torch.Tensor, second: torch.Tensor, epoch: int) -> Path:
        raise NotImplementedError

    def epoch_extras(self, end: EpochEnd) -> dict[str, Any]:
        """What this kind of pretraining adds to each epoch's metrics record."""
        return {}

    def end_epoch(self, end: EpochEnd) -> dict[str, Any]:
        """The preview figure (on the main rank) and this kind's entries of the epoch's record."""
        if end.main:
            if self._preview is None:
                self._preview = self.preview_batch(end.device)
            self.write_preview(*self._preview, end.epoch)
        return self.epoch_extras(end)
