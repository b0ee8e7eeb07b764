"""Evaluation when every forward pass is collective (FSDP, ZeRO-3).

With sharded parameters each forward all-gathers weights, so every rank must run the same
number of forward passes. detectron2's inference sampler gives ranks unequal shares; here
the shorter ranks repeat their last batch, marked as padding, and the evaluator never sees
the padded predictions.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator

from mona_scale import collectives

from detectron2.evaluation import DatasetEvaluator

__all__ = ["EqualLengthLoader", "SkipPadding", "PADDING_KEY"]

PADDING_KEY = "_mona_padding"


class EqualLengthLoader:
    """Yields ``loader``'s batches, then repeats of its last batch (each input marked with
    ``PADDING_KEY``) until every rank has yielded as many batches as the longest.

    Args:
        loader: this rank's evaluation loader (with ``len``).
    """

    def __init__(self, loader: Iterable):
        self.loader = loader
        self.length = len(loader)
        self.target = collectives.max_over_ranks(self.length)
        if self.length == 0 and self.target > 0:
            raise ValueError("this rank has no evaluation images while others have some: use "
                             "an evaluation set with at least as many images as ranks")

    def __len__(self) -> int:
        return self.target

    def __iter__(self) -> Iterator[list[dict]]:
        last, yielded = None, 0
        for last in self.loader:  # a stream may yield fewer than len() (corrupt samples)
            yielded += 1
            yield last
        if last is None and self.target > 0:
            raise ValueError("this rank's evaluation loader yielded nothing while other ranks "
                             "evaluate: every rank needs at least one batch")
        for _ in range(self.target - yielded):
            yield [dict(d, **{PADDING_KEY: True}) for d in last]


class SkipPadding(DatasetEvaluator):
    """Forwards to ``evaluator`` everything but the padded inputs' predictions."""

    def __init__(self, evaluator: DatasetEvaluator):
        self.evaluator = evaluator

    def reset(self) -> None:
        self.evaluator.reset()

    def process(self, inputs, outputs) -> None:
        kept = [(i, o) for i, o in zip(inputs, outputs, strict=True) if not i.get(PADDING_KEY)]
        if kept:
            self.evaluator.process([i for i, _ in kept], [o for _, o in kept])

    def evaluate(self):
        return self.evaluator.evaluate()
