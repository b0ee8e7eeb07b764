"""An iteration-based training loader whose position checkpoints can save and restore.

detectron2's ``build_detection_train_loader`` cannot continue where a stopped run left off:
on resume it replays its sampler from the start, and its augmentations draw from worker
RNGs seeded at iterator creation. Here every sample of a rank's stream has a *position*
``p``; the dataset index at ``p`` comes from a seeded infinite shuffle (as detectron2's
``TrainingSampler``) and the mapper's randomness is seeded from ``(seed, rank, p)``. So the
stream is a pure function of the position, whatever the number of workers. The loader's
state is that position: it counts the batches its iterators yielded and, with torchdata's
``StatefulDataLoader`` protocol, ``state_dict()`` returns it and ``load_state_dict(state)``
(before iterating) continues the stream exactly: a resumed run sees the same batches, in
the same order, as an uninterrupted one. Aspect-ratio grouping is replayed from the dataset
dicts' ``width`` / ``height`` (no image is decoded to skip).
"""
from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterator, Sequence

from mona_scale import collectives

import torch
from detectron2.utils import comm
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from .batching import check_batch_fits_world
from .rng import derive_seed, seeded

__all__ = ["ResumableTrainLoader", "build_train_loader"]

logger = logging.getLogger(__name__)


def _rank_indices(size: int, seed: int, rank: int, world: int, shuffle: bool
                  ) -> Iterator[int]:
    """Dataset indices of this rank's infinite stream (detectron2 TrainingSampler order)."""
    def infinite():
        generator = torch.Generator().manual_seed(seed)
        while True:
            yield from (torch.randperm(size, generator=generator).tolist() if shuffle
                        else range(size))
    return itertools.islice(infinite(), rank, None, world)


def _identity(item):
    return item


class _PositionedStream(IterableDataset):
    """Mapped samples at ``leftover`` positions, then at ``start, start + 1, ...``; worker
    ``w`` of ``W`` maps every ``W``-th of them, so the loader's round robin keeps order."""

    def __init__(self, loader: ResumableTrainLoader, leftover: list[int], start: int):
        self.loader, self.leftover, self.start = loader, leftover, start

    def __iter__(self):
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        loader = self.loader
        positions = itertools.chain(self.leftover, itertools.count(self.start))
        indices = loader.indices_at(positions)
        for j, (position, index) in enumerate(indices):
            if j % workers != worker:
                continue
            key = loader.group_key(index)
            with seeded(derive_seed(loader.seed, loader.rank, position), restore=info is None):
                sample = loader.mapper(dict(loader.dataset[index]))
            yield position, key, sample


class ResumableTrainLoader:
    """Batches (lists of mapped dataset dicts) of one rank's infinite training stream.

    Args:
        dataset: dataset dicts (a list).
        mapper: dict -> model input (e.g. detectron2's ``DatasetMapper``).
        total_batch_size: batch size summed over all ranks.
        num_workers: data-loading processes per rank.
        seed: stream seed (``train.seed``); ``None`` or negative picks a random one shared by
            all ranks (the position is then only exact within one run).
        shuffle: shuffle every epoch (else in order).
        aspect_ratio_grouping: batch landscape and portrait images separately (needs
            ``width`` and ``height`` in the dataset dicts).
        pin_memory: put batches' tensors in page-locked memory for faster copies to the GPU;
            ``None`` (default): when CUDA is available.
    """

    def __init__(self, dataset: Sequence[dict], mapper: Callable[[dict], dict],
                 total_batch_size: int, num_workers: int = 0, seed: int | None = None,
                 shuffle: bool = True, aspect_ratio_grouping: bool = True,
                 pin_memory: bool | None = None):
        self.rank, self.world = comm.get_rank(), comm.get_world_size()
        self.batch_size = check_batch_fits_world(total_batch_size, self.world,
                                                 comm.get_local_size())
        if len(dataset) == 0:
            raise ValueError("dataloader.train.dataset is empty")
        self.dataset, self.mapper = list(dataset), mapper
        self.num_workers, self.shuffle = num_workers, shuffle
        self.seed = collectives.shared_random_seed() if seed is None or seed < 0 else int(seed)
        self.grouping = aspect_ratio_grouping
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else bool(pin_memory)
        self._batches = 0  # batches of this rank's stream yielded so far (its position)

    def indices_at(self, positions: Iterator[int]) -> Iterator[tuple[int, int]]:
        """(position, dataset index) for strictly increasing ``positions``."""
        stream = _rank_indices(len(self.dataset), self.seed, self.rank, self.world,
                               self.shuffle)
        cursor = 0
        for position in positions:
            if position < cursor:
                raise ValueError(f"positions must increase, got {position} after {cursor - 1}")
            for _ in range(position - cursor):
                next(stream)
            cursor = position + 1
            yield position, next(stream)

    def group_key(self, index: int) -> int:
        """Aspect-ratio bucket of dataset record ``index`` (0 when grouping is off)."""
        if not self.grouping:
            return 0
        record = self.dataset[index]
        if "width" not in record or "height" not in record:
            raise KeyError(f"aspect_ratio_grouping needs 'width' and 'height' in the dataset "
                           f"dicts; {record.get('file_name', 'a record')} has neither: set "
                           f"dataloader.train.aspect_ratio_grouping=False")
        return int(record["width"] > record["height"])

    def state_dict(self) -> dict:
        """The stream's position (torchdata's ``StatefulDataLoader`` protocol).

        Returns:
            ``{"batches": batches yielded so far, "world_size": ranks, "seed": stream seed}``.
        """
        return {"batches": self._batches, "world_size": self.world, "seed": self.seed}

    def load_state_dict(self, state: dict) -> None:
        """Continue after the first ``state["batches"]`` batches of this rank's stream.

        Call before iterating; no image is read to skip. A state written at another world
        size continues at the same batch count of this world size's (re-sharded) order, with
        a warning.

        Args:
            state: what :meth:`state_dict` returned (possibly on another rank).
        """
        missing = [k for k in ("batches", "world_size") if k not in state]
        if missing:
            raise KeyError(f"{type(self).__name__} state lacks {missing}: got {sorted(state)}")
        batches = int(state["batches"])
        if batches < 0:
            raise ValueError(f"cannot resume from batch {batches}")
        if int(state["world_size"]) != self.world:
            logger.warning(f"the training stream was saved by {state['world_size']} ranks and "
                           f"resumes with {self.world}: it continues at batch {batches} of a "
                           f"re-sharded order")
        if "seed" in state and int(state["seed"]) != self.seed:
            logger.warning(f"the training stream was saved with seed {state['seed']} and "
                           f"resumes with seed {self.seed}: another order continues")
        self._batches = batches


    def _resume_point(self) -> tuple[list[int], int]:
        """Positions still waiting in the grouping buckets, and the next fresh position."""
        if not self.grouping:
            return [], self._batches * self.batch_size
        buckets: dict[int, list[int]] = {0: [], 1: []}
        emitted, position = 0, 0
        indices = self.indices_at(itertools.count())
        while emitted < self._batches:
            item = next(indices)
            bucket = buckets[self.group_key(item[1])]
            bucket.append(item[0])
            position = item[0] + 1
            if len(bucket) == self.batch_size:
                bucket.clear()
                emitted += 1
        return sorted(buckets[0] + buckets[1]), position

    def __iter__(self) -> Iterator[list[dict]]:
        leftover, start = self._resume_point()
        if start:
            logger.info(f"training stream resumes at sample {start} of rank {self.rank} "
                        f"(batch {self._batches})")
        loader = DataLoader(_PositionedStream(self, leftover, start), batch_size=None,
                            num_workers=self.num_workers, collate_fn=_identity,
                            generator=torch.Generator(),  # never draw from the global RNG
                            persistent_workers=False, pin_memory=self.pin_memory)
        buckets: dict[int, list[dict]] = {0: [], 1: []}
        for position, key, sample in loader:
            if sample is None:
                raise ValueError(f"the mapper returned None for sample {position} of rank "
                                 f"{self.rank}: filter the dataset instead")
            bucket = buckets[key]
            bucket.append(sample)
            if len(bucket) == self.batch_size:
                batch = bucket[:]
                bucket.clear()
                self._batches += 1  # counted when handed out: the state names what was used
                yield batch


def build_train_loader(dataset: Sequence[dict], *, mapper: Callable[[dict], dict],
                       total_batch_size: int, num_workers: int = 0, seed: int | None = None,
                       shuffle: bool = True, aspect_ratio_grouping: bool = True,
                       pin_memory: bool | None = None) -> ResumableTrainLoader:
    """Drop-in for detectron2's ``build_detection_train_loader`` whose position can be saved
    and restored (see :class:`ResumableTrainLoader` for the arguments).

    Returns:
        A :class:`ResumableTrainLoader`.
    """
    return ResumableTrainLoader(dataset, mapper, total_batch_size, num_workers, seed, shuffle,
                                aspect_ratio_grouping, pin_memory)
