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
from detectron2.utils import comm

__all__ = ["EqualLengthLoader", "SkipPadding"]

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
        # the longest rank's length (a rank without batches raises in __iter__, on every rank)
        self.target = int(collectives.all_reduce_scalar(self.length, "max"))

    def __len__(self) -> int:
        return self.target

    def __iter__(self) -> Iterator[list[dict]]:
        # Every rank takes its first batch, then one collective says whether any rank got
        # none: then all raise together (a rank alone raising would leave the others waiting
        # in their next sharded forward). A loader that ends early after its first batch is
        # padded with repeats of its last one.
        iterator = iter(self.loader)
        last = next(iterator, None)
        dry = collectives.count_each([last is None])[0]
        if dry and self.target > 0:
            raise ValueError(
                f"the evaluation loader yielded nothing on {dry} of {comm.get_world_size()} "
                f"rank(s) ({'this one' if last is None else 'not this one'}, which has "
                f"{self.length} batch(es)) while others evaluate: every rank needs at least one "
                f"batch (an evaluation set with at least as many images as ranks, and shards "
                f"that read)")
        if last is None:
            return
        yielded = 1
        yield last
        for last in iterator:  # a stream may yield fewer than len() (corrupt samples)
            yielded += 1
            yield last
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
