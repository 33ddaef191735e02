"""FixMatch (Sohn et al., NeurIPS 2020).

Hard pseudo-label from one weak view, kept when its confidence reaches a fixed tau = 0.95, trains the
strong view (RandAugment + Cutout); lambda_u = 1, one concatenated forward as in the paper's code. The
paper's optimisation defaults (SGD lr 0.03 Nesterov, wd 5e-4, cosine 7*pi/16 decay, EMA 0.999, mu = 7)
are training settings: see the `fixmatch` preset.
"""

from __future__ import annotations

from dataclasses import dataclass

from .confidence_ssl import ConfidenceSSL


class FixMatch(ConfidenceSSL):
    name = "fixmatch"

    @dataclass
    class Options(ConfidenceSSL.Options):
        threshold: str = "fixed"
        tau: float = 0.95
