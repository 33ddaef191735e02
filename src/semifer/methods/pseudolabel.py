"""Pseudo-Label (Lee, ICML-W 2013): train on the model's own confident hard predictions.

The pseudo-label and the loss use the same weak view (no strong augmentation). Lee ramps the unlabeled
weight up from 0; as in USB's implementation we ramp it linearly over the first 40% of training to
lambda_u = 1 and keep only predictions with confidence >= 0.95 (Lee uses no threshold; USB's default).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config_checks import option
from .confidence_ssl import ConfidenceOptions, ConfidenceSSL
from .thresholds import FixedThreshold


class PseudoLabel(ConfidenceSSL):
    name = "pseudolabel"

    @dataclass
    class Options(ConfidenceOptions, FixedThreshold.Options):
        strong_views: int = 0
        target_view: str = "weak"
        threshold: str = option("fixed", choices=("fixed",))
        unsup_warmup: float = 0.4
