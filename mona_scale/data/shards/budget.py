"""Corrupt-data accounting: counts per shard and kind, and the budget that stops a run.

Kinds: ``truncated`` (samples lost to a truncated or unreadable tar, from the manifest's
count), ``invalid`` (missing members, bad JSON, annotations failing validation),
``undecodable`` (the mapper could not read the image or mask). Every corrupt sample is
logged with its shard and key where they are known; nothing is dropped silently.
"""
from __future__ import annotations

import logging
from collections import Counter, defaultdict

logger = logging.getLogger("mona_scale.data.shards")

KINDS = ("truncated", "invalid", "undecodable")
MIN_SAMPLES = 1000  # the budget is a fraction of max(samples seen, this)


class CorruptDataError(RuntimeError):
    """More corrupt samples than the budget allows."""


def allowed_corrupt(fraction: float, seen: int) -> float:
    """How many corrupt samples ``fraction`` allows after ``seen`` samples.

    The denominator is at least :data:`MIN_SAMPLES`, so one bad sample early in a stream
    (or in a small set) does not stop a run whose budget is a small fraction.

    Args:
        fraction: the allowed fraction of corrupt samples.
        seen: samples seen.

    Returns:
        The allowed number of corrupt samples.
    """
    return fraction * max(seen, MIN_SAMPLES)


class CorruptCounts:
    """Samples seen and corrupt samples per shard and kind (mergeable across workers).

    Args:
        budget: the allowed fraction of corrupt samples (e.g. 0.001 = 0.1 %).
        what: what is being read, for messages (e.g. ``"training stream"``).
    """

    def __init__(self, budget: float = 0.001, what: str = "stream"):
        self.budget, self.what = budget, what
        self.seen, self.by_shard = 0, defaultdict(Counter)

    def add(self, shard: str, kind: str, key: str | None, reason: str, count: int = 1,
            log: bool = True) -> None:
        """Count ``count`` corrupt samples of ``kind`` in ``shard`` and log them."""
        if kind not in KINDS:
            raise ValueError(f"unknown corrupt kind {kind!r}; valid: {KINDS}")
        self.by_shard[shard][kind] += count
        if log:
            where = f"key {key}" if key is not None else f"{count} sample(s)"
            logger.warning(f"corrupt data skipped ({kind}) in {self.what}: shard {shard} "
                           f"{where}: {reason}")

    @property
    def corrupt(self) -> int:
        """Corrupt samples of every shard and kind."""
        return sum(sum(c.values()) for c in self.by_shard.values())

    def delta(self) -> dict:
        """The counts as a plain dict, then reset (workers send these to the main process)."""
        out = {"seen": self.seen, "corrupt": {s: dict(c) for s, c in self.by_shard.items()}}
        self.seen, self.by_shard = 0, defaultdict(Counter)
        return out

    def merge(self, delta: dict) -> None:
        """Add a worker's :meth:`delta`."""
        self.seen += delta["seen"]
        for shard, kinds in delta["corrupt"].items():
            self.by_shard[shard].update(kinds)

    def check(self, total: int | None = None) -> None:
        """Raise :class:`CorruptDataError` when the corrupt count exceeds the budget, a
        fraction of the samples seen (or of ``total``, when the total is known)."""
        corrupt = self.corrupt
        if corrupt <= allowed_corrupt(self.budget, total or self.seen):
            return
        shard, kinds = max(self.by_shard.items(), key=lambda kv: (sum(kv[1].values()), kv[0]))
        raise CorruptDataError(
            f"{self.what}: {corrupt} corrupt samples of {self.seen} seen exceeds the budget "
            f"of {self.budget:.3%} (of max(seen, {MIN_SAMPLES})); worst shard {shard}: "
            f"{sum(kinds.values())} corrupt ({dict(kinds)}); "
            f"{len(self.by_shard)} shard(s) affected. The log names every sample skipped.")

    def stats(self, prefix: str = "data/") -> dict[str, float]:
        """Scalars for metrics.json: ``<prefix>samples_seen``, ``<prefix>corrupt_samples``
        and ``<prefix>corrupt_<kind>`` for each kind."""
        totals = sum(self.by_shard.values(), Counter())
        return {f"{prefix}samples_seen": float(self.seen),
                f"{prefix}corrupt_samples": float(sum(totals.values())),
                **{f"{prefix}corrupt_{kind}": float(totals[kind]) for kind in KINDS}}
