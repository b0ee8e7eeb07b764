"""Shared fixtures: tiny Swin models (CPU, a few blocks) and deterministic seeds."""
from __future__ import annotations

from mona_scale.modeling import build_swin

import pytest
import torch

TINY = dict(embed_dim=32, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def tiny_swin():
    """Factory: a tiny Swin (embed 32, two blocks per stage) with a tuning method."""
    def make(tuning="mona", **kwargs):
        options = dict(TINY, drop_path_rate=0.0)
        options.update(kwargs)
        return build_swin("swin_t", tuning, **options)
    return make
