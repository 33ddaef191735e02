"""DTA + SNL (Cai, Yu, Xu, Liu, Sun, Liang, "Semi-Supervised Facial Expression Recognition based on Dynamic
Threshold and Negative Learning", arXiv 2601.05556): FixMatch-style SSL with a teacher and three additions,
each a part of this package usable alone in an ablation.

What the paper describes (read through a published summary of it; no code is public):
- Two networks: a student (its "network A") trained by gradient and a teacher ("network B") whose weights
  are the student's exponential moving average. The teacher's prediction on the weak view of an unlabeled
  image gives the pseudo-label (`pseudo_labeler: teacher`: the engine's EMA model, in eval mode, passed to
  `step`); the student learns it on the strong view.
- Labeled images: weak augmentation and balanced sampling (`balanced_labeled`: every labeled batch is drawn
  class-balanced by `ClassBalancedSampler`; `data.balanced_labeled=false` turns it off).
- Dynamic Threshold Adjustment: `threshold: dynamic` (`DynamicThreshold`, class_state "confidence"):
  per-class thresholds g * s_c / max_k s_k from EMAs of the teacher's unlabeled confidence, overall and
  per predicted class.
- Selective Negative Learning: `uncertain_loss: snl` (`selective_negative_loss`) on the images below
  their threshold: classes under 5 % mean weak-view probability train the strong view with -log(1 - p_k).
- Feature extraction: local attention enhancement and random feature-map (channel) dropout on the
  backbone's last feature map (`model.attention`, `model.feature_dropout`; default on through `head`).

Where the text is silent, chosen here: the EMA decay is the engine's `train.ema` (0.999 by default, as
FixMatch and Mean Teacher); the threshold EMAs' momentum scales with the run's length (`dyn_momentum`
None: the 1/C start keeps 1 % of its weight after the first `dyn_warmup` = 10 % of the steps, at most
0.999, see `DynamicThreshold`); the 5 % negative threshold is UPS's (`snl_k` picks the k least probable
classes instead); lambda_c = 1 gives negative labels the weight of positive ones, as UPS does; feature-map
dropout p = 0.1, the usual mild spatial-dropout rate, leaves ~460 of ResNet-18's 512 channels per sample;
the weak view's padded crop is always on (FixMatch's, `crop_p` 1.0). Optimisation settings are training
config.

`dyn_floor` (default 0: the thresholds exactly as the paper's rule gives them) is a lower bound under every
class threshold. The rule follows the model's own mean confidence, which suits the paper's pretrained start;
from scratch it admits most of the unlabeled batch from the first epoch at pseudo-label accuracies near 40 %.
On FER2013 at 400 labels from scratch (the SSL table's recipe) a floor of 0.7, chosen among 0 / 0.7 / 0.95
on a validation split (`benchmarks/accuracy/val_selection.py`), lifts DTA+SNL from 0.4 points below supervised to
8.2 above (three seeds, BENCHMARKS.md); from a pretrained start the default gains as it is.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config_checks import option
from .base import Method
from .confidence_ssl import ConfidenceOptions, ConfidenceSSL
from .thresholds import DynamicThreshold, FixedThreshold


class DTASNL(ConfidenceSSL):
    name = "dta_snl"
    head = {**Method.head, "attention": True, "feature_dropout": 0.1}
    balanced_labeled = True

    @dataclass
    class Options(ConfidenceOptions, DynamicThreshold.Options, FixedThreshold.Options):
        """`threshold: fixed` (with `tau`) is the ablation of DTA+SNL with FixMatch's threshold."""

        threshold: str = option("dynamic", choices=("dynamic", "fixed"))
        uncertain_loss: str = "snl"
        lambda_c: float = 1.0
        pseudo_labeler: str = "teacher"
