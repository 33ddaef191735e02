"""FlexMatch (Zhang et al., NeurIPS 2021): FixMatch with curriculum pseudo-labeling.

Per-class thresholds tau * M(beta_c) from each class's learning effect (how many unlabeled images are
confidently predicted as it), with threshold warm-up and the convex mapping M(x) = x / (2 - x): the
paper's defaults (tau = 0.95). See `FlexMatchThreshold`. Its training recipe is FixMatch's (mu 7, SGD 0.03,
wd 5e-4, EMA 0.999): `own_training`, applied by the `flexmatch_fer2013` preset.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config_checks import option
from .confidence_ssl import ConfidenceOptions, ConfidenceSSL
from .fixmatch import FixMatch
from .thresholds import FlexMatchThreshold


class FlexMatch(ConfidenceSSL):
    name = "flexmatch"
    unlabeled_ratio = FixMatch.unlabeled_ratio
    own_training = FixMatch.own_training

    @dataclass
    class Options(ConfidenceOptions, FlexMatchThreshold.Options):
        threshold: str = option("flexmatch", choices=("flexmatch",))
