"""Pretraining a backbone on unlabeled faces (`semifer pretrain`): masked face reconstruction (Bridging the
Gaps' stage 0) or SimCLR; the result is a backbone file for `model.pretrained=`."""

from .decoder import PixelDecoder
from .kinds import PRETRAININGS, pretrain
from .mae import MaskedAutoencoder, PretrainOptions, PretrainResult, pretrain_options
from .masking import hide_patches, masked_patch_loss, patchify, random_patch_mask, unpatchify

__all__ = [
    "PRETRAININGS",
    "MaskedAutoencoder",
    "PixelDecoder",
    "PretrainOptions",
    "PretrainResult",
    "hide_patches",
    "masked_patch_loss",
    "patchify",
    "pretrain",
    "pretrain_options",
    "random_patch_mask",
    "unpatchify",
]
