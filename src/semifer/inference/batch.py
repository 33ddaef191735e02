"""Predictions over a whole FaceSet: a model's softmax probabilities, and the feature its head acts on, for the
test view of every face. Evaluation, probes of a representation and face selection read them from here."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..data.faceset import FaceSet
from ..data.loaders import ViewDataset, eval_loader
from ..data.views import test_view


@torch.no_grad()
def predict(
    model: nn.Module,
    faces: FaceSet,
    img_size: int,
    device: torch.device,
    batch_size: int = 256,
    workers: int = 0,
    bgr_quirk: bool = False,
    progress: bool = True,
    features: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Softmax probabilities (N, C) of `model` (in eval mode) on the test view of every image; with
    `features`, also the (N, D) feature its head acts on (for probing what training did to the embedding)."""
    model.eval()
    loader = eval_loader(ViewDataset(faces, [test_view(img_size, bgr_quirk)]), batch_size, workers)
    probs, feats = [], []
    for batch in tqdm(loader, desc=f"eval {faces.name}", leave=False, disable=not progress):
        images = batch["views"][0].to(device, non_blocking=True)
        logits, feature = model(images, features=True) if features else (model(images), None)
        probs.append(torch.softmax(logits.float(), dim=1).cpu())
        if feature is not None:
            feats.append(feature.float().cpu())
    out = torch.cat(probs).numpy() if probs else np.zeros((0, 1), dtype=np.float32)
    return (out, torch.cat(feats).numpy() if feats else np.zeros((0, 0), dtype=np.float32)) if features else out


def features(
    model: nn.Module, faces: FaceSet, img_size: int, batch_size: int = 512, progress: bool = True
) -> np.ndarray:
    """(N, D) pooled backbone features of the test view of every face, model in eval mode, fp32."""
    device = next(model.parameters()).device
    _, feats = predict(model, faces, img_size, device, batch_size=batch_size, progress=progress, features=True)
    return feats
