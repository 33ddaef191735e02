"""MAE (He et al., CVPR 2022) for a ViT backbone: the encoder sees only the visible patch tokens.

This is MAE's `MaskedAutoencoderViT` (as in MAE's and Bridging the Gaps' official code) around semifer's
`ViTBackbone`: patch embedding + fixed 2-D sin-cos position embedding, per-image random masking by
shuffling (`random_patch_mask` draws the noise and keeps the first 25 % of its argsort; here the visible
indices are gathered and `ids_restore` un-shuffles), the class token prepended to the visible tokens only,
the ViT blocks and MAE's final `norm`; then a light decoder: `decoder_embed`, a learnt `mask_token` in
every hidden position, a fixed sin-cos `decoder_pos_embed`, `decoder_blocks`, `decoder_norm` and
`decoder_pred` to the pixels of each patch. The loss (`masking.masked_patch_loss`) is the MSE on the
hidden patches only, against per-patch normalised pixels with `norm_pix_loss`.

Parameter names are MAE's (`cls_token`, `pos_embed`, `patch_embed.proj.weight`, `blocks.0.attn.qkv.weight`,
`norm.weight`, `decoder_*`, `mask_token`) under `backbone.` for the encoder: `mae_state_dict()` writes
exactly the official checkpoint's keys, `encoder_state_dict()` the encoder alone.

The recipe (optimiser, lr, schedule, views) is `mae.py`'s; which values are the paper's and which are scaled
down for CPU is said in the presets `pretrain_mae_vit_base` (paper scale: ViT-B/16, 224 px, decoder 512 x 8
blocks x 16 heads, SSFER's lr) and `pretrain_mae_vit_tiny_fer2013` (CPU: ViT-Tiny, 48 px, 6 px patches,
SSFER's ViT-Tiny decoder 96 x 1 x 3, 2000 steps).
"""

from __future__ import annotations

from functools import partial

import torch
from timm.models.vision_transformer import Block
from torch import nn

from ..models.vit import ViTBackbone
from .masking import unpatchify


def sincos_pos_embed(dim: int, grid: int) -> torch.Tensor:
    """MAE's `get_2d_sincos_pos_embed(dim, grid, cls_token=True)`: (1, 1 + grid^2, dim), zeros for the class
    token; half the channels encode the column (sin then cos over 10000^(-k/(dim/4))), half the row."""
    if dim % 4:
        raise ValueError(f"sin-cos position embedding needs a width divisible by 4, got {dim}")
    omega = 1.0 / 10000 ** (torch.arange(dim // 4, dtype=torch.float64) / (dim / 4.0))
    coords = torch.arange(grid, dtype=torch.float64)
    cols, rows = torch.meshgrid(coords, coords, indexing="xy")

    def encode(positions: torch.Tensor) -> torch.Tensor:
        angles = positions.reshape(-1, 1) * omega.reshape(1, -1)
        return torch.cat([angles.sin(), angles.cos()], dim=1)

    table = torch.cat([encode(cols), encode(rows)], dim=1)
    return torch.cat([torch.zeros(1, dim, dtype=torch.float64), table]).float().unsqueeze(0)


def shuffle_indices(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, N) mask (1 = hidden, the same count per row) -> (ids_shuffle, ids_restore): visible patches first,
    and the permutation that puts the shuffled sequence back in patch order (MAE's `random_masking`)."""
    ids_shuffle = torch.argsort(mask, dim=1, stable=True)
    return ids_shuffle, torch.argsort(ids_shuffle, dim=1)


def _gather_tokens(tokens: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    return torch.gather(tokens, 1, ids.unsqueeze(-1).expand(-1, -1, tokens.shape[-1]))


class ViTMaskedAutoencoder(nn.Module):
    """MAE around a `ViTBackbone`: (images, mask) -> predicted images (hidden patches are what count).

    Decoder defaults are MAE's ViT-B ones (512 wide, 8 blocks, 16 heads); Bridging the Gaps' official
    ViT-Tiny MAE uses 96 wide, 1 block, 3 heads. The backbone is initialised as MAE does (xavier-uniform
    linears, xavier patch projection, N(0, 0.02) tokens) and its position embedding is frozen to sin-cos.
    """

    def __init__(self, backbone: ViTBackbone, decoder_dim: int = 512, decoder_depth: int = 8, decoder_heads: int = 16):
        super().__init__()
        if decoder_dim % decoder_heads:
            raise ValueError(f"pretrain.decoder_dim {decoder_dim} must be a multiple of decoder_heads {decoder_heads}")
        self.backbone = backbone
        self.patch = backbone.patch_size
        dim, norm = backbone.feature_dim, partial(nn.LayerNorm, eps=1e-6)
        self.norm = norm(dim)
        self.decoder_embed = nn.Linear(dim, decoder_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_dim))
        self.decoder_pos_embed = nn.Parameter(sincos_pos_embed(decoder_dim, backbone.grid), requires_grad=False)
        self.decoder_blocks = nn.ModuleList(
            Block(decoder_dim, decoder_heads, 4.0, qkv_bias=True, norm_layer=norm) for _ in range(decoder_depth)
        )
        self.decoder_norm = norm(decoder_dim)
        self.decoder_pred = nn.Linear(decoder_dim, self.patch * self.patch * 3)
        self._init_weights()

    @torch.no_grad()
    def _init_weights(self) -> None:
        b = self.backbone
        b.pos_embed.copy_(sincos_pos_embed(b.feature_dim, b.grid))
        b.pos_embed.requires_grad_(False)
        b.fc_norm.requires_grad_(False)  # fine-tuning's pooling norm, unused here: DDP must expect no gradient
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        weight = b.patch_embed.proj.weight
        nn.init.xavier_uniform_(weight.view(len(weight), -1))
        nn.init.normal_(b.cls_token, std=0.02)
        nn.init.normal_(self.mask_token, std=0.02)

    def encode(self, images: torch.Tensor, ids_keep: torch.Tensor) -> torch.Tensor:
        """Class token + the visible patch tokens (ids_keep) through the ViT blocks and MAE's norm."""
        b = self.backbone
        tokens = _gather_tokens(b.patch_embed(images) + b.pos_embed[:, 1:], ids_keep)
        cls = (b.cls_token + b.pos_embed[:, :1]).expand(len(tokens), -1, -1)
        x = torch.cat([cls, tokens], dim=1)
        for block in b.blocks:
            x = block(x)
        return self.norm(x)

    def decode(self, latent: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
        """Visible latents + mask tokens, un-shuffled to patch order -> (B, N, patch * patch * 3) pixels."""
        x = self.decoder_embed(latent)
        hidden = ids_restore.shape[1] + 1 - x.shape[1]
        patches = torch.cat([x[:, 1:], self.mask_token.expand(len(x), hidden, -1)], dim=1)
        x = torch.cat([x[:, :1], _gather_tokens(patches, ids_restore)], dim=1) + self.decoder_pos_embed
        for block in self.decoder_blocks:
            x = block(x)
        return self.decoder_pred(self.decoder_norm(x))[:, 1:]

    def forward(self, images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        visible = int(mask.shape[1] - mask[0].sum().item())
        ids_shuffle, ids_restore = shuffle_indices(mask)
        prediction = self.decode(self.encode(images, ids_shuffle[:, :visible]), ids_restore)
        return unpatchify(prediction, self.patch, images.shape[-2], images.shape[-1])

    def encoder_state_dict(self) -> dict[str, torch.Tensor]:
        """The encoder in MAE's key names: the backbone (without the fine-tuning `fc_norm`) and `norm`."""
        state = {k: v for k, v in self.backbone.state_dict().items() if not k.startswith("fc_norm.")}
        state.update({f"norm.{k}": v for k, v in self.norm.state_dict().items()})
        return state

    def mae_state_dict(self) -> dict[str, torch.Tensor]:
        """Every tensor under the keys of MAE's official checkpoints (`{'model': this}` in MAE's files)."""
        decoder = {k: v for k, v in self.state_dict().items() if not k.startswith(("backbone.", "norm."))}
        return {**self.encoder_state_dict(), **decoder}
