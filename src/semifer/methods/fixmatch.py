"""FixMatch (Sohn et al., NeurIPS 2020).

Hard pseudo-label from one weak view, kept when its confidence reaches a fixed tau = 0.95, trains the
strong view (RandAugment + Cutout); lambda_u = 1, one concatenated forward as in the paper's code. The weak
view's padded crop is always on (`crop_p` 1.0, as FixMatch's code). mu = 7 unlabeled images per
labeled one is the method's default (`unlabeled_ratio`, used when `train.unlabeled_ratio` is unset). The
rest of the paper's recipe -- SGD lr 0.03 Nesterov, wd 5e-4, cosine 7*pi/16 decay, EMA 0.999 -- is training
config, declared in `own_training` (a run without it says so at start) and applied by the
`fixmatch_fer2013` preset.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config_checks import option
from .confidence_ssl import ConfidenceOptions, ConfidenceSSL
from .thresholds import FixedThreshold


class FixMatch(ConfidenceSSL):
    name = "fixmatch"
    unlabeled_ratio = 7.0
    own_training = (
        "train.unlabeled_ratio=7",
        "train.optimizer=sgd",
        "train.lr=0.03",
        "train.nesterov=true",
        "train.weight_decay=5e-4",
        "train.schedule=fixmatch_cosine",
        "train.ema=0.999",
    )

    @dataclass
    class Options(ConfidenceOptions, FixedThreshold.Options):
        threshold: str = option("fixed", choices=("fixed",))
