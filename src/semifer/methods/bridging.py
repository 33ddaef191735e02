"""Bridging the Gaps (Song, He, Feng, Shen): face-aware Mixup and the two fine-tuning stages that follow the
face-reconstruction pretraining of `semifer pretrain`.

- `FaceMixup`: each labeled image i is mixed with its mirror partner B-1-i of the batch (the batch reversed),
  mix_i = lambda x_i + (1 - lambda) x_(B-1-i), lambda ~ Beta(1, 1); the loss per pair is the soft
  cross-entropy of the mixed image plus w_real_i times the cross-entropy of the two *real* images.
- `bridging_stage1`: labeled images only, label smoothing 0.1, face mixup, RandAugment m9 (timm's
  `rand-m9-mstd0.5-inc1`, the official code's; `semifer.data.views.TimmRandAugment` says why not
  torchvision's `RandAugment(2, 9)`). MAE's fine-tuning pipeline around it (random resized crop, random
  erasing 0.25) is not applied: our weak crop + flip follow it instead.
- `bridging_stage2`: FixMatch (fixed threshold 0.7, lambda_u 5, the paper's stage-2 values) whose
  pseudo-labels come from the EMA teacher (the engine's EMA model, `pseudo_labeler: teacher`), plus the
  face-mixup loss on the labeled batch. It continues stage 1 with the same network, head included:
  `model.init_from=runs/<stage1>/checkpoints/last.pt` loads stage 1's student weights into the whole
  FERNet (the key report lands in the run's `init_load.txt`), and the EMA teacher starts as that copy.

Face boxes (`face_boxes`): `detect` (default) runs OpenCV's Haar cascade once per labeled image before
training (`semifer.data.face_boxes`) and uses the whole image where it finds no face; `whole_image` takes
the whole image as every face's box, the right box for data that is already cropped to the face -- then
IoU = 1 and the real-image terms weigh 0, the paper's rule taken literally; `none` uses the constant
`real_weight` instead (not the paper's). The run's log says which boxes were used and how many faces were
found. Boxes are those of the un-augmented image: the crop (a few percent) and flip of the training view
move a near-centred face box little.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from torchvision.ops import box_iou

from ..config_checks import SHAPE, UNIT_OPEN_TOP, WEIGHT, option, positive, up_to
from ..data.face_boxes import detect_face_boxes, whole_image_boxes
from ..data.faceset import FaceSet
from .base import Batch, Method, MethodOptions, StepOutput, TrainContext
from .confidence_ssl import ConfidenceOptions, ConfidenceSSL
from .forward import forward_views
from .thresholds import FixedThreshold
from .unlabeled_losses import soft_cross_entropy


def reversed_pair_mix(x: torch.Tensor, lam: float) -> torch.Tensor:
    """lambda x_i + (1 - lambda) x_(B-1-i), out of place (the official code mixes `x` in place)."""
    return lam * x + (1.0 - lam) * x.flip(0)


def pair_iou(boxes: torch.Tensor) -> torch.Tensor:
    """(B,) IoU between the face box of image i and that of its mixing partner B-1-i (boxes as x1, y1, x2, y2)."""
    return box_iou(boxes.float(), boxes.float().flip(0)).diagonal()


@dataclass
class FaceMixup:
    """Face-aware Mixup as a loss over the labeled batch extended by its mixed pairs.

    The paper's loss, as in the official code (summed over the batch, divided by B):
        L = (1/B) sum_i [ mixed_weight * CE(f(mix_i), lambda y_i + (1 - lambda) y_(B-1-i))
                          + w_i * (CE(f(x_i), y_i) + CE(f(x_(B-1-i)), y_(B-1-i))) ]
    with the real-image terms computed on the *unmixed* images (the official code mixes the batch in
    place first, so its "real" terms see mixed images: a bug not copied). w_i = 1 - IoU of the two images'
    face boxes when boxes are given (the paper's rule: the more the faces overlap, the more the mix already
    shows a plausible face), otherwise the constant `real_weight`. Aligned face crops (RAF-DB aligned,
    FER2013, AffectNet crops) put every face in about the same box, IoU ~ 1, so the paper's rule nearly
    drops the real images; `real_weight` 0.5 (boxes off) instead gives the real and the mixed images equal
    total weight (each real image appears in two pairs).

    As every w_i is symmetric (w_i = w_(B-1-i)), L is a weighted soft cross-entropy over the 2B rows
    [x; mix]: real row i weighted 2 w_i, mixed row i weighted mixed_weight. `__call__` returns those rows
    with the weights folded into the targets (times 2, since the loss is their mean over 2B rows), so
    `soft_cross_entropy(logits, targets)` -- or any mean cross-entropy on probability targets, such as
    FixMatch's labeled loss -- *is* L. Labels are smoothed by `label_smoothing` before mixing (timm's
    mixup targets, which the official code uses); the real-image terms use the same smoothed labels,
    where the official code leaves them unsmoothed, so that stage 1 is "CE with smoothing 0.1" throughout.
    """

    alpha: float = 1.0
    mixed_weight: float = 1.0
    real_weight: float = 0.5
    label_smoothing: float = 0.1

    def __post_init__(self) -> None:
        if self.alpha <= 0 or self.mixed_weight < 0 or self.real_weight < 0 or not 0 <= self.label_smoothing < 1:
            raise ValueError("face mixup needs alpha > 0, weights >= 0 and 0 <= label_smoothing < 1")

    def sample_lambda(self) -> float:
        """lambda ~ Beta(alpha, alpha), alpha = 1 (uniform) in the paper; one lambda per batch, as in its code."""
        return float(torch.distributions.Beta(self.alpha, self.alpha).sample())

    def real_weights(self, n: int, device: torch.device, boxes: torch.Tensor | None = None) -> torch.Tensor:
        """(n,) weight of each pair's real-image term: 1 - IoU with boxes, else `real_weight`."""
        if boxes is None:
            return torch.full((n,), self.real_weight, device=device)
        return (1.0 - pair_iou(boxes)).clamp(0.0, 1.0).to(device)

    def __call__(
        self,
        x: torch.Tensor,
        labels: torch.Tensor,
        num_classes: int,
        boxes: torch.Tensor | None = None,
        lam: float | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, float]:
        """(inputs, targets, lambda): inputs = [x; mix] (2B rows), targets (2B, C) with the weights folded in."""
        lam = self.sample_lambda() if lam is None else lam
        eps = self.label_smoothing
        smooth = F.one_hot(labels, num_classes).float() * (1 - eps) + eps / num_classes
        real = 2.0 * self.real_weights(len(x), x.device, boxes)
        mixed = torch.full_like(real, self.mixed_weight)
        targets = torch.cat([smooth * real[:, None], reversed_pair_mix(smooth, lam) * mixed[:, None]]) * 2.0
        return torch.cat([x, reversed_pair_mix(x, lam)]), targets, lam


class FaceBoxTable(nn.Module):
    """The face box of every labeled image, looked up by the batch's indices (see the module docstring).

    Filled once by `prepare` at the start of training; empty (the constant `real_weight`) before that or
    with mode `none`. Not saved in checkpoints: a resumed run detects again.
    """

    MODES = ("detect", "whole_image", "none")

    def __init__(self, mode: str):
        super().__init__()
        if mode not in self.MODES:
            raise ValueError(f"method.face_boxes must be one of {', '.join(self.MODES)}, got {mode!r}")
        self.mode = mode
        self.register_buffer("boxes", None, persistent=False)

    def prepare(self, faces: FaceSet, device: torch.device) -> dict[str, Any]:
        if self.mode == "none":
            return {"face_boxes": "none: constant real-image weight"}
        if self.mode == "whole_image":
            boxes = whole_image_boxes(len(faces))
            note = "whole image (data already cropped to the face): IoU 1, real-image terms weigh 0"
        else:
            boxes, found = detect_face_boxes(faces)
            note = (
                f"Haar cascade found a face in {int(found.sum())} of {len(faces)} labeled images "
                "(the whole image for the rest)"
            )
        self.boxes = torch.as_tensor(boxes, device=device)
        return {"face_boxes": note}

    def forward(self, index: torch.Tensor) -> torch.Tensor | None:
        return None if self.boxes is None else self.boxes[index]


@dataclass
class FaceMixupOptions(MethodOptions):
    """The face-mixup options both stages take (`FaceMixup`, `FaceBoxTable`)."""

    face_mixup: bool = True
    mixup_alpha: float = option(1.0, positive(SHAPE))
    mixed_weight: float = option(1.0, up_to(0, WEIGHT))
    real_weight: float = option(0.5, up_to(0, WEIGHT))
    label_smoothing: float = option(0.1, UNIT_OPEN_TOP)
    face_boxes: str = option("detect", choices=FaceBoxTable.MODES)

    def mixup(self) -> FaceMixup:
        return FaceMixup(self.mixup_alpha, self.mixed_weight, self.real_weight, self.label_smoothing)


class BridgingStage1(Method):
    """Stage 1: supervised fine-tuning on the labeled images with label smoothing 0.1 and face mixup.

    Paper values: label smoothing 0.1, Beta(1, 1), RandAugment m9 (`labeled_view: randaugment_m9`; `weak`
    or `strong` for semifer's other views); its optimisation (AdamW 1.5e-4, wd 0.05, EMA 0.999, 100 epochs)
    is in the `bridging_stage1` preset.
    The real and mixed images are two passes (`separate_forward`, as the official code's two model calls:
    batch-norm statistics of real and mixed images are not pooled), in one engine call. `face_mixup: false`
    leaves the label-smoothed cross-entropy on the real images.
    """

    name = "bridging_stage1"

    @dataclass
    class Options(FaceMixupOptions):
        labeled_view: str = option("randaugment_m9", choices=("weak", "strong", "randaugment_m9"))
        separate_forward: bool = True

    own_training = ("train.optimizer=adamw", "train.lr=1.5e-4", "train.weight_decay=0.05", "train.ema=0.999")

    def __init__(self, options: Options, num_classes: int, num_unlabeled: int = 0):
        super().__init__(options, num_classes, num_unlabeled)
        self.mixup = self.opts.mixup()
        self.face_boxes = FaceBoxTable(self.opts.face_boxes)

    def on_train_start(self, ctx: TrainContext) -> dict[str, Any]:
        return self.face_boxes.prepare(ctx.labeled, ctx.device) if self.opts.face_mixup else {}

    @property
    def labeled_views(self) -> tuple[str, ...]:  # type: ignore[override]
        return (self.opts.labeled_view,)

    def step(self, model: nn.Module, labeled: Batch, unlabeled: Batch | None, progress: float) -> StepOutput:
        x, y = labeled.views[0], labeled.label
        if not self.opts.face_mixup:
            loss = F.cross_entropy(model(x).float(), y, label_smoothing=self.opts.label_smoothing)
            return StepOutput(loss, {"loss_x": loss.detach()})
        inputs, targets, lam = self.mixup(x, y, self.num_classes, self.face_boxes(labeled.index))
        n = len(x)
        outs = forward_views(model, [inputs[:n], inputs[n:]], self.opts.separate_forward)
        rows = soft_cross_entropy(torch.cat([z for z, _ in outs]), targets, reduction="none") / (2 * n)
        loss_real, loss_mixed = rows[:n].sum(), rows[n:].sum()
        return StepOutput(
            loss_real + loss_mixed,
            {
                "loss_real": loss_real.detach(),
                "loss_mixed": loss_mixed.detach(),
                "mixup_lambda": torch.full((), lam, device=x.device),
            },
        )


class BridgingStage2(ConfidenceSSL):
    """Stage 2: FixMatch with the paper's stage-2 values (fixed threshold 0.7, lambda_u 5, one weak and one
    strong view, mu = 1 via `train.unlabeled_ratio`) plus face mixup on the labeled batch.

    The labeled loss of FixMatch becomes the face-mixup loss: the labeled batch is extended by its mixed
    pairs and its targets carry the weights (`FaceMixup`), so one engine call and all of `ConfidenceSSL`
    (thresholds, diagnostics, optional uncertain-set loss) are reused; `lambda_x` scales the whole
    face-mixup loss and `loss_x` logs it. Label smoothing defaults to 0, as the official stage-2 labeled
    cross-entropy; `face_mixup: false` is the official stage 2 exactly (plain labeled CE).

    Pseudo-labels come from the EMA teacher's weak view, as the paper's (`pseudo_labeler: student` for
    FixMatch's own rule).
    """

    name = "bridging_stage2"

    @dataclass
    class Options(ConfidenceOptions, FixedThreshold.Options, FaceMixupOptions):
        threshold: str = option("fixed", choices=("fixed",))
        tau: float = 0.7
        lambda_u: float = 5.0
        label_smoothing: float = 0.0
        pseudo_labeler: str = "teacher"

    own_training = (
        "train.optimizer=adamw",
        "train.lr=1.5e-4",
        "train.weight_decay=0.05",
        "train.ema=0.999",
        "train.unlabeled_ratio=1",
    )

    def __init__(self, options: Options, num_classes: int, num_unlabeled: int = 0):
        super().__init__(options, num_classes, num_unlabeled)
        self.mixup = self.opts.mixup()
        self.face_boxes = FaceBoxTable(self.opts.face_boxes)

    def on_train_start(self, ctx: TrainContext) -> dict[str, Any]:
        notes = super().on_train_start(ctx)
        return {**notes, **self.face_boxes.prepare(ctx.labeled, ctx.device)} if self.opts.face_mixup else notes

    def step(
        self,
        model: nn.Module,
        labeled: Batch,
        unlabeled: Batch | None,
        progress: float,
        teacher: nn.Module | None = None,
    ) -> StepOutput:
        if not self.opts.face_mixup:
            return super().step(model, labeled, unlabeled, progress, teacher)
        boxes = self.face_boxes(labeled.index)
        inputs, targets, lam = self.mixup(labeled.views[0], labeled.label, self.num_classes, boxes)
        extended = Batch([inputs], targets, torch.cat([labeled.index, labeled.index]))
        out = super().step(model, extended, unlabeled, progress, teacher)
        out.logs["mixup_lambda"] = torch.full((), lam, device=inputs.device)
        return out
