"""What configs instantiate: shard datasets (registered for evaluators) and the streaming
train / test loaders, which run in the main process around a torch ``DataLoader``,
aggregate the workers' corrupt-data counts (``data/...`` metrics, the budget) and keep the
train loader's position as loader state (``state_dict`` / ``load_state_dict``, the protocol
of torchdata's ``StatefulDataLoader``). See docs/streaming.md.
"""
from __future__ import annotations

import contextlib
import logging

from mona_scale import collectives

import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.utils import comm
from detectron2.utils.events import get_event_storage
from torch.utils.data import DataLoader

from ..batching import check_batch_fits_world
from .budget import CorruptCounts
from .manifest import ShardSet
from .memfs import publish
from .reader import ShardStream, read_shard

logger = logging.getLogger("mona_scale.data.shards")


def shard_dicts(shards: ShardSet, budget: float = 0.001) -> list[dict]:
    """Every sample's dataset dict, in shard order, for evaluators that need the dicts.

    Images are not decoded and their ``shard://`` names are not readable afterwards;
    semantic masks (``sem_seg_file_name``) are, in this process: detectron2's
    ``SemSegEvaluator`` reads the ground truth by that name.
    """
    counts = CorruptCounts(budget, f"dataset dicts of {shards.name or 'shards'}")
    dicts = []
    for shard in shards.shards:
        for sample in read_shard(shard, counts, len(shards.classes) or None):
            record, served = sample.dataset_dict()
            publish({k: v for k, v in served.items() if k == record.get("sem_seg_file_name")})
            dicts.append(record)
    counts.check(total=shards.num_samples)
    return dicts


_CLASS_KEYS = {"instances": "thing_classes", "sem_seg": "stuff_classes",
               "classification": "classes"}


def shard_dataset(name: str, manifests: str | list[str] | None = None,
                  url_template: str | None = None, urls: str | list[str] | None = None,
                  task: str = "unknown", classes: list[str] | None = None) -> ShardSet:
    """The shards of one or more manifests, registered as dataset ``name`` for evaluators.

    ``DatasetCatalog.get(name)`` returns :func:`shard_dicts`; ``MetadataCatalog.get(name)``
    holds the class names (``thing_classes`` / ``stuff_classes`` / ``classes`` by task),
    COCO's ``thing_dataset_id_to_contiguous_id``, ``evaluator_type`` and the other
    metadata the manifest recorded. A registration of ``name`` is replaced.

    Args:
        name: dataset name (what ``dataloader.evaluator.dataset_name`` refers to).
        manifests: manifest path(s) / directories / ``file://`` or ``pipe:`` URLs.
        url_template: shard URL with ``{name}``; default: next to the manifest.
        urls: instead of manifests: shard URLs or brace patterns
            (``pipe:curl -s https://host/coco-{000000..000295}.tar``), with ``task`` and
            ``classes``; without sample counts such a set can train, not evaluate.

    Returns:
        The :class:`~.manifest.ShardSet`, with ``name`` set, for the loaders.
    """
    if (manifests is None) == (urls is None):
        raise ValueError(f"shard_dataset({name!r}) needs manifests or urls (one of them)")
    shards = (ShardSet.from_manifests(manifests, url_template) if urls is None
              else ShardSet.from_urls(urls, task, classes))
    shards.name = name
    DatasetCatalog.pop(name, None)
    MetadataCatalog.pop(name, None)
    DatasetCatalog.register(name, lambda: shard_dicts(shards))
    meta = {k: {int(i): c for i, c in v.items()} if k == "thing_dataset_id_to_contiguous_id"
            else v for k, v in shards.metadata.items()}  # JSON keys back to COCO's ints
    meta[_CLASS_KEYS.get(shards.task, "classes")] = list(shards.classes)
    MetadataCatalog.get(name).set(**meta)
    return shards


class StreamingLoader:
    """Iterates a :class:`~.reader.ShardStream` through a torch DataLoader (in the main
    process) with its workers, aggregating their corrupt-data counts (``data/`` metrics for
    training, ``data_test/`` for tests) and checking the stream's budget over all of them.

    Args:
        stream: the dataset.
    """

    def __init__(self, stream: ShardStream):
        self.stream, self.prefix = stream, "data/" if stream.training else "data_test/"
        what = "training stream" if stream.training else "evaluation stream"
        self.counts = CorruptCounts(stream.corrupt_budget, f"{what} on rank {stream.rank}")
        self.position, self._started = 0, False  # stream batches consumed (resumed from,
        # yielded or skipped), and whether iteration began (no load_state_dict after)

    def state_dict(self) -> dict:
        """This rank's position in its stream (torchdata's ``StatefulDataLoader`` protocol).

        Returns:
            ``{"batches", "seed", "streams", "world_size"}``: batches consumed (yielded,
            or skipped because every sample was undecodable), and what they depend on.
        """
        return {"batches": self.position, "seed": self.stream.seed,
                "streams": self.stream.streams, "world_size": self.stream.world_size}

    def load_state_dict(self, state: dict) -> None:
        """Continue where the loader that saved ``state`` (:meth:`state_dict`) stopped.

        Call before the first ``iter()``; training streams only. The saved seed and stream
        count are adopted (the order depends on them, not on the workers); another world
        size, or a stream count this loader's workers cannot serve, continues at the same
        batch count in a re-sharded order, with a warning.

        Args:
            state: a :meth:`state_dict` of this rank (or of rank 0 of another world size).
        """
        if not self.stream.training:
            raise ValueError("load_state_dict is for training streams")
        if self._started:
            raise RuntimeError("load_state_dict must be called before iterating the loader")
        if not isinstance(state.get("batches"), int) or state["batches"] < 0:
            raise ValueError(f"loader state needs a non-negative int 'batches': {state}")
        self.stream.seed = int(state.get("seed", self.stream.seed))
        saved_world = state.get("world_size", self.stream.world_size)
        if saved_world != self.stream.world_size:
            logger.warning(f"loader state saved by {saved_world} rank(s), loaded by "
                           f"{self.stream.world_size}: the stream continues at batch "
                           f"{state['batches']} of a re-sharded order")
        else:
            try:
                self.stream.streams = self.stream.check_streams(
                    state.get("streams", self.stream.streams))
            except ValueError as e:
                logger.warning(f"the stream continues at batch {state['batches']} of a "
                               f"re-sharded order ({self.stream.streams} streams): {e}")
        self.position = state["batches"]


    def stats(self) -> dict[str, float]:
        """Cumulative samples seen and corrupt counts of this rank (metric name -> value)."""
        return self.counts.stats(self.prefix)

    def __len__(self) -> int:
        if self.stream.training:
            raise TypeError("a training stream is infinite")
        counts = [s.samples for v in range(self.stream.streams)
                  for s in self.stream.stream_shards(self.stream.rank, v)]
        if None in counts:
            raise TypeError("the number of samples is unknown without a manifest")
        return sum(counts)

    def _report(self, delta: dict) -> None:
        self.counts.merge(delta)
        with contextlib.suppress(AssertionError):  # no EventStorage active (e.g. --eval-only)
            get_event_storage().put_scalars(**self.stats(), smoothing_hint=False)
        self.counts.check()

    def __iter__(self):
        self._started = True
        self.stream.start = self.position if self.stream.training else 0
        loader = DataLoader(self.stream, batch_size=None, num_workers=self.stream.num_workers,
                            collate_fn=tuple, persistent_workers=False,  # as yielded
                            pin_memory=torch.cuda.is_available(),
                            generator=torch.Generator())  # leave the global RNG alone
        for batch, delta in loader:
            self._report(delta)
            if batch is None:
                continue
            if self.stream.training:
                self.position += 1
                if not batch:  # every sample of the batch was undecodable (logged)
                    logger.warning("skipping a batch whose samples were all undecodable")
                    continue
            yield batch
        if not self.stream.training:
            logger.info(f"evaluation stream on rank {self.stream.rank}: {self.counts.seen} "
                        f"samples read, {self.counts.corrupt} corrupt")


def build_stream_train_loader(dataset: ShardSet, mapper, total_batch_size: int, *,
                              num_workers: int = 0, seed: int = 0, shuffle_buffer: int = 256,
                              aspect_ratio_grouping: bool = True, filter_empty: bool = True,
                              segment_samples: int = 8192, corrupt_budget: float = 0.001,
                              streams: int | None = None, rank: int | None = None,
                              world_size: int | None = None) -> StreamingLoader:
    """An infinite, resumable training stream (the streaming ``dataloader.train``).

    Args:
        dataset: a :class:`~.manifest.ShardSet` (e.g. from :func:`shard_dataset`).
        mapper: the task's mapper, unchanged from the file-based config.
        total_batch_size: images per iteration over all ranks.
        num_workers: DataLoader workers per rank.
        seed: stream seed (``${train.seed}``); None or negative picks a random seed shared
            by all ranks (exact resume then needs that seed: set ``train.seed``).
        shuffle_buffer, aspect_ratio_grouping, filter_empty, segment_samples: see
            :class:`~.reader.ShardStream`.
        corrupt_budget: allowed corrupt fraction of samples seen (default 0.1 %).
        streams: streams per rank (default ``max(1, num_workers)``): the batches depend
            on it, not on ``num_workers`` (which must divide it).
        rank, world_size: default detectron2's ``comm`` values.

    Returns:
        The loader.
    """
    world_size = comm.get_world_size() if world_size is None else world_size
    batch_size = check_batch_fits_world(total_batch_size, world_size, comm.get_local_size())
    seed = collectives.shared_random_seed() if seed is None or seed < 0 else int(seed)
    return StreamingLoader(ShardStream(
        dataset, mapper, training=True, batch_size=batch_size, seed=seed, rank=rank,
        world_size=world_size, num_workers=num_workers, shuffle_buffer=shuffle_buffer,
        aspect_ratio_grouping=aspect_ratio_grouping, filter_empty=filter_empty,
        segment_samples=segment_samples, corrupt_budget=corrupt_budget, streams=streams))


def build_stream_test_loader(dataset: ShardSet, mapper, *, num_workers: int = 0,
                             corrupt_budget: float = 0.001, rank: int | None = None,
                             world_size: int | None = None) -> StreamingLoader:
    """One exactly-once pass over ``dataset``, split over ranks and workers; yields
    ``[mapped]`` like detectron2's test loader and has ``len()`` (this rank's samples).

    Args:
        dataset: a :class:`~.manifest.ShardSet` (e.g. from :func:`shard_dataset`).
        mapper: the task's test mapper.
        num_workers: DataLoader workers per rank.
        corrupt_budget: allowed corrupt fraction of samples seen (default 0.1 %).
        rank, world_size: default detectron2's ``comm`` values.

    Returns:
        The loader.
    """
    return StreamingLoader(ShardStream(dataset, mapper, training=False, rank=rank,
                                       world_size=world_size, num_workers=num_workers,
                                       corrupt_budget=corrupt_budget))
