"""Losses on unlabeled images, shared by the methods that compose them.

Confident set: cross-entropy of a (strong) view against a hard pseudo-label, masked.
Uncertain set: InfoNCE between views of the same image (Ada-CM subset II), or selective negative learning
on complementary labels (DTA+SNL).
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


def pseudo_label(weak_logits: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(mean softmax over the weak views, its max = confidence, its argmax = pseudo-label), all detached."""
    probs = torch.stack([torch.softmax(z.detach().float(), dim=1) for z in weak_logits]).mean(0)
    confidence, label = probs.max(dim=1)
    return probs, confidence, label


def masked_cross_entropy(logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the *whole* batch of CE * mask (masked-out samples count as zeros, as in FixMatch)."""
    return (F.cross_entropy(logits.float(), target, reduction="none") * mask).mean()


def soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy against a probability vector (mixup targets, sharpened guesses)."""
    loss = -(target * F.log_softmax(logits.float(), dim=1)).sum(dim=1)
    return loss.mean() if reduction == "mean" else loss


def info_nce(
    views: list[torch.Tensor], keep: torch.Tensor, temperature: float = 0.07, base_temperature: float = 0.07
) -> torch.Tensor:
    """Unsupervised NT-Xent (SimCLR form of the supervised-contrastive loss) over the kept images.

    `views[k]` holds the (N, D) features of the k-th view; only rows with `keep` take part. Every view is
    an anchor; its positives are the other views of the same image, its negatives every other view of the
    kept images. Features are L2-normalised first, as in SimCLR (a no-op for Ada-CM's unit features; without
    it an unnormalised feature at temperature 0.07 swamps every other loss). Rows outside `keep` are masked
    rather than indexed away, so the step never waits on the device for the subset's size; no kept image
    gives 0 that still depends on the features, so DDP's gradient hooks see the same parameters.
    """
    n_views = len(views)
    if n_views < 2:
        return sum(v.sum() for v in views) * 0.0
    feats = F.normalize(torch.cat(views).float(), dim=1)
    kept = keep.bool().repeat(n_views)
    ids = torch.arange(len(keep), device=feats.device).repeat(n_views)
    logits = feats @ feats.T / temperature
    logits = logits - logits.max(dim=1, keepdim=True).values.detach()
    self_mask = torch.eye(len(ids), dtype=torch.bool, device=feats.device)
    # Kept anchors contrast against kept views only; the others see every view (finite, then dropped).
    outside = self_mask | (kept[:, None] & ~kept[None, :])
    positive = (ids[:, None] == ids[None, :]) & ~self_mask
    log_prob = logits - torch.logsumexp(logits.masked_fill(outside, float("-inf")), dim=1, keepdim=True)
    mean_log_prob_pos = log_prob.masked_fill(~positive, 0.0).sum(1) / positive.sum(1)
    loss = -mean_log_prob_pos.masked_fill(~kept, 0.0).sum() / kept.sum().clamp(min=1)
    return (temperature / base_temperature) * loss


def complementary_labels(probs: torch.Tensor, threshold: float = 0.05, k: int = 0) -> torch.Tensor:
    """(N, C) bool: the classes each sample confidently is NOT, from detached probabilities.

    `k = 0`: every class with probability below `threshold` (UPS's negative pseudo-labels, Rizve et al.,
    ICLR 2021, tau_n = 0.05); `k > 0`: the k least probable classes instead. The arg-max class is never
    selected, whatever the threshold.
    """
    probs = probs.detach()
    if k > 0:
        lowest = probs.topk(min(k, probs.shape[1] - 1), dim=1, largest=False).indices
        chosen = torch.zeros_like(probs, dtype=torch.bool).scatter_(1, lowest, True)
    else:
        chosen = probs < threshold
    return chosen & ~F.one_hot(probs.argmax(1), probs.shape[1]).bool()


def selective_negative_loss(
    logits: torch.Tensor, probs: torch.Tensor, uncertain: torch.Tensor, threshold: float = 0.05, k: int = 0
) -> torch.Tensor:
    """Selective negative learning (DTA+SNL, Cai et al.) on the low-confidence unlabeled samples.

    For each row with `uncertain` set, the complementary labels chosen from `probs` (see
    `complementary_labels`) are trained with the negative-learning loss -log(1 - p_k) (NLNL, Kim et al.,
    ICCV 2019) on the softmax of `logits`, averaged over that row's chosen classes (as UPS normalises by
    the number of negative labels). Rows that are confident or have no chosen class add zero, and the sum
    is divided by the whole batch size, like `masked_cross_entropy`.
    """
    chosen = complementary_labels(probs, threshold, k) & uncertain.bool()[:, None]
    p = torch.softmax(logits.float(), dim=1)
    negative = -torch.log1p(-p.clamp(max=1 - 1e-6)) * chosen
    return (negative.sum(1) / chosen.sum(1).clamp(min=1)).mean()
