"""The streaming dataset: shards -> detectron2 dataset dicts -> the task's mapper.

Shards are split by rank and DataLoader worker: stream ``g = rank * W + worker`` (``W`` =
workers per rank, at least 1) reads ``shards[g::world_size * W]``; fewer shards than
streams is an error.

**Evaluation** (``training=False``): each stream reads its shards once, in order, and
yields ``[mapped]`` lists (batch 1, like detectron2's test loader): together the streams
of all ranks cover every sample exactly once.

**Training**: each stream is infinite and organised in *restarts* of ``segment_batches``
batches (``segment_samples // batch_size``). Restart ``r`` of stream ``(rank, worker)``
draws shards with replacement from the stream's shards, passes samples through a shuffle
buffer and groups them into batches of ``batch_size`` (by aspect ratio, ``width > height``
from the annotations, when ``aspect_ratio_grouping``), all from a generator seeded by
``(seed, rank, worker, r)``; each sample's mapper call runs with python/numpy/torch RNGs
seeded by its position, so the augmentations too are a function of ``(seed, rank, worker,
position)``. A stream resumed after ``n`` batches starts restart ``n // segment_batches``
and skips ``n % segment_batches`` batches by reading their samples without decoding or
mapping them. The shuffle buffer restarts with each restart (what is left in it is not
used), so a restart costs at most ``shuffle_buffer`` extra reads and a resume at most
``segment_samples``.

Every item a stream yields is ``(batch, counts)``: the batch (``None`` for a final
counts-only item) and the corrupt-data counts since the previous item
(:meth:`~.budget.CorruptCounts.delta`), which the loader in the main process aggregates.
"""
from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator

from mona_scale.redact import redact

from torch.utils.data import IterableDataset, get_worker_info

from ..rng import derive_seed, seeded
from .budget import CorruptCounts, CorruptDataError
from .manifest import ShardInfo, ShardSet
from .memfs import serving
from .sample import InvalidSample, RawSample, decode_sample
from .tario import TruncatedShard, read_samples

__all__ = ["ShardStream", "derive_seed", "read_shard"]


def read_shard(shard: ShardInfo, counts: CorruptCounts,
               num_classes: int | None = None) -> Iterator[RawSample]:
    """Valid samples of one shard; invalid ones and those lost to truncation are counted
    (and logged) in ``counts``, never dropped silently. A tar cut at a member boundary
    reads like a complete one: the manifest's sample count tells them apart."""
    read = 0
    try:
        for key, files in read_samples(shard.url):
            read += 1
            counts.add_seen()
            try:
                yield decode_sample(shard.name, key, files, num_classes)
            except InvalidSample as e:
                counts.add(shard.name, "invalid", key, str(e))
    except TruncatedShard as e:
        _lost(shard, read, counts, str(e))
    else:
        if shard.samples is not None and read < shard.samples:
            _lost(shard, read, counts, f"shard {redact(shard.url)} ended after {read} of its "
                                       f"{shard.samples} samples")


def _lost(shard: ShardInfo, read: int, counts: CorruptCounts, reason: str) -> None:
    lost = max(1, shard.samples - read) if shard.samples is not None else 1
    counts.add_seen(lost)
    counts.add(shard.name, "truncated", None, f"{reason} ({lost} sample(s) lost)", count=lost)


def _has_instances(sample: RawSample) -> bool:
    annotations = sample.record.get("annotations")
    return annotations is None or any(a.get("iscrowd", 0) == 0 for a in annotations)


class ShardStream(IterableDataset):
    """Detectron2 dataset dicts streamed from shards, mapped by ``mapper``.

    Args:
        shards: the :class:`~.manifest.ShardSet` to read.
        mapper: the task's mapper (e.g. detectron2's ``DatasetMapper``); None yields the
            dataset dicts themselves (their ``shard://`` files are not readable afterwards).
        training: infinite resampled stream of batches, else one exactly-once pass.
        batch_size: images per batch of this rank (training).
        seed: base seed (non-negative).
        rank, world_size: this process's rank and the number of ranks.
        num_workers: DataLoader workers per rank (0 = read in the main process).
        shuffle_buffer: samples held for shuffling, per stream (training).
        aspect_ratio_grouping: batch landscape and portrait images separately (training).
        filter_empty: skip images without non-crowd instances (training, detection).
        segment_samples: samples per restart (bounds what a resume reads to skip).
        budget: allowed corrupt fraction (for messages: the loader in the main process
            checks it over all workers).
    """

    def __init__(self, shards: ShardSet, mapper=None, *, training: bool, batch_size: int = 1,
                 seed: int = 0, rank: int = 0, world_size: int = 1, num_workers: int = 0,
                 shuffle_buffer: int = 256, aspect_ratio_grouping: bool = True,
                 filter_empty: bool = True, segment_samples: int = 8192,
                 budget: float = 0.001):
        self.shards, self.mapper, self.training = shards, mapper, training
        self.batch_size, self.seed = batch_size, seed
        self.rank, self.world_size, self.workers = rank, world_size, max(1, num_workers)
        self.in_main_process = num_workers == 0
        self.shuffle_buffer, self.aspect_ratio_grouping = shuffle_buffer, aspect_ratio_grouping
        self.filter_empty, self.budget = filter_empty, budget
        self.segment_batches = max(1, segment_samples // max(1, batch_size))
        self.num_classes = len(shards.classes) or None
        self.start = 0  # batches this rank drew before (set by the loader on resume)
        if batch_size < 1 or segment_samples < 1 or shuffle_buffer < 1:
            raise ValueError("batch_size, segment_samples and shuffle_buffer must be >= 1")
        if seed < 0:
            raise ValueError(f"the stream's seed must be >= 0, got {seed}")
        streams = world_size * self.workers
        if len(shards.shards) < streams:
            raise ValueError(
                f"{len(shards.shards)} shard(s) for {world_size} rank(s) x {self.workers} "
                f"worker(s) = {streams} streams: every stream needs at least one shard. "
                f"Write smaller shards (mona-shards --shard-size) or use fewer workers.")

    def stream_shards(self, rank: int, worker: int) -> list[ShardInfo]:
        """The shards read by ``worker`` of ``rank``."""
        return self.shards.shards[rank * self.workers + worker::self.world_size * self.workers]

    def _logical_worker(self) -> int:
        """The DataLoader interleaves workers round-robin from worker 0; after ``start``
        batches the next one belongs to stream ``start % W``, so worker ids rotate."""
        info = get_worker_info()
        return ((info.id if info is not None else 0) + self.start) % self.workers

    def __iter__(self):
        worker = self._logical_worker()
        shards = self.stream_shards(self.rank, worker)
        if not self.training:
            return self._evaluation(shards)
        drawn = (self.start - worker + self.workers - 1) // self.workers
        return self._training(worker, shards, drawn)

    # ------------------------------------------------------------------ evaluation
    def _evaluation(self, shards: list[ShardInfo]):
        counts = CorruptCounts(self.budget, "evaluation stream")
        for shard in shards:
            for sample in read_shard(shard, counts, self.num_classes):
                mapped = self._map(sample, None, counts)
                if mapped is not None:
                    yield [mapped], counts.delta()
        yield None, counts.delta()

    # ------------------------------------------------------------------ training
    def _training(self, worker: int, shards: list[ShardInfo], drawn: int):
        counts = CorruptCounts(self.budget, f"training stream (rank {self.rank}, worker "
                                            f"{worker})")
        restart, skip = divmod(drawn, self.segment_batches)
        while True:
            rng = random.Random(derive_seed(self.seed, self.rank, worker, restart))
            batches = self._raw_batches(rng, shards, counts)
            for index in range(self.segment_batches):
                raw = next(batches)
                if index < skip:
                    continue  # resume: read, but neither decode nor map
                ids = (self.seed, self.rank, worker, restart, index)
                batch = [m for j, s in enumerate(raw)
                         if (m := self._map(s, derive_seed(*ids, j), counts)) is not None]
                yield batch, counts.delta()
            batches.close()
            restart, skip = restart + 1, 0

    def _samples(self, rng: random.Random, shards: list[ShardInfo],
                 counts: CorruptCounts) -> Iterator[RawSample]:
        """Samples of shards drawn with replacement, forever."""
        barren = 0
        while True:
            shard = rng.choice(shards)
            usable = False
            for sample in read_shard(shard, counts, self.num_classes):
                if not self.filter_empty or _has_instances(sample):
                    usable = True
                    yield sample
            barren = 0 if usable else barren + 1
            if barren > 2 * len(shards) + 8:
                raise CorruptDataError(
                    f"rank {self.rank}: {barren} shard reads in a row gave no usable sample "
                    f"(valid{', with instances' if self.filter_empty else ''}) from shards "
                    f"{[s.name for s in shards]}; see the corrupt-data log lines")

    def _raw_batches(self, rng: random.Random, shards: list[ShardInfo],
                     counts: CorruptCounts) -> Iterator[list[RawSample]]:
        buffer, buckets = [], {}
        for sample in self._samples(rng, shards, counts):
            if len(buffer) < self.shuffle_buffer:  # filling
                buffer.append(sample)
                continue
            k = rng.randrange(len(buffer))
            sample, buffer[k] = buffer[k], sample
            size = sample.size() if self.aspect_ratio_grouping else None
            group = buckets.setdefault(bool(size and size[1] > size[0]), [])
            group.append(sample)
            if len(group) == self.batch_size:
                yield group[:]
                group.clear()

    # ------------------------------------------------------------------ mapping
    def _map(self, sample: RawSample, seed: int | None, counts: CorruptCounts):
        record, served = sample.dataset_dict()
        if self.mapper is None:
            return record
        seeding = (seeded(seed, restore=self.in_main_process) if seed is not None
                   else contextlib.nullcontext())
        with serving(served), seeding:
            try:
                return self.mapper(record)
            except (OSError, ValueError, SyntaxError) as e:  # undecodable / size mismatch
                counts.add(sample.shard, "undecodable", sample.key,
                           f"source {sample.source}: {type(e).__name__}: {e}")
                return None
