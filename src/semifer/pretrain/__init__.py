"""Pretraining objectives for a backbone on unlabeled faces: masked face reconstruction (Bridging the Gaps'
stage 0), SimCLR or BYOL. `semifer.engine.pretraining.pretrain` (`semifer pretrain`) runs them on the engine's loop;
the result is a backbone file for `model.pretrained=`."""

from .byol import BYOLObjective
from .decoder import PixelDecoder
from .kinds import PRETRAININGS, objective_class
from .mae import MAEObjective, MaskedAutoencoder, PretrainOptions, pretrain_options
from .masking import hide_patches, masked_patch_loss, patchify, random_patch_mask, unpatchify
from .simclr import SimCLRObjective

__all__ = [
    "PRETRAININGS",
    "BYOLObjective",
    "MAEObjective",
    "MaskedAutoencoder",
    "PixelDecoder",
    "PretrainOptions",
    "SimCLRObjective",
    "hide_patches",
    "masked_patch_loss",
    "patchify",
    "objective_class",
    "pretrain_options",
    "random_patch_mask",
    "unpatchify",
]
