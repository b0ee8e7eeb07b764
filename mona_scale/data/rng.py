"""Per-sample random state: seeds derived from integers, and a context that seeds python,
numpy and torch for one sample (restoring the caller's states when asked)."""
from __future__ import annotations

import contextlib
import random

import numpy as np
import torch

__all__ = ["derive_seed", "seeded"]


def derive_seed(*parts: int) -> int:
    """A 63-bit seed from non-negative integers (numpy's SeedSequence mixing).

    Args:
        parts: e.g. (seed, rank, worker, position).

    Returns:
        The seed.
    """
    state = np.random.SeedSequence([int(p) for p in parts]).generate_state(2, np.uint64)
    return int(state[0] >> np.uint64(1))


@contextlib.contextmanager
def seeded(seed: int, restore: bool):
    """Seed the python, numpy and torch (CPU) RNGs with ``seed``; put the previous states
    back afterwards if ``restore`` (e.g. in the training process, not in a data worker)."""
    saved = (random.getstate(), np.random.get_state(), torch.get_rng_state()) if restore else None
    random.seed(seed)
    np.random.seed(seed & 0xFFFFFFFF)
    torch.default_generator.manual_seed(seed)
    try:
        yield
    finally:
        if saved is not None:
            random.setstate(saved[0])
            np.random.set_state(saved[1])
            torch.set_rng_state(saved[2])
