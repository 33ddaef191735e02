"""Contrastive pretraining of a backbone on unlabeled faces: SimCLR (Chen et al., ICML 2020).

Why it is here: every seed paper starts from a pretrained face representation, and at CPU scale (a small
CNN, 48 px, FER2013's 28k faces, under 90 minutes on 2 cores) masked reconstruction gains nothing in
fine-tuning, while instance discrimination learns features in which faces of one expression lie close
(its k-NN and linear probes say so before any fine-tuning; `semifer probe`).

Recipe (`pretrain:` section with `method: simclr`; the schedule comes from `train:`):
- Two views of every face, drawn for the whole batch at once (`semifer.data.batch_views`): random resized
  crop (scale 0.2-1, bilinear), horizontal flip, colour jitter (brightness and contrast 0.4, with p 0.8;
  saturation and hue are left out: FER's faces are mostly grayscale), random grayscale 0.2, then ImageNet
  normalisation. SimCLR's Gaussian blur is left out, as in
  its CIFAR (32 px) recipe: at 48 px it erases the expression.
- Projection head Linear(D, 512) - BN - ReLU - Linear(512, 128), discarded after pretraining.
- NT-Xent over the 2B views of a batch (`semifer.methods.unlabeled_losses.info_nce`, the same loss as
  Ada-CM's subset II), temperature 0.2 (SimCLR's paper used 0.1-0.5; 0.2 suits batches of a few hundred).
- SGD momentum 0.9, lr = base_lr * batch / 256 with base_lr 0.3 (SimCLR's rule, with plain SGD in place
  of LARS at this batch size), weight decay 1e-4, linear warm-up then cosine decay to 0.
- Optional progressive resizing (`low_res`, `low_res_fraction`; off unless set): the views of the first part
  of the run are drawn at a lower resolution, then at `data.img_size` to the end, as fast ImageNet recipes
  (FFCV, fast.ai) train low-resolution first. Not in SimCLR's paper; it is here for CPU time: at 32 px the
  small CNN's step costs ~0.45x that at 48 px, so a clock-bounded run makes more steps, and the last part
  still trains at the resolution that fine-tuning and probes use.

The run directory matches `semifer pretrain`'s MAE runs: `config.yaml`, `metrics.jsonl`,
`plots/views.png` (the augmented pairs of a few fixed faces), `checkpoints/last.pt` and
`backbone.safetensors` for `model.pretrained=`. Under `torchrun` every rank contrasts its views against the
views of all ranks' faces (`gathered_nt_xent`), as SimCLR's large-batch training does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..config import Config, build_dataclass
from ..data.batch_views import ContrastiveBatchView
from ..data.views import Normalize, View, resize_view
from ..errors import ConfigError
from ..methods.objective import Batch, EpochEnd, StepContext, StepOutput
from ..methods.unlabeled_losses import info_nce
from .base import PretrainObjective, plot_reconstructions


@dataclass
class SimCLROptions:
    """The `pretrain:` section for `method: simclr`; `minutes` is the wall-clock budget of `PretrainOptions`."""

    method: str = "simclr"
    temperature: float = 0.2
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


def simclr_options(cfg: Config) -> SimCLROptions:
    """The `pretrain:` section for SimCLR, typed and range-checked (`build_dataclass` checks the types)."""
    opts = build_dataclass(SimCLROptions, cfg.pretrain, "pretrain.")
    opts.crop_scale = tuple(opts.crop_scale)  # type: ignore[assignment]
    if opts.temperature <= 0 or len(opts.crop_scale) != 2:
        raise ConfigError("pretrain.temperature must be > 0 and pretrain.crop_scale two numbers")
    if opts.low_res is not None and not (0 < opts.low_res <= cfg.data.img_size and 0 <= opts.low_res_fraction <= 1):
        raise ConfigError(
            f"pretrain.low_res must be in 1..data.img_size ({cfg.data.img_size}) and "
            f"pretrain.low_res_fraction in [0, 1]; got {opts.low_res} and {opts.low_res_fraction}"
        )
    return opts


class SimCLR(nn.Module):
    """Backbone + projection head; `forward` maps two views of the same faces to the NT-Xent loss."""

    def __init__(self, backbone: nn.Module, hidden: int = 512, out: int = 128, temperature: float = 0.2):
        super().__init__()
        self.backbone = backbone
        self.temperature = temperature
        self.projector = nn.Sequential(
            nn.Linear(backbone.feature_dim, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, out),
        )

    def encoder_state_dict(self) -> dict[str, torch.Tensor]:
        """What `model.pretrained=` loads: the backbone alone (the projection head is discarded)."""
        return self.backbone.state_dict()

    def forward(
        self,
        first: torch.Tensor,
        second: torch.Tensor,
        rank: int = 0,
        gather: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """NT-Xent of the pairs (first[i], second[i]); with `gather` (a distributed run), against the views
        of every rank's faces (`gathered_nt_xent`)."""
        b = len(first)
        z = self.projector(self.backbone(torch.cat([first, second]))).float()
        if gather is not None:
            return gathered_nt_xent(z[:b], z[b:], self.temperature, rank, gather)
        keep = torch.ones(b, dtype=torch.bool, device=z.device)
        return info_nce([z[:b], z[b:]], keep, self.temperature, self.temperature)


def gathered_nt_xent(
    first: torch.Tensor,
    second: torch.Tensor,
    temperature: float,
    rank: int,
    gather: Callable[[torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    """Distributed NT-Xent: this rank's 2B views are the anchors, each with its own pair as the positive and
    the views of every rank's faces (`gather`: the concatenation over ranks, in rank order) as negatives.
    The mean over ranks equals the loss of one process on the concatenated batch."""
    b = len(first)
    feats = F.normalize(torch.cat([first, second]), dim=1)
    everyone = torch.cat([gather(feats[:b]), gather(feats[b:])])  # every rank's first views, then second
    n = len(everyone) // 2
    local = torch.arange(b, device=feats.device) + rank * b
    own = torch.cat([local, local + n])  # each anchor's own column in `everyone`
    logits = (feats @ everyone.T / temperature).scatter(1, own[:, None], float("-inf"))
    return F.cross_entropy(logits, torch.cat([local + n, local]))


class SimCLRObjective(PretrainObjective):
    """SimCLR's model, views and loss; the loader yields each face resized (uint8), and both views of the batch
    are drawn on the device in `step`. In a distributed run the negatives come from every rank."""

    loss_name = "NT-Xent"

    @staticmethod
    def options(cfg: Config) -> SimCLROptions:
        return simclr_options(cfg)

    def build_model(self, backbone: nn.Module) -> nn.Module:
        o = self.opts
        return SimCLR(backbone, o.proj_hidden, o.proj_dim, o.temperature)

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

    def step(self, net: nn.Module, batches: Sequence[Batch | None], ctx: StepContext) -> StepOutput:
        images, view = batches[0].views[0], self.batch_view(self.view_size(ctx.progress))
        distributed = {"rank": ctx.rank, "gather": ctx.gather} if ctx.world > 1 else {}
        with ctx.autocast():
            return StepOutput(net(view(images), view(images), **distributed))

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
            f"{self.cfg.name}: two SimCLR views of each face",
            ("face", "view 1", "view 2"),
        )
