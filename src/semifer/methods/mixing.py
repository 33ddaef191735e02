"""Pieces shared by the MixUp-based methods (MixMatch, ReMixMatch): sharpening, distribution alignment,
MixUp with lambda' = max(lambda, 1 - lambda), and the interleaved forward their official code uses so that
batch-norm statistics are not computed on a batch of labeled images alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from .forward import forward_views


def sharpen(probs: torch.Tensor, T: float) -> torch.Tensor:
    """p^(1/T) renormalised per row: T < 1 lowers the entropy of a guessed label (MixMatch eq. 7)."""
    if T <= 0:
        raise ValueError(f"sharpening temperature must be > 0, got {T}")
    powered = probs.float().pow(1.0 / T)
    return powered / powered.sum(dim=1, keepdim=True)


def align_distribution(
    probs: torch.Tensor, p_target: torch.Tensor, p_model: torch.Tensor, eps: float = 1e-6
) -> torch.Tensor:
    """ReMixMatch's distribution alignment: p * p(y) / p~(y), renormalised per row.

    Classes the model predicts more often than the target marginal `p_target` lose mass, rarer ones gain;
    `eps` keeps an empty class finite (the official code's 1e-6 on both sides).
    """
    weighted = probs.float() * (p_target.float() + eps) / (p_model.float() + eps)
    return weighted / weighted.sum(dim=1, keepdim=True)


def linear_rampup(progress: float, rampup: float) -> float:
    """0 -> 1 linearly over the first `rampup` fraction of training, then 1 (no ramp when `rampup` = 0)."""
    return min(1.0, progress / rampup) if rampup > 0 else 1.0


def mixup(x: torch.Tensor, y: torch.Tensor, alpha: float) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Mix every row with a row of a shuffled copy of the batch, inputs and targets by the same weight.

    lambda ~ Beta(alpha, alpha), then lambda' = max(lambda, 1 - lambda) so every mixed row stays closer to
    its own original (MixMatch eq. 9): the first rows remain "labeled" and the rest "unlabeled" for the
    losses. One lambda per batch, as in the official code. alpha = 0 turns mixing off (lambda' = 1).
    """
    if alpha < 0:
        raise ValueError(f"mixup alpha must be >= 0, got {alpha}")
    lam = float(torch.distributions.Beta(alpha, alpha).sample()) if alpha > 0 else 1.0
    lam = max(lam, 1.0 - lam)
    perm = torch.randperm(len(x), device=x.device)
    return lam * x + (1 - lam) * x[perm], lam * y + (1 - lam) * y[perm], lam


def _split_sizes(size: int, parts: int) -> list[int]:
    """`size` rows in `parts` near-equal pieces, the larger pieces last (the official `interleave_offsets`)."""
    sizes = [size // parts] * parts
    for i in range(size - sum(sizes)):
        sizes[-i - 1] += 1
    return sizes


def interleave_index(sizes: Sequence[int], device: torch.device | None = None) -> list[torch.Tensor]:
    """Row indices of the forward batches that interleave groups of rows (labeled, then unlabeled groups).

    As in MixMatch's official `interleave`: every group is cut into len(sizes) pieces and the i-th piece of
    group 0 swaps places with the i-th piece of group i, so each forward batch holds a share of labeled
    rows. Equal group sizes reproduce the official code exactly; unequal ones (an unlabeled ratio != 1)
    use the same rule with per-group piece sizes.
    """
    n = len(sizes)
    pieces: list[list[torch.Tensor]] = []
    start = 0
    for size in sizes:
        bounds = [start]
        for piece in _split_sizes(size, n):
            bounds.append(bounds[-1] + piece)
        pieces.append([torch.arange(a, b, device=device) for a, b in zip(bounds[:-1], bounds[1:], strict=True)])
        start += size
    for i in range(1, n):
        pieces[0][i], pieces[i][i] = pieces[i][i], pieces[0][i]
    return [torch.cat(p) for p in pieces]


@contextmanager
def running_stats_frozen(model: nn.Module, after_passes: int = 0) -> Iterator[None]:
    """Batch-norm layers keep normalising with batch statistics but update their running statistics only
    during their first `after_passes` calls inside the block (0: never).

    Done with momentum 0 (the running average then keeps its value), restored on exit. This is USB's
    `freeze_bn` and the official TF code's choice of which batch's update ops run: the label guess and all
    interleaved batches but the first leave the running statistics alone.
    """
    layers = [m for m in model.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]
    saved = [m.momentum for m in layers]
    calls = [0] * len(layers)

    def hook(index: int) -> Callable[[nn.Module, object, object], None]:
        def after_forward(module: nn.Module, inputs: object, output: object) -> None:
            calls[index] += 1
            if calls[index] >= after_passes:
                module.momentum = 0.0

        return after_forward

    handles = [m.register_forward_hook(hook(i)) for i, m in enumerate(layers)]
    if after_passes == 0:
        for m in layers:
            m.momentum = 0.0
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
        for m, momentum in zip(layers, saved, strict=True):
            m.momentum = momentum


def forward_mixed(
    model: nn.Module, mixed: torch.Tensor, sizes: Sequence[int], interleave: bool, extra: Sequence[torch.Tensor] = ()
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Logits of the mixed batch (rows in their original order) and of `extra` batches, in one model call.

    `interleave=True`: one pass per interleaved batch (`interleave_index` over the groups `sizes`), then
    the `extra` batches, each on its own batch statistics; only the first interleaved batch updates the
    running statistics. `interleave=False`: a single pass over the concatenation of everything. Either way
    it is one call of the engine's `MultiView`, which DistributedDataParallel requires.
    """
    extra = list(extra)
    if not interleave:
        outs = forward_views(model, [mixed, *extra], separate=False)
        return outs[0][0], [z for z, _ in outs[1:]]
    index = interleave_index(sizes, mixed.device)
    with running_stats_frozen(model, after_passes=1):
        outs = forward_views(model, [mixed[i] for i in index] + extra, separate=True)
    n = len(index)
    logits = torch.cat([z for z, _ in outs[:n]])[torch.argsort(torch.cat(index))]
    return logits, [z for z, _ in outs[n:]]
