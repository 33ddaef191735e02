"""DTA + SNL (Cai, Yu, Xu, Liu, Sun, Liang, "Semi-Supervised Facial Expression Recognition based on Dynamic
Threshold and Negative Learning", arXiv 2601.05556): FixMatch-style SSL with three additions, each a part
of this package usable alone in an ablation.

- Dynamic Threshold Adjustment: `threshold: dynamic` (`DynamicThreshold`, class_state "confidence"):
  per-class thresholds g * s_c / max_k s_k from EMAs (m = 0.999) of the model's unlabeled confidence,
  overall and per predicted class.
- Selective Negative Learning: `uncertain_loss: snl` (`selective_negative_loss`) on the images below
  their threshold: classes under 5 % mean weak-view probability (UPS's negative threshold; `snl_k` picks
  the k least probable instead) train the strong view with -log(1 - p_k). The paper gives no weight;
  lambda_c = 1 gives negative labels the weight of positive ones, as UPS does.
- Feature extraction: local attention enhancement and random feature-map (channel) dropout on the
  backbone's last feature map (`model.attention`, `model.feature_dropout`; default on for this method
  through `head`). The paper gives no dropout rate; p = 0.1 is the usual mild spatial-dropout rate on a
  final convolutional map and leaves ~460 of ResNet-18's 512 channels per sample.
Pseudo-labels come from the student's weak view as in FixMatch (the paper's EMA teacher is the engine's
EMA model, used for evaluation); optimisation settings are training config.
"""

from __future__ import annotations

from dataclasses import dataclass

from .base import Method
from .confidence_ssl import ConfidenceSSL


class DTASNL(ConfidenceSSL):
    name = "dta_snl"
    head = {**Method.head, "attention": True, "feature_dropout": 0.1}

    @dataclass
    class Options(ConfidenceSSL.Options):
        weak_views: int = 1
        strong_views: int = 1
        threshold: str = "dynamic"
        dyn_momentum: float | None = None
        dyn_class_state: str = "confidence"
        uncertain_loss: str = "snl"
        snl_threshold: float = 0.05
        snl_k: int = 0
        lambda_x: float = 1.0
        lambda_u: float = 1.0
        lambda_c: float = 1.0
