"""One Ada-CM training step written the way the authors' code organises it, as a speed reference.

Written from the description in shared/REFERENCE.md, not from their source: four separate forward passes
(weak 1, weak 2, labeled, strong), the mean weak softmax as pseudo-label, the margin looked up per sample,
the subset-II features gathered by boolean indexing into a (n, 2, d) tensor for a supervised-contrastive
loss with no labels (an identity positive mask tiled over the two views), an `if` on the subset size (a
host sync), Adam, then the EMA and the 0.02*lr weight shrink as a Python loop over the state dict. The
maths is Ada-CM's; only the organisation differs from semifer's step.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def supcon_no_labels(features: torch.Tensor, temperature: float = 0.07) -> torch.Tensor:
    """NT-Xent over (n, views, d) unit features: every view an anchor, the same image's views positive."""
    n, n_views = features.shape[:2]
    contrast = torch.cat(torch.unbind(features, dim=1), dim=0)
    logits = contrast @ contrast.T / temperature
    logits = logits - logits.max(dim=1, keepdim=True).values.detach()
    positive = torch.eye(n, device=features.device).repeat(n_views, n_views)
    not_self = torch.ones_like(positive) - torch.eye(n * n_views, device=features.device)
    positive = positive * not_self
    log_prob = logits - torch.log((torch.exp(logits) * not_self).sum(1, keepdim=True))
    return -((positive * log_prob).sum(1) / positive.sum(1)).mean()


class OfficialStyleAdaCM:
    """Holds what the authors' loop keeps between steps: optimizer, EMA copy, margins."""

    def __init__(self, model: nn.Module, ema_model: nn.Module, lr: float = 5e-4, num_classes: int = 7):
        self.model, self.ema_model, self.lr = model, ema_model, lr
        self.optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        self.margins = torch.full((num_classes,), 0.8, device=next(model.parameters()).device)

    def step(
        self,
        labeled: torch.Tensor,
        labels: torch.Tensor,
        weak1: torch.Tensor,
        weak2: torch.Tensor,
        strong: torch.Tensor,
    ) -> torch.Tensor:
        model = self.model
        model.train()
        logits_w1, feat_w1 = model(weak1, features=True)
        logits_w2, feat_w2 = model(weak2, features=True)
        logits_l = model(labeled)
        logits_s = model(strong)
        probs = (torch.softmax(logits_w1, dim=1) + torch.softmax(logits_w2, dim=1)) / 2
        confidence, pseudo = probs.max(dim=1)
        pseudo = pseudo.detach()
        margin = self.margins[pseudo]
        mask = (confidence >= margin).float()
        loss_l = F.cross_entropy(logits_l, labels)
        loss_i = (F.cross_entropy(logits_s, pseudo, reduction="none") * mask).mean()
        low = confidence < margin
        loss_c = torch.zeros((), device=labeled.device)
        if low.sum() > 0:
            loss_c = supcon_no_labels(torch.stack([feat_w1[low], feat_w2[low]], dim=1))
        loss = 0.5 * loss_l + loss_i + 0.1 * loss_c
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        with torch.no_grad():
            student = model.state_dict()
            for key, value in self.ema_model.state_dict().items():
                if value.dtype.is_floating_point:
                    value.mul_(0.999).add_(student[key], alpha=0.001)
            for value in student.values():
                if value.dtype.is_floating_point:
                    value.mul_(1 - 0.02 * self.lr)
        return loss.detach()
