"""Vision Transformers (timm) as semifer backbones: ViT-Tiny/Small/Base at any patch and input size.

The parameters are timm's `VisionTransformer` (`cls_token`, `pos_embed`, `patch_embed.proj.weight`,
`blocks.0.attn.qkv.weight`...), which are also the names of MAE's official checkpoints, so an MAE or timm
encoder loads by name. The pooled feature is MAE's fine-tuning choice (He et al., `models_vit.py` with
`global_pool=True`): the mean of the patch tokens (the class token left out) followed by `fc_norm`, a
LayerNorm; the encoder's final `norm` is then unused (timm's `global_pool='avg'`), so a pretraining
checkpoint's `norm.*` is reported as unexpected and `fc_norm.*` starts fresh, as in MAE's fine-tuning.

`forward_map` returns the patch tokens laid back on their (H/p, W/p) grid as a (B, D, h, w) map, so the
heads that act on a feature map (DTA+SNL's local attention, feature-map dropout) work unchanged;
`pool_map` turns that map into the feature (timm's own `pool` is left as it is). `layer_id` / `num_layers`
give MAE's layer-wise lr decay groups.
Nothing is downloaded: the model is always built with random weights (timm's `pretrained=False`).
"""

from __future__ import annotations

from functools import partial

import torch
from timm.layers import resample_abs_pos_embed, resample_patch_embed
from timm.models.vision_transformer import VisionTransformer
from torch import nn

VIT_SIZES: dict[str, tuple[int, int, int]] = {
    "vit_tiny": (192, 12, 3),
    "vit_small": (384, 12, 6),
    "vit_base": (768, 12, 12),
}
"""arch -> (embedding width, depth, heads), the ViT-Ti/S/B of DeiT and MAE."""

FINETUNE_DROP_PATH = 0.1
"""Stochastic depth of MAE's ViT-B fine-tuning recipe, the default when `model.drop_path` is null."""


def default_patch_size(img_size: int) -> int:
    """16 px from 128 px input on (ViT-B/16's 14x14 grid at 224 px); 6 px below (an 8x8 grid at 48 px)."""
    return 16 if img_size >= 128 else 6


class ViTBackbone(VisionTransformer):
    """A timm ViT without classifier, exposing semifer's backbone contract."""

    def __init__(self, size: str, img_size: int = 48, patch_size: int | None = None, drop_path: float = 0.0):
        if size not in VIT_SIZES:
            raise ValueError(f"unknown ViT size {size!r}; choose one of {', '.join(VIT_SIZES)}")
        patch_size = patch_size or default_patch_size(img_size)
        if patch_size < 1 or img_size % patch_size:
            raise ValueError(f"model.patch_size {patch_size} must divide data.img_size {img_size}")
        if not 0.0 <= drop_path < 1.0:
            raise ValueError(f"model.drop_path must be in [0, 1), got {drop_path}")
        dim, depth, heads = VIT_SIZES[size]
        super().__init__(
            img_size=img_size,
            patch_size=patch_size,
            embed_dim=dim,
            depth=depth,
            num_heads=heads,
            mlp_ratio=4.0,
            qkv_bias=True,
            norm_layer=partial(nn.LayerNorm, eps=1e-6),
            global_pool="avg",
            num_classes=0,
            drop_path_rate=drop_path,
        )
        self.feature_dim = dim
        self.patch_size = patch_size
        self.grid = img_size // patch_size
        self.num_layers = depth + 1

    def forward_map(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.forward_features(x)[:, self.num_prefix_tokens :]
        return tokens.transpose(1, 2).reshape(len(x), self.feature_dim, self.grid, self.grid)

    def pool_map(self, feature_map: torch.Tensor) -> torch.Tensor:
        """Mean over the patch tokens, then `fc_norm` (MAE's fine-tuning feature)."""
        return self.fc_norm(feature_map.flatten(2).mean(dim=-1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool_map(self.forward_map(x))

    def feature_map_stages(self) -> list[nn.Module]:
        return list(self.blocks)

    def layer_id(self, name: str) -> int:
        """MAE's `get_layer_id_for_vit`: embeddings 0, block i -> i + 1, everything after -> depth + 1."""
        if name.split(".")[0] in ("cls_token", "pos_embed", "patch_embed", "reg_token"):
            return 0
        if name.startswith("blocks."):
            return int(name.split(".")[1]) + 1
        return self.num_layers

    def adapt_checkpoint(self, state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
        """Resample a checkpoint's position embedding (bicubic, timm) and patch projection (FlexiViT's
        pseudo-inverse, timm) to this model's grid and patch size; returns the state and what changed."""
        changed = []
        pos = state.get("pos_embed")
        if pos is not None and pos.ndim == 3 and pos.shape != self.pos_embed.shape:
            prefix = self.num_prefix_tokens
            old = int(round((pos.shape[1] - prefix) ** 0.5))
            if old * old + prefix == pos.shape[1]:
                state["pos_embed"] = resample_abs_pos_embed(pos, [self.grid, self.grid], [old, old], prefix)
                changed.append(f"pos_embed {old}x{old}->{self.grid}x{self.grid}")
        proj = state.get("patch_embed.proj.weight")
        target = self.patch_embed.proj.weight
        if proj is not None and proj.ndim == 4 and proj.shape[:2] == target.shape[:2] and proj.shape != target.shape:
            state["patch_embed.proj.weight"] = resample_patch_embed(proj, list(target.shape[-2:]))
            changed.append(f"patch_embed.proj.weight {proj.shape[-1]}px->{target.shape[-1]}px")
        return state, changed
