"""DTM (Yu, Cai, Li, Zhao, Xie, Zhu, Zhu, "Exploring Large-scale Unlabeled Faces to Enhance Facial Expression
Recognition", CVPR-W ABAW5 2023): FixMatch-style pseudo-labelling whose confidence threshold adapts as
training goes, so large unlabeled face-recognition pools (any folder of faces, `data.extra_unlabeled`) can
be used although early predictions on them are far below a fixed 0.95.

The dynamic threshold module is `DynamicThreshold` with class_state "probability": the global threshold is
the EMA (m = 0.999) of the batch mean confidence and each class's threshold is it times the MaxNorm of the
EMA of that class's mean probability -- FreeMatch's self-adaptive rule, which DTM follows; the ABAW paper
gives no constants, so FreeMatch's are used (init 1/C), except that the EMAs' momentum scales with the run's
length (FreeMatch's 0.999 at its 2^20 steps; see `DynamicThreshold`), so a short run is not masked with
thresholds near their 1/C start. How much of each unlabeled batch comes from the extra pools
is `data.extra_ratio` (None: in proportion to pool sizes).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config_checks import option
from .confidence_ssl import ConfidenceOptions, ConfidenceSSL
from .thresholds import DynamicThreshold


class DTM(ConfidenceSSL):
    name = "dtm"

    @dataclass
    class Options(ConfidenceOptions, DynamicThreshold.Options):
        threshold: str = option("dynamic", choices=("dynamic",))
        dyn_class_state: str = "probability"
