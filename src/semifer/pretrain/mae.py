"""Stage 0 of Bridging the Gaps (Song, He, Feng, Shen): masked face-reconstruction pretraining on unlabeled
faces, `semifer pretrain`'s default (`pretrain.method=mae`) for every backbone.

- A ViT (`model.arch=vit_tiny|vit_small|vit_base`) gets MAE proper (`vit_mae.ViTMaskedAutoencoder`), as the
  paper pretrains an MAE ViT-B/16 on 1.25 M faces: the encoder sees only the 25 % visible patch tokens (+ the
  class token), a light transformer decoder with a mask token predicts the pixels of every patch. The
  ViT's patch size is the masking patch (`model.patch_size`).
- A CNN gets a masked *convolutional* autoencoder in the spirit of MAE and SparK (Tian et al., ICLR 2023):
  75 % of the patches of every image are set to zero (after normalisation), the backbone encodes the whole
  image through its `forward_map` (a CNN cannot drop tokens like a ViT, so hidden patches are blanked
  instead), a light `PixelDecoder` predicts every pixel. Known CNN-specific effect: blanked patches shift
  batch-norm statistics during pretraining (SparK's motivation for sparse convolutions); fine-tuning
  re-estimates them, so we accept it for simplicity.

Both: per-image random masks of exactly round(0.75 N) of the N patches (MAE's shuffling), MSE on the hidden
patches only, optionally against per-patch normalised pixels (`pretrain.norm_pix_loss`, MAE's recommended
setting, on in the ViT presets). Recipe (`pretrain:` section and `train:` fields of the config):
- AdamW, betas (0.9, 0.95), weight decay 0.05 on weights (none on biases, norm layers, a ViT's `cls_token`
  and `pos_embed`), lr = base_lr * batch_size / 256 (MAE's linear scaling rule, base_lr 1.5e-4;
  `base_lr: null` uses `train.lr` as given), linear warm-up over `train.warmup_iters`, then cosine to 0.
  Bridging the Gaps' official code (`pretrain_distribute.py`) uses the *absolute* lr 3.4e-4 at an effective
  batch of 256, i.e. base_lr 3.4e-4 in MAE's rule; the ViT presets use that.
- Views: random resized crop with scale (0.2, 1.0) (bicubic) + horizontal flip, ImageNet normalisation.
- CNN patch: 8 px below 128 px input (a 6x6 grid at 48 px), 16 px from 128 px on (14x14 at 224 px).

`MAEObjective` is this pretraining as an objective of the engine's loop. The run directory holds
`config.yaml`, `metrics.jsonl` (loss per epoch), `plots/reconstructions.png` (input / masked /
reconstruction of a few fixed faces, rewritten every epoch), `checkpoints/last.pt` (to resume) and
`backbone.safetensors`: the encoder's state dict (torchvision names for a CNN, MAE's for a ViT), which any
method starts from with `model.pretrained=RUN/backbone.safetensors`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from torchvision.transforms import InterpolationMode, v2

from ..config import Config, build_dataclass
from ..data.views import Normalize, View, test_view
from ..errors import ConfigError
from ..methods.objective import Batch, StepContext, StepOutput
from ..models.vit import VIT_SIZES, ViTBackbone, default_patch_size
from .base import PretrainObjective, plot_reconstructions
from .decoder import PixelDecoder
from .masking import (
    hide_patches,
    masked_count,
    masked_patch_loss,
    patchify,
    pixel_mask,
    random_patch_mask,
    unpatchify,
)
from .vit_mae import ViTMaskedAutoencoder


@dataclass
class PretrainOptions:
    """The `pretrain:` section; the schedule (epochs, iters_per_epoch, batch_size, weight_decay,
    warmup_iters, schedule) comes from `train:`. `minutes` bounds the run's wall-clock time: the lr decay
    then follows the clock when it is further on than the steps, and the run ends when either is spent
    (`engine.time_budget`); epochs x iters_per_epoch stays the most it may run."""

    method: str = "mae"
    patch_size: int | None = None
    mask_ratio: float = 0.75
    norm_pix_loss: bool = False
    base_lr: float | None = 1.5e-4
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])
    crop_scale: list[float] = field(default_factory=lambda: [0.2, 1.0])
    decoder_dim: int = 128
    decoder_depth: int = 2
    decoder_heads: int = 4
    preview: int = 6
    minutes: float | None = None


def pretrain_options(cfg: Config) -> PretrainOptions:
    """The validated `pretrain:` options with the patch size resolved for `data.img_size`."""
    opts = build_dataclass(PretrainOptions, cfg.pretrain, "pretrain.")
    try:  # YAML reads 1e-3 (no dot) as a string
        opts.mask_ratio = float(opts.mask_ratio)
        opts.base_lr = None if opts.base_lr is None else float(opts.base_lr)
        opts.betas, opts.crop_scale = [float(b) for b in opts.betas], [float(c) for c in opts.crop_scale]
    except (TypeError, ValueError):
        raise ConfigError("pretrain.mask_ratio, base_lr, betas and crop_scale must be numbers") from None
    size = cfg.data.img_size
    if cfg.model.arch in VIT_SIZES:
        vit_patch = cfg.model.patch_size or default_patch_size(size)
        if opts.patch_size not in (None, vit_patch):
            raise ConfigError(
                f"pretrain.patch_size {opts.patch_size} differs from the ViT's patch {vit_patch}; "
                "a ViT's MAE masks its own patches: set model.patch_size and leave pretrain.patch_size "
                "null"
            )
        opts.patch_size = vit_patch
    if opts.patch_size is None:
        opts.patch_size = 16 if size >= 128 else 8
    if opts.patch_size < 1 or size % opts.patch_size:
        raise ConfigError(f"pretrain.patch_size {opts.patch_size} must divide data.img_size {size}")
    try:
        masked_count((size // opts.patch_size) ** 2, opts.mask_ratio)
    except ValueError as exc:
        raise ConfigError(f"pretrain.mask_ratio: {exc}") from None
    if len(opts.betas) != 2 or len(opts.crop_scale) != 2:
        raise ConfigError("pretrain.betas and pretrain.crop_scale take two numbers each")
    return opts


def pretrain_view(size: int, scale: tuple[float, float] = (0.2, 1.0), bgr_quirk: bool = False) -> View:
    """MAE's pretraining augmentation: random resized crop (bicubic) and horizontal flip, then normalisation."""
    return v2.Compose(
        [
            v2.RandomResizedCrop(size, scale=scale, interpolation=InterpolationMode.BICUBIC, antialias=True),
            v2.RandomHorizontalFlip(),
            Normalize(bgr_quirk),
        ]
    )


class MaskedAutoencoder(nn.Module):
    """Backbone (encoder) + `PixelDecoder`: blanked image -> predicted image of the same size."""

    def __init__(self, backbone: nn.Module, img_size: int, patch: int, decoder_dim: int = 128, decoder_depth: int = 2):
        super().__init__()
        self.patch = patch
        self.backbone = backbone
        self.decoder = PixelDecoder(backbone.feature_dim, img_size // patch, patch, decoder_dim, decoder_depth)

    def forward(self, images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.backbone.forward_map(hide_patches(images, mask, self.patch)))

    def encoder_state_dict(self) -> dict[str, torch.Tensor]:
        """The backbone's state dict with its torchvision names."""
        return self.backbone.state_dict()


def masked_autoencoder(backbone: nn.Module, img_size: int, opts: PretrainOptions) -> nn.Module:
    """MAE proper for a ViT (`ViTMaskedAutoencoder`: visible tokens only), the masked convolutional
    autoencoder for a CNN (`MaskedAutoencoder`: blanked patches); both map (images, mask) to images."""
    if isinstance(backbone, ViTBackbone):
        return ViTMaskedAutoencoder(backbone, opts.decoder_dim, opts.decoder_depth, opts.decoder_heads)
    return MaskedAutoencoder(backbone, img_size, opts.patch_size, opts.decoder_dim, opts.decoder_depth)


@torch.no_grad()
def reconstruct(model: MaskedAutoencoder, images: torch.Tensor, mask: torch.Tensor, norm_pix: bool) -> torch.Tensor:
    """MAE's visualisation: the predicted hidden patches pasted into the visible input patches.

    With `norm_pix` the prediction is per-patch standardised, so it is mapped back with each target
    patch's own mean and standard deviation (as MAE's demo does).
    """
    patch, (h, w) = model.patch, images.shape[-2:]
    prediction = patchify(model(images, mask).float(), patch)
    if norm_pix:
        raw = patchify(images.float(), patch)
        prediction = prediction * (raw.var(dim=-1, keepdim=True) + 1e-6).sqrt() + raw.mean(dim=-1, keepdim=True)
    hidden = pixel_mask(mask, patch, h, w)
    return images.float() * (1 - hidden) + unpatchify(prediction, patch, h, w) * hidden


class MAEObjective(PretrainObjective):
    """Masked reconstruction: per-image random masks of `mask_ratio` of the patches, MSE on the hidden ones."""

    name = "mae"
    loss_name = "masked-patch MSE"

    def __init__(self, cfg: Config, run_dir: Path, main: bool = True):
        super().__init__(cfg, run_dir, main)
        self.optimizer_options = {"betas": tuple(self.opts.betas)}

    @staticmethod
    def options(cfg: Config) -> PretrainOptions:
        return pretrain_options(cfg)

    def build_model(self, backbone: nn.Module) -> nn.Module:
        self.num_patches = (self.cfg.data.img_size // self.opts.patch_size) ** 2
        return masked_autoencoder(backbone, self.cfg.data.img_size, self.opts)

    def train_view(self) -> View:
        d = self.cfg.data
        return pretrain_view(d.img_size, tuple(self.opts.crop_scale), d.bgr_quirk)

    def step(self, net: nn.Module, batches: Sequence[Batch | None], ctx: StepContext) -> StepOutput:
        o, images = self.opts, batches[0].views[0]
        mask = random_patch_mask(len(images), self.num_patches, o.mask_ratio, device=images.device)
        with ctx.autocast():
            prediction = net(images, mask)
        return StepOutput(masked_patch_loss(prediction, images, mask, o.patch_size, o.norm_pix_loss))

    def preview_batch(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Fixed faces (the pool's first ones, test view) and a fixed mask, so previews are comparable."""
        view = test_view(self.cfg.data.img_size, self.cfg.data.bgr_quirk)
        n = min(self.opts.preview, len(self.faces))
        images = torch.stack([view(self.faces.load(i)) for i in range(n)]).to(device)
        generator = torch.Generator().manual_seed(self.cfg.seed)
        mask = random_patch_mask(n, self.num_patches, self.opts.mask_ratio, generator=generator)
        return images, mask.to(device)

    def write_preview(self, images: torch.Tensor, mask: torch.Tensor, epoch: int) -> Path:
        self.model.eval()
        recon = reconstruct(self.model, images, mask, self.opts.norm_pix_loss)
        masked = hide_patches(images, mask, self.opts.patch_size)
        return plot_reconstructions(
            images,
            masked,
            recon,
            self.run_dir / "plots" / "reconstructions.png",
            f"{self.cfg.name}: epoch {epoch}, {self.opts.mask_ratio:.0%} of patches masked",
        )
