"""What the two-view pretrainings (SimCLR, BYOL) share: the `pretrain:` options of their views and heads, the
projection head, and the objective that draws two augmented views of every face of a batch.

The loader only resizes each face (uint8); both views of the whole batch are drawn on the device in `step`
(`semifer.data.batch_views.ContrastiveBatchView`): random resized crop, horizontal flip, colour jitter and
random grayscale. With `low_res`, the views of the first `low_res_fraction` of the run are drawn at that lower
resolution, then at `data.img_size`, as fast ImageNet recipes (FFCV, fast.ai) train low-resolution first.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

from ..config import Config, build_dataclass
from ..data.batch_views import ContrastiveBatchView
from ..data.views import Normalize, View, resize_view
from ..errors import ConfigError
from ..methods.objective import EpochEnd
from .base import PretrainObjective, plot_reconstructions


@dataclass
class TwoViewOptions:
    """The `pretrain:` keys every two-view pretraining reads; `minutes` is the run's wall-clock budget."""

    method: str = ""
    base_lr: float | None = 0.3
    proj_hidden: int = 512
    proj_dim: int = 128
    crop_scale: tuple[float, float] = (0.2, 1.0)
    jitter: float = 0.4
    jitter_p: float = 0.8
    grayscale_p: float = 0.2
    preview: int = 6
    minutes: float | None = None
    low_res: int | None = None
    low_res_fraction: float = 0.6


Options = TypeVar("Options", bound=TwoViewOptions)


def two_view_options(kind: type[Options], cfg: Config) -> Options:
    """The `pretrain:` section as `kind`, typed and range-checked (`build_dataclass` checks types and ranges)."""
    opts = build_dataclass(kind, cfg.pretrain, "pretrain.")
    opts.crop_scale = tuple(opts.crop_scale)  # type: ignore[assignment]
    if len(opts.crop_scale) != 2:
        raise ConfigError("pretrain.crop_scale must be two numbers")
    if opts.low_res is not None and not (0 < opts.low_res <= cfg.data.img_size and 0 <= opts.low_res_fraction <= 1):
        raise ConfigError(
            f"pretrain.low_res must be in 1..data.img_size ({cfg.data.img_size}) and "
            f"pretrain.low_res_fraction in [0, 1]; got {opts.low_res} and {opts.low_res_fraction}"
        )
    return opts


def projection_head(in_dim: int, hidden: int, out: int) -> nn.Sequential:
    """Linear - BN - ReLU - Linear, SimCLR's and BYOL's projector (and BYOL's predictor)."""
    return nn.Sequential(
        nn.Linear(in_dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out)
    )


class TwoViewObjective(PretrainObjective):
    """Views and preview of a two-view pretraining; subclasses give `options`, `build_model` and `step`."""

    title = "two views"

    def train_view(self) -> View:
        """The loader only resizes (uint8); both views are drawn for the whole batch in `step`."""
        return resize_view(self.cfg.data.img_size)

    def view_size(self, progress: float) -> int:
        """`low_res` while the run (`progress`: by steps or by the clock, whichever is further on) is inside
        its `low_res_fraction`, else `data.img_size`."""
        o, size = self.opts, self.cfg.data.img_size
        if o.low_res is None:
            return size
        return o.low_res if progress < o.low_res_fraction else size

    def epoch_extras(self, end: EpochEnd) -> dict[str, Any]:
        """The view size the run has reached, so the metrics show where a progressive resize switched."""
        return {"view_size": self.view_size(end.progress)}

    def batch_view(self, size: int | None = None) -> ContrastiveBatchView:
        o, d = self.opts, self.cfg.data
        return ContrastiveBatchView(size or d.img_size, o.crop_scale, o.jitter, o.jitter_p, o.grayscale_p, d.bgr_quirk)

    def preview_batch(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Fixed faces and two seeded draws of their views, so the figure shows the augmentation."""
        n = min(self.opts.preview, len(self.faces))
        images = torch.stack([self.train_view()(self.faces.load(i)) for i in range(n)]).to(device)
        generator = torch.Generator(device).manual_seed(self.cfg.seed)
        view = self.batch_view()
        return view(images, generator), view(images, generator)

    def write_preview(self, first: torch.Tensor, second: torch.Tensor, epoch: int) -> Path:
        if epoch > 1:
            return self.run_dir / "plots" / "views.png"
        faces = torch.stack([Normalize()(self.faces.load(i)) for i in range(len(first))])
        faces = nn.functional.interpolate(faces, size=first.shape[-2:], mode="bilinear", antialias=True)
        return plot_reconstructions(
            faces,
            first,
            second,
            self.run_dir / "plots" / "views.png",
            f"{self.cfg.name}: {self.title} of each face",
            ("face", "view 1", "view 2"),
        )
