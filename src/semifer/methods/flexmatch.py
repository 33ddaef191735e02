"""FlexMatch (Zhang et al., NeurIPS 2021): FixMatch with curriculum pseudo-labeling.

Per-class thresholds tau * M(beta_c) from each class's learning effect (how many unlabeled images are
confidently predicted as it), with threshold warm-up and the convex mapping M(x) = x / (2 - x): the
paper's defaults (tau = 0.95). See `FlexMatchThreshold`.
"""

from __future__ import annotations

from dataclasses import dataclass

from .confidence_ssl import ConfidenceSSL


class FlexMatch(ConfidenceSSL):
    name = "flexmatch"

    @dataclass
    class Options(ConfidenceSSL.Options):
        threshold: str = "flexmatch"
        tau: float = 0.95
        flex_warmup: bool = True
        flex_mapping: str = "convex"
