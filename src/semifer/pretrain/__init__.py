"""Stage 0 of Bridging the Gaps: masked face-reconstruction pretraining of a backbone (`semifer pretrain`)."""

from .decoder import PixelDecoder
from .mae import MaskedAutoencoder, PretrainOptions, PretrainResult, pretrain, pretrain_options
from .masking import hide_patches, masked_patch_loss, patchify, random_patch_mask, unpatchify

__all__ = ["MaskedAutoencoder", "PixelDecoder", "PretrainOptions", "PretrainResult", "hide_patches",
           "masked_patch_loss", "patchify", "pretrain", "pretrain_options", "random_patch_mask", "unpatchify"]
