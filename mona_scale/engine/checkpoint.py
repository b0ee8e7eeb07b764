"""Atomic checkpoints in detectron2's format, with per-rank RNG state.

``DetectionCheckpointer`` writes ``model_XXXXXXX.pth`` in place and then the
``last_checkpoint`` pointer. A process killed mid-write leaves a truncated file. Here both
are written to a temporary file in the same directory, flushed, fsync'ed and renamed, so a
killed save leaves the previous checkpoint complete and the pointer naming it.
"""
from __future__ import annotations

import os
import random

import numpy as np
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.engine import HookBase
from detectron2.utils import comm

__all__ = ["AtomicCheckpointer", "PeriodicCheckpointHook", "atomic_torch_save", "rng_state",
           "set_rng_state"]


def atomic_torch_save(obj, path: str) -> None:
    """``torch.save`` to ``path`` via a temporary file and ``os.replace``."""
    tmp = f"{path}.tmp.{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _atomic_write_text(path: str, text: str) -> None:
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def rng_state() -> dict:
    """This process's python / numpy / torch (and CUDA) RNG states, as tensors and plain
    python values (loadable with ``torch.load(weights_only=True)``)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"python": random.getstate(),
             "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss),
                       float(gauss)),
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what :func:`rng_state` returned."""
    random.setstate(state["python"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


class AtomicCheckpointer(DetectionCheckpointer):
    """A ``DetectionCheckpointer`` whose saves are atomic and carry every rank's RNG."""

    def save(self, name: str, **kwargs) -> None:
        rng = comm.all_gather(rng_state())  # collective: every rank must call save
        if not self.save_dir or not self.save_to_disk:
            return
        data = {"model": self.model.state_dict()}
        for key, obj in self.checkpointables.items():
            data[key] = obj.state_dict()
        data["rng"] = rng
        data.update(kwargs)
        path = os.path.join(self.save_dir, f"{name}.pth")
        self.logger.info(f"Saving checkpoint to {path}")
        atomic_torch_save(data, path)
        self.tag_last_checkpoint(os.path.basename(path))

    def tag_last_checkpoint(self, last_filename_basename: str) -> None:
        _atomic_write_text(os.path.join(self.save_dir, "last_checkpoint"), last_filename_basename)

    def _load_file(self, filename: str):
        loaded = super()._load_file(filename)
        rng = loaded.pop("rng", None) if isinstance(loaded, dict) else None
        if rng is not None:
            rank = comm.get_rank()
            if len(rng) == comm.get_world_size():
                set_rng_state(rng[rank])
            else:
                self.logger.warning(f"checkpoint has RNG states of {len(rng)} ranks, this job "
                                    f"has {comm.get_world_size()}: RNG streams restart")
        return loaded


class PeriodicCheckpointHook(HookBase):
    """Save every ``period`` iterations and at the end, keeping the last ``max_to_keep``.

    Runs on every rank (the save gathers each rank's RNG state); only the main process
    writes and prunes files. Old checkpoints are pruned only after the new one is complete.

    Args:
        checkpointer: an :class:`AtomicCheckpointer`.
        period: iterations between saves.
        max_to_keep: periodic checkpoints kept on disk (``model_final`` is never pruned).
    """

    def __init__(self, checkpointer: AtomicCheckpointer, period: int, max_to_keep: int = 3):
        if period <= 0:
            raise ValueError(f"train.checkpointer.period must be > 0, got {period}")
        self.checkpointer, self.period, self.max_to_keep = checkpointer, period, max_to_keep
        self._recent: list[str] = []

    def after_step(self) -> None:
        iteration = self.trainer.iter
        if iteration + 1 >= self.trainer.max_iter:
            self.checkpointer.save("model_final", iteration=iteration)
        elif (iteration + 1) % self.period == 0:
            name = f"model_{iteration:07d}"
            self.checkpointer.save(name, iteration=iteration)
            self._prune(name)

    def _prune(self, name: str) -> None:
        self._recent.append(name)
        if not self.checkpointer.save_to_disk or self.max_to_keep <= 0:
            return
        while len(self._recent) > self.max_to_keep:
            old = os.path.join(self.checkpointer.save_dir, f"{self._recent.pop(0)}.pth")
            if os.path.exists(old):
                os.remove(old)
