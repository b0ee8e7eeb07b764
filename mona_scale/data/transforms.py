"""Augmentations detectron2 lacks: a random choice between augmentation pipelines."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from detectron2.data import transforms as T

__all__ = ["RandomChoice"]


class RandomChoice(T.Augmentation):
    """Apply one of several augmentation pipelines, chosen at random per image.

    Used for the DETR-style multi-scale training of the paper's COCO recipe: either a
    multi-scale resize, or resize -> random crop -> multi-scale resize.

    Args:
        choices: the pipelines (each a list of augmentations).
        probs: their probabilities (default uniform).
    """

    def __init__(self, choices: Sequence[Sequence[T.Augmentation]],
                 probs: Sequence[float] | None = None):
        super().__init__()
        if not choices:
            raise ValueError("RandomChoice needs at least one pipeline")
        self.pipelines = [T.AugmentationList(list(c)) for c in choices]
        self.probs = None if probs is None else np.asarray(probs, dtype=float) / sum(probs)

    def __call__(self, aug_input) -> T.Transform:
        index = np.random.choice(len(self.pipelines), p=self.probs)
        return self.pipelines[index](aug_input)
