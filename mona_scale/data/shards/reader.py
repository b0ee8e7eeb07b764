"""The streaming dataset: shards -> detectron2 dataset dicts -> the task's mapper.

Tars are read with webdataset's ``gopen``, ``tar_file_expander``, ``group_by_keys``,
``ResampledShards`` and ``shuffle``; what is ours: every corrupt or lost sample counted
against a budget (:mod:`.budget`), and an order that is a function of the sample position
(seed, rank, stream, restart, batch), so a stream resumes exactly with any number of
workers that divides its stream count. docs/streaming.md describes the design.
"""
from __future__ import annotations

import contextlib
import itertools
import random
from collections.abc import Iterator

from mona_scale.redact import redact

import webdataset as wds
from detectron2.utils import comm
from torch.utils.data import IterableDataset, get_worker_info
from webdataset.gopen import Pipe, set_options
from webdataset.tariterators import group_by_keys, tar_file_expander

from ..rng import derive_seed, seeded
from .budget import CorruptCounts, CorruptDataError
from .manifest import ShardInfo, ShardSet
from .memfs import serving
from .sample import InvalidSample, RawSample, decode_sample


def _members(stream, url: str) -> Iterator[dict]:
    """The tar's members (webdataset's ``tar_file_expander``); at the end, the stream is
    closed and a ``pipe:`` command's exit status checked, before the last sample counts."""
    with contextlib.closing(stream):
        set_options(stream, ignore_errors=True)  # checked here, not in the middle of a read
        yield from tar_file_expander([{"url": url, "stream": stream}], eof_value=None)
    if isinstance(stream, Pipe) and stream.status not in stream.ignore_status:
        raise OSError(f"{url} exited with status {stream.status}")


def read_shard(shard: ShardInfo, counts: CorruptCounts,
               num_classes: int | None = None) -> Iterator[RawSample]:
    """Valid samples of one shard (webdataset's ``gopen`` and ``group_by_keys``); invalid
    ones and those lost to a broken stream are counted (and logged) in ``counts``, never
    dropped silently. A sample cut short, or the last sample of a failing ``pipe:``
    command, is not yielded; a tar cut at a member boundary reads like a complete one, but
    the manifest's sample count tells them apart.

    Args:
        shard: the shard.
        counts: where corrupt samples are counted.
        num_classes: for validating category ids and labels.

    Returns:
        An iterator over the shard's valid samples.
    """
    read, key = 0, None
    try:
        for sample in group_by_keys(_members(wds.gopen(shard.url, "rb"), shard.url)):
            read, key = read + 1, sample["__key__"]
            counts.seen += 1
            try:
                yield decode_sample(shard.name, key, {k: v for k, v in sample.items()
                                                      if not k.startswith("__")}, num_classes)
            except InvalidSample as e:
                counts.add(shard.name, "invalid", key, str(e))
    except Exception as e:  # tarfile, OSError, gopen's ValueError: anything breaks a shard
        cause = (e.args[0].split(" @ ")[0] if e.args and isinstance(e.args[0], str)
                 else f"{type(e).__name__}: {e}")
        reason = (f"shard {redact(shard.url)} is truncated or corrupt after {read} samples "
                  f"(last complete key {key!r}): {redact(cause)}")
    else:
        if shard.samples is None or read >= shard.samples:
            return
        reason = f"shard {redact(shard.url)} ended after {read} of its {shard.samples} samples"
    lost = max(1, shard.samples - read) if shard.samples is not None else 1
    counts.seen += lost
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
        rank, world_size: this process's rank and the number of ranks (default
            detectron2's ``comm`` values).
        num_workers: DataLoader workers per rank (0 = read in the main process).
        streams: training streams per rank (default ``max(1, num_workers)``); a multiple
            of the workers. The batches depend on it, not on the workers.
        shuffle_buffer: samples held for shuffling, per stream (training).
        aspect_ratio_grouping: batch landscape and portrait images separately (training).
        filter_empty: skip images without non-crowd instances (training, detection).
        segment_samples: samples per restart (bounds what a resume reads to skip).
        corrupt_budget: allowed corrupt fraction of the samples seen (the loader in the main
            process checks it over all workers).
    """

    def __init__(self, shards: ShardSet, mapper=None, *, training: bool, batch_size: int = 1,
                 seed: int = 0, rank: int | None = None, world_size: int | None = None,
                 num_workers: int = 0, streams: int | None = None, shuffle_buffer: int = 256,
                 aspect_ratio_grouping: bool = True, filter_empty: bool = True,
                 segment_samples: int = 8192, corrupt_budget: float = 0.001):
        self.shards, self.mapper, self.training = shards, mapper, training
        self.batch_size, self.seed = batch_size, seed
        self.rank = comm.get_rank() if rank is None else rank
        self.world_size = comm.get_world_size() if world_size is None else world_size
        self.num_workers, self.workers = num_workers, max(1, num_workers)
        self.shuffle_buffer, self.aspect_ratio_grouping = shuffle_buffer, aspect_ratio_grouping
        self.filter_empty, self.corrupt_budget = filter_empty, corrupt_budget
        self.segment_batches = max(1, segment_samples // max(1, batch_size))
        self.num_classes = len(shards.classes) or None
        self.start = 0  # batches this rank drew before (set by the loader on resume)
        if batch_size < 1 or segment_samples < 1 or shuffle_buffer < 1:
            raise ValueError("batch_size, segment_samples and shuffle_buffer must be >= 1")
        if seed < 0:
            raise ValueError(f"the stream's seed must be >= 0, got {seed}")
        self.streams = self.check_streams(streams if training and streams else self.workers)

    def check_streams(self, streams: int) -> int:
        """``streams`` (per rank) if the workers can serve them, else ``ValueError``."""
        if streams < 1 or streams % self.workers:
            raise ValueError(f"{streams} stream(s) per rank cannot be split over "
                             f"{self.workers} DataLoader worker(s): use a multiple")
        if len(self.shards.shards) < self.world_size * streams:
            raise ValueError(
                f"{len(self.shards.shards)} shard(s) for {self.world_size} rank(s) x "
                f"{streams} {'stream' if streams != self.workers else 'worker'}(s) = "
                f"{self.world_size * streams} streams: every stream needs at least one "
                f"shard. Write smaller shards (mona-shards --shard-size) or use fewer workers.")
        return streams

    def stream_shards(self, rank: int, stream: int) -> list[ShardInfo]:
        """The shards read by ``stream`` of ``rank``."""
        return self.shards.shards[rank * self.streams + stream::self.world_size * self.streams]

    def __iter__(self):
        worker = getattr(get_worker_info(), "id", 0)  # 0 in the main process
        return (self._worker_batches(worker) if self.training
                else self._evaluation(self.stream_shards(self.rank, worker)))

    # ------------------------------------------------------------------ evaluation
    def _evaluation(self, shards: list[ShardInfo]):
        counts = CorruptCounts(self.corrupt_budget, "evaluation stream")
        for shard in shards:
            for sample in read_shard(shard, counts, self.num_classes):
                if (mapped := self._map(sample, None, counts)) is not None:
                    yield [mapped], counts.delta()
        yield None, counts.delta()

    # ------------------------------------------------------------------ training
    def _worker_batches(self, worker: int):
        """The DataLoader takes batches from its workers round-robin, so worker ``w``
        serves this rank's batches ``start + w + k * W``, each from stream ``i % V``."""
        first, step = self.start + worker, self.workers
        streams = {s: self._training(s, (self.start - s + self.streams - 1) // self.streams)
                   for s in {(first + k * step) % self.streams for k in range(self.streams)}}
        for index in itertools.count(first, step):
            yield next(streams[index % self.streams])

    def _training(self, stream: int, drawn: int):
        shards = self.stream_shards(self.rank, stream)
        counts = CorruptCounts(self.corrupt_budget, f"training stream (rank {self.rank}, stream "
                                                    f"{stream})")
        first, skip = divmod(drawn, self.segment_batches)
        for restart in itertools.count(first):
            ids = (self.seed, self.rank, stream, restart)
            batches = self._raw_batches(ids, shards, counts)
            for index, raw in enumerate(itertools.islice(batches, self.segment_batches)):
                if index < skip:
                    continue  # resume: read, but neither decode nor map
                batch = [m for j, s in enumerate(raw)
                         if (m := self._map(s, derive_seed(*ids, index, j), counts)) is not None]
                yield batch, counts.delta()
            batches.close()
            skip = 0

    def _samples(self, seed: int, shards: list[ShardInfo],
                 counts: CorruptCounts) -> Iterator[RawSample]:
        """Samples of shards drawn with replacement (webdataset's ``ResampledShards``)."""
        by_url = {s.url: s for s in shards}
        picks = wds.ResampledShards(list(by_url), seed=seed, worker_seed=lambda: 0,
                                    deterministic=True)
        barren = 0
        for pick in picks:
            usable = False
            for sample in read_shard(by_url[pick["url"]], counts, self.num_classes):
                if not self.filter_empty or _has_instances(sample):
                    usable = True
                    yield sample
            barren = 0 if usable else barren + 1
            if barren > 2 * len(shards) + 8:
                raise CorruptDataError(
                    f"rank {self.rank}: {barren} shard reads in a row gave no usable sample "
                    f"(valid{', with instances' if self.filter_empty else ''}) from shards "
                    f"{[s.name for s in shards]}; see the corrupt-data log lines")

    def _raw_batches(self, ids: tuple[int, ...], shards: list[ShardInfo],
                     counts: CorruptCounts) -> Iterator[list[RawSample]]:
        samples, buckets = self._samples(derive_seed(*ids, 0), shards, counts), {}
        shuffle = wds.shuffle(self.shuffle_buffer, self.shuffle_buffer,
                              rng=random.Random(derive_seed(*ids, 1)))
        for sample in shuffle(samples):
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
        seeding = (seeded(seed, restore=self.num_workers == 0) if seed is not None
                   else contextlib.nullcontext())
        with serving(served), seeding:
            try:
                return self.mapper(record)
            except (OSError, ValueError, SyntaxError) as e:  # undecodable / size mismatch
                counts.add(sample.shard, "undecodable", sample.key,
                           f"source {sample.record.get('_source', '?')}: {type(e).__name__}: {e}")
                return None
