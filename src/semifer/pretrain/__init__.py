"""Pretraining a backbone on unlabeled faces (`semifer pretrain`): masked face reconstruction (Bridging the
Gaps' stage 0) or SimCLR, objectives of the engine's loop; the result is a backbone file for
`model.pretrained=`."""

from .decoder import PixelDecoder
from .kinds import PRETRAININGS, Pretrainer, PretrainResult, pretrain
from .mae import MAEObjective, MaskedAutoencoder, PretrainOptions, pretrain_options
from .masking import hide_patches, masked_patch_loss, patchify, random_patch_mask, unpatchify
from .simclr import SimCLRObjective

__all__ = [
    "PRETRAININGS",
    "MAEObjective",
    "MaskedAutoencoder",
    "PixelDecoder",
    "PretrainOptions",
    "PretrainResult",
    "Pretrainer",
    "SimCLRObjective",
    "hide_patches",
    "masked_patch_loss",
    "patchify",
    "pretrain",
    "pretrain_options",
    "random_patch_mask",
    "unpatchify",
]
