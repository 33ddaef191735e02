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
- Optional progressive resizing (`low_res`, `low_res_fraction`; off unless set; `two_views`). Not in SimCLR's
  paper; it is here for CPU time: at 32 px the small CNN's step costs ~0.45x that at 48 px, so a clock-bounded
  run makes more steps, and the last part still trains at the resolution that fine-tuning and probes use.
- Optional multi-crop (`local_views`, off at 0; Caron et al.'s SwAV, 2020): besides the two global views, that
  many small crops of each face (`local_scale` of its area, drawn at `local_size` px, scaled with `low_res`).
  Each local view must find its face's two global views among the batch's global views (both are positives,
  SupCon's form), so a mouth or an eye region learns to point at the whole face it came from, at a fraction of
  a global view's cost. The global pair keeps its NT-Xent; the loss is the mean over every view's term. On two
  CPU cores four such crops make a step 1.6x dearer and, at equal minutes, probe below plain SimCLR
  (BENCHMARKS.md, "Representation probes"), so it is off by default.

The run directory matches `semifer pretrain`'s MAE runs: `config.yaml`, `metrics.jsonl`,
`plots/views.png` (the augmented pairs of a few fixed faces), `checkpoints/last.pt` and
`backbone.safetensors` for `model.pretrained=`. Under `torchrun` every rank contrasts its views against the
views of all ranks' faces (`gathered_nt_xent`), as SimCLR's large-batch training does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..config import Config
from ..data.batch_views import ContrastiveBatchView
from ..errors import ConfigError
from ..methods.objective import Batch, StepContext, StepOutput
from ..methods.unlabeled_losses import info_nce
from .two_views import TwoViewObjective, TwoViewOptions, projection_head, two_view_options


@dataclass
class SimCLROptions(TwoViewOptions):
    """The `pretrain:` section for `method: simclr`."""

    method: str = "simclr"
    temperature: float = 0.2
    local_views: int = 0
    local_size: int = 24
    local_scale: tuple[float, float] = (0.1, 0.4)


def simclr_options(cfg: Config) -> SimCLROptions:
    """The `pretrain:` section for SimCLR, typed and range-checked."""
    opts = two_view_options(SimCLROptions, cfg)
    if opts.temperature <= 0:
        raise ConfigError("pretrain.temperature must be > 0")
    # The config tables bound each number (local_views >= 0, sizes >= 1, scales in (0, 1]); what they cannot
    # see is the image size and the order of the two scales.
    opts.local_scale = tuple(opts.local_scale)  # type: ignore[assignment]
    low, high = opts.local_scale if len(opts.local_scale) == 2 else (1.0, 0.0)
    if opts.local_size > cfg.data.img_size or low > high:
        raise ConfigError(
            f"pretrain.local_views must be >= 0, pretrain.local_size in 1..data.img_size ({cfg.data.img_size}) "
            f"and pretrain.local_scale two numbers 0 < a <= b <= 1; got {opts.local_views}, {opts.local_size} "
            f"and {list(opts.local_scale)}"
        )
    return opts


class SimCLR(nn.Module):
    """Backbone + projection head; `forward` maps two views of the same faces to the NT-Xent loss."""

    def __init__(self, backbone: nn.Module, hidden: int = 512, out: int = 128, temperature: float = 0.2):
        super().__init__()
        self.backbone = backbone
        self.temperature = temperature
        self.projector = projection_head(backbone.feature_dim, hidden, out)

    def encoder_state_dict(self) -> dict[str, torch.Tensor]:
        """What `model.pretrained=` loads: the backbone alone (the projection head is discarded)."""
        return self.backbone.state_dict()

    def forward(
        self,
        first: torch.Tensor,
        second: torch.Tensor,
        rank: int = 0,
        gather: Callable[[torch.Tensor], torch.Tensor] | None = None,
        local: Sequence[torch.Tensor] = (),
    ) -> torch.Tensor:
        """NT-Xent of the pairs (first[i], second[i]); with `gather` (a distributed run), against the views
        of every rank's faces (`gathered_nt_xent`). With `local` views (multi-crop), their term is averaged in
        (`local_to_global`); they pass the backbone apart from the global views, as their size differs."""
        b = len(first)
        features = [self.backbone(torch.cat([first, second]))]
        if local:
            features.append(self.backbone(torch.cat(list(local))))
        z = self.projector(torch.cat(features)).float()
        globals_, locals_ = z[: 2 * b], z[2 * b :]
        if gather is not None:
            loss = gathered_nt_xent(globals_[:b], globals_[b:], self.temperature, rank, gather)
        else:
            keep = torch.ones(b, dtype=torch.bool, device=z.device)
            loss = info_nce([globals_[:b], globals_[b:]], keep, self.temperature, self.temperature)
        if not local:
            return loss
        if gather is not None:
            globals_ = torch.cat([gather(globals_[:b]), gather(globals_[b:])])
        local_loss = local_to_global(locals_, globals_, self.temperature, b, rank * b)
        return (2 * loss + len(local) * local_loss) / (2 + len(local))


def local_to_global(
    local: torch.Tensor, globals_: torch.Tensor, temperature: float, faces: int, offset: int = 0
) -> torch.Tensor:
    """Multi-crop's term: local view `j` (of face `j % faces`, the faces of this rank) against the 2N global
    views `globals_` (every face's first views, then every face's second; N = `faces` on one process), its
    face's two global views (at `offset + j % faces` and `N + offset + j % faces`) both positives, every other
    global view a negative; the mean of -log p over the positives and the local views."""
    n = len(globals_) // 2
    log_prob = F.log_softmax(F.normalize(local, dim=1) @ F.normalize(globals_, dim=1).T / temperature, dim=1)
    face = offset + torch.arange(len(local), device=local.device) % faces
    return -(log_prob.gather(1, face[:, None]) + log_prob.gather(1, face[:, None] + n)).mean() / 2


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


class SimCLRObjective(TwoViewObjective):
    """SimCLR's model and loss on the two views of each face; in a distributed run the negatives come from
    every rank."""

    name = "simclr"
    loss_name = "NT-Xent"
    title = "two SimCLR views"

    @staticmethod
    def options(cfg: Config) -> SimCLROptions:
        return simclr_options(cfg)

    def build_model(self, backbone: nn.Module) -> nn.Module:
        o = self.opts
        return SimCLR(backbone, o.proj_hidden, o.proj_dim, o.temperature)

    def local_view(self, size: int) -> ContrastiveBatchView:
        """Multi-crop's small view: `local_scale` of the face's area at `local_size` px, scaled by the global
        view's `size` against `data.img_size` (so `low_res` shrinks both)."""
        o, d = self.opts, self.cfg.data
        local = max(1, round(o.local_size * size / d.img_size))
        return ContrastiveBatchView(local, o.local_scale, o.jitter, o.jitter_p, o.grayscale_p, d.bgr_quirk)

    def step(self, net: nn.Module, batches: Sequence[Batch | None], ctx: StepContext) -> StepOutput:
        size = self.view_size(ctx.progress)
        images, view = batches[0].views[0], self.batch_view(size)
        extra: dict[str, Any] = {"rank": ctx.rank, "gather": ctx.gather} if ctx.world > 1 else {}
        with ctx.autocast():
            first, second = view(images), view(images)
            if self.opts.local_views:
                local = self.local_view(size)
                extra["local"] = [local(images) for _ in range(self.opts.local_views)]
            return StepOutput(net(first, second, **extra))
