"""Stage 0 of Bridging the Gaps (Song, He, Feng, Shen): masked face-reconstruction pretraining on unlabeled
faces, the entry point of `semifer pretrain` for every backbone.

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

The run directory holds `config.yaml`, `metrics.jsonl` (loss per epoch), `plots/reconstructions.png`
(input / masked / reconstruction of a few fixed faces, rewritten every epoch), `checkpoints/last.pt`
(to resume) and `backbone.safetensors`: the encoder's state dict (torchvision names for a CNN, MAE's for a
ViT), which any method starts from with `model.pretrained=RUN/backbone.safetensors`.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torchvision.transforms import InterpolationMode, v2
from tqdm.auto import tqdm

from ..config import Config, build_dataclass, save_config
from ..data.faceset import FaceSet, concat
from ..data.loaders import ViewDataset, endless_loader
from ..data.registry import load_dataset
from ..data.views import IMAGENET_MEAN, IMAGENET_STD, Normalize, View, test_view
from ..engine.optim import build_optimizer, build_scheduler
from ..engine.rundir import check_resume_config, claim_run_dir, make_run_dir, rewrite_metrics
from ..engine.time_budget import TimeBudget
from ..errors import ConfigError
from ..models import create_backbone, list_models, load_backbone_weights
from ..models.vit import VIT_SIZES, ViTBackbone, default_patch_size
from ..runtime import distributed as dist
from ..runtime.checkpoint import atomic_write, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from ..runtime.precision import autocast, autocast_dtype, grad_scaler
from ..runtime.seeding import seed_everything
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


def save_backbone(state: dict[str, torch.Tensor], path: Path, arch: str) -> Path:
    """Write a backbone's state dict as safetensors, atomically."""
    from safetensors.torch import save

    state = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    meta = {"arch": arch, "source": "semifer pretrain"}
    return atomic_write(path, lambda fh: fh.write(save(state, metadata=meta)), "backbone weights")


def _to_display(images: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (images.float().cpu() * std + mean).clamp(0, 1)


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


@dataclass
class PretrainResult:
    """The run directory, the backbone checkpoint for `model.pretrained`, the per-epoch history and the
    step the run started from (non-zero after `resume`)."""

    run_dir: Path
    checkpoint: Path
    history: list[dict[str, Any]]
    start_step: int = 0


class Pretrainer:
    """Runs `train.epochs` x `train.iters_per_epoch` masked-reconstruction steps on one device.

    Subclasses (other pretrainings) replace `options`, `build_model`, `train_view`, `train_step` and the
    preview, and keep the loop, checkpoints, resume and the backbone file.
    """

    loss_name = "masked-patch MSE"

    def __init__(self, cfg: Config, run_dir: Path, progress: bool = True):
        self.cfg, self.run_dir, self.progress = cfg, run_dir, progress
        self.opts = self.options(cfg)
        tc = cfg.train
        self.device = dist.local_device(tc.device)
        if cfg.model.arch not in list_models():
            raise ConfigError(f"unknown model.arch {cfg.model.arch!r}; choose one of {', '.join(list_models())}")
        m = cfg.model
        no_drop_path = 0.0 if m.arch in VIT_SIZES else None  # MAE pretrains without stochastic depth
        backbone = create_backbone(
            m.arch,
            img_size=cfg.data.img_size,
            patch_size=m.patch_size,
            drop_path=no_drop_path if m.drop_path is None else m.drop_path,
        )
        if cfg.model.pretrained:
            report = load_backbone_weights(backbone, cfg.model.pretrained, strict=cfg.model.strict_load)
            (run_dir / "pretrained_load.txt").write_text(f"{report}\n")
        # channels-last convolutions run ~1.5x faster on CPU (oneDNN), as in the training engine
        memory_format = torch.channels_last if m.channels_last else torch.contiguous_format
        self.model = self.build_model(backbone).to(self.device, memory_format=memory_format)
        self.optimizer = build_optimizer(self.model, tc)
        for group in self.optimizer.param_groups:
            if "betas" in group:
                group["betas"] = tuple(self.opts.betas)
        self.total_steps = tc.epochs * tc.iters_per_epoch
        try:
            self.budget = TimeBudget(self.opts.minutes)
        except ValueError as exc:
            raise ConfigError(f"pretrain.minutes: {exc}") from None
        self.scheduler = build_scheduler(self.optimizer, tc, self.total_steps, self.budget)
        self.amp_dtype = autocast_dtype(self.device, tc.amp)
        self.scaler = grad_scaler(self.device, self.amp_dtype)
        self.faces, self.extra_from = pretrain_pool(cfg)
        self.step = 0
        self.history: list[dict[str, Any]] = []

    @staticmethod
    def options(cfg: Config) -> Any:
        """The validated `pretrain:` section of this kind of pretraining."""
        return pretrain_options(cfg)

    def build_model(self, backbone: nn.Module) -> nn.Module:
        """The trained module around `backbone` (kept as its `.backbone`, the part that is saved)."""
        self.num_patches = (self.cfg.data.img_size // self.opts.patch_size) ** 2
        return masked_autoencoder(backbone, self.cfg.data.img_size, self.opts)

    def checkpoint_path(self) -> Path:
        return self.run_dir / "checkpoints" / "last.pt"

    def backbone_path(self) -> Path:
        return self.run_dir / "backbone.safetensors"

    def save(self) -> None:
        save_checkpoint(
            {
                "config": self.cfg.to_dict(),
                "step": self.step,
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict(),
                "rng": rng_state(),
                "history": self.history,
                "seconds_spent": self.budget.spent,
            },
            self.checkpoint_path(),
        )
        save_backbone(self.model.encoder_state_dict(), self.backbone_path(), self.cfg.model.arch)

    def resume(self) -> bool:
        """Continue from `checkpoints/last.pt`; False when the run stopped before writing one, after emptying
        its metrics log, so the run that starts over does not log its epochs twice."""
        if not self.checkpoint_path().is_file():
            rewrite_metrics(self.run_dir, [])
            if self.progress:
                print(
                    f"{self.run_dir}: no checkpoint to resume from (the run stopped before its first one): "
                    "starting over from step 0"
                )
            return False
        state = load_checkpoint(self.checkpoint_path())
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"])
        self.step, self.history = state["step"], state["history"]
        self.budget.spent_before = state.get("seconds_spent", 0.0)
        rewrite_metrics(self.run_dir, self.history)
        return True

    def _loader(self) -> Any:
        d, tc = self.cfg.data, self.cfg.train
        view = self.train_view() if d.augment else test_view(d.img_size, d.bgr_quirk)
        return endless_loader(
            ViewDataset(self.faces, [view]),
            tc.batch_size,
            self.cfg.seed,
            d.workers,
            start=self.step * tc.batch_size,
            extra_from=self.extra_from,
            extra_ratio=d.extra_ratio,
        )

    def _preview_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Fixed faces (the pool's first ones, test view) and a fixed mask, so previews are comparable."""
        view = test_view(self.cfg.data.img_size, self.cfg.data.bgr_quirk)
        n = min(self.opts.preview, len(self.faces))
        images = torch.stack([view(self.faces.load(i)) for i in range(n)]).to(self.device)
        generator = torch.Generator().manual_seed(self.cfg.seed)
        mask = random_patch_mask(n, self.num_patches, self.opts.mask_ratio, generator=generator)
        return images, mask.to(self.device)

    def train_view(self) -> View:
        d = self.cfg.data
        return pretrain_view(d.img_size, tuple(self.opts.crop_scale), d.bgr_quirk)

    def train_step(self, images: torch.Tensor) -> torch.Tensor:
        o = self.opts
        mask = random_patch_mask(len(images), self.num_patches, o.mask_ratio, device=images.device)
        self.model.train()
        with autocast(self.device, self.amp_dtype):
            prediction = self.model(images, mask)
        loss = masked_patch_loss(prediction, images, mask, o.patch_size, o.norm_pix_loss)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        return loss.detach()

    def epoch_extras(self) -> dict[str, Any]:
        """What this kind of pretraining adds to each epoch's metrics record."""
        return {}

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

    def fit(self) -> list[dict[str, Any]]:
        tc = self.cfg.train
        batches = self._loader()
        preview = self._preview_batch()
        self.budget.start()
        epoch = self.step // tc.iters_per_epoch
        while epoch < tc.epochs and not self.budget.expired():
            first = self.step - epoch * tc.iters_per_epoch
            total, started = torch.zeros((), device=self.device), time.perf_counter()
            bar = tqdm(
                range(first, tc.iters_per_epoch),
                desc=f"pretrain {epoch + 1}/{tc.epochs}",
                disable=not self.progress,
                leave=False,
                mininterval=0.5 if sys.stderr.isatty() else 60,
            )
            for it in bar:
                loss = self.train_step(next(batches)["views"][0].to(self.device, non_blocking=True))
                total += loss
                self.step += 1
                if it % 25 == 0:  # refresh=False: a forced refresh would print the iterator's stale count
                    bar.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
                if self.budget.expired():
                    break
            bar.close()
            seconds = time.perf_counter() - started
            steps = max(1, self.step - epoch * tc.iters_per_epoch - first)
            record = {
                "epoch": epoch + 1,
                "step": self.step,
                "lr": self.optimizer.param_groups[0]["lr"],
                "train/loss": float(total.item()) / steps,
                "images_per_s": steps * tc.batch_size / max(seconds, 1e-9),
                "epoch_seconds": seconds,
                **self.epoch_extras(),
            }
            self.history.append(record)
            with (self.run_dir / "metrics.jsonl").open("a") as fh:
                fh.write(json.dumps(record) + "\n")
            self.write_preview(*preview, epoch + 1)
            self.save()
            if self.progress:
                tqdm.write(
                    f"pretrain epoch {epoch + 1}/{tc.epochs}  {self.loss_name} {record['train/loss']:.4f}"
                    f"  {record['images_per_s']:.0f} img/s"
                )
            epoch += 1
        if self.budget.expired():
            self.save()  # the budget may run out after the epoch's save: record it spent, so a resume stops too
            if self.progress:
                tqdm.write(
                    f"time budget of {self.opts.minutes:g} min spent after {self.step} of {self.total_steps} steps"
                )
        return self.history


def resolve_lr(cfg: Config, opts: Any) -> None:
    """train.lr = base_lr * batch_size / 256 (MAE's and SimCLR's scaling rule) unless base_lr is null;
    recorded in config.yaml."""
    if opts.base_lr is not None:
        cfg.train.lr = opts.base_lr * cfg.train.batch_size / 256


def pretrain(
    cfg: Config,
    resume: bool = False,
    progress: bool = True,
    run_dir: Path | None = None,
    kind: type[Pretrainer] = Pretrainer,
    overwrite: bool = False,
) -> PretrainResult:
    """Pretraining of `model.arch` on the configured faces (masked reconstruction unless `kind` says
    otherwise); returns where the backbone is.

    The run directory is held as in `engine.run.train`: resumed with its own config, or overwritten only
    when asked."""
    seed_everything(cfg.seed)
    opts = kind.options(cfg)
    resolve_lr(cfg, opts)
    if hasattr(opts, "patch_size"):
        cfg.pretrain = {**cfg.pretrain, "patch_size": opts.patch_size}
    run_dir = run_dir or make_run_dir(cfg, resume)
    with claim_run_dir(run_dir, resume, overwrite):
        if resume:
            check_resume_config(run_dir, cfg.to_dict())
        save_config(cfg, run_dir / "config.yaml")
        trainer = kind(cfg, run_dir, progress)
        if resume:
            trainer.resume()
        start = trainer.step
        history = trainer.fit()
    return PretrainResult(run_dir, trainer.backbone_path(), history, start)
