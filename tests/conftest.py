"""Shared test settings: small thread counts so the suite behaves the same on 2 cores."""

import os

import pytest
import torch

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture
def real_data() -> str:
    """Path of the real data folder (SEMIFER_DATA); tests that need it are skipped without it."""
    root = os.environ.get("SEMIFER_DATA")
    if not root or not os.path.isdir(root):
        pytest.skip("SEMIFER_DATA is not set to the real data folder")
    return root
