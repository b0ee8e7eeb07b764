"""Atomic, sharded training checkpoints and consolidated weights.

A training checkpoint is a directory ``<output_dir>/model_<iteration>/`` holding
- the strategy's model and optimizer state, sharded: ``torch.distributed.checkpoint`` files
  for ddp / fsdp (loadable at another world size), DeepSpeed's own files under ``state/``;
- ``trainer.pt``: iteration, hook states (the LR scheduler), loss-scaler state;
- ``rank<r>.pt`` per rank: python / numpy / torch RNG states and the data position (how
  many batches this rank has drawn).
Every rank writes into ``.<name>.tmp/``; after a barrier rank 0 renames it into place and
only then rewrites the ``last_checkpoint`` pointer (both atomic renames). A process killed
mid-save leaves the previous checkpoint complete and the pointer naming it.

At the end of training, ``model_final.pth`` holds the consolidated weights in detectron2's
format (``{"model": state_dict}``) for ``DetectionCheckpointer``, evaluation and demos.
"""
from __future__ import annotations

import json
import logging
import os
import random
import shutil

from mona_scale import collectives

import numpy as np
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.engine import HookBase
from detectron2.utils import comm
from torch import nn

from .strategies import Strategy

__all__ = ["Checkpointer", "PeriodicCheckpointHook", "last_checkpoint", "AtomicCheckpointer",
           "atomic_torch_save", "rng_state", "set_rng_state", "POINTER", "FINAL_WEIGHTS"]

logger = logging.getLogger(__name__)

POINTER = "last_checkpoint"
FINAL_WEIGHTS = "model_final.pth"
TRAINER_FILE = "trainer.pt"
META_FILE = "meta.json"


def atomic_torch_save(obj, path: str) -> None:
    """``torch.save`` to ``path`` via a temporary file, fsync and ``os.replace``."""
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


def last_checkpoint(save_dir: str) -> str | None:
    """The checkpoint directory the ``last_checkpoint`` pointer in ``save_dir`` names, or
    None when there is no pointer."""
    pointer = os.path.join(save_dir, POINTER)
    if not os.path.isfile(pointer):
        return None
    with open(pointer) as f:
        path = os.path.join(save_dir, f.read().strip())
    if not os.path.isdir(path):
        raise FileNotFoundError(f"{pointer} names {path}, which is not a checkpoint "
                                f"directory (a checkpoint of an older format?)")
    return path


class Checkpointer:
    """Saves and restores whole training state through a strategy.

    Args:
        save_dir: the run's output directory.
        strategy: the run's strategy (it writes the model / optimizer shards).
        model: the model as the strategy wrapped it.
        optimizer: the optimizer from ``strategy.setup`` (None: model only).
        trainer: the :class:`~mona_scale.engine.trainer.MonaTrainer` (None: model only).
    """

    def __init__(self, save_dir: str, strategy: Strategy, model: nn.Module,
                 optimizer: torch.optim.Optimizer | None = None, trainer=None):
        self.save_dir, self.strategy, self.model = save_dir, strategy, model
        self.optimizer, self.trainer = optimizer, trainer

    def last_checkpoint(self) -> str | None:
        """The directory ``last_checkpoint`` names in ``save_dir``, or None."""
        return last_checkpoint(self.save_dir)

    # --- saving -----------------------------------------------------------------------
    def save(self, name: str) -> str:
        """Write checkpoint ``name`` atomically (every rank must call). Returns its path."""
        rng = rng_state()  # saving may draw random numbers (file names): keep it invisible
        final = os.path.join(self.save_dir, name)
        tmp = os.path.join(self.save_dir, f".{name}.tmp")
        if comm.is_main_process():
            shutil.rmtree(tmp, ignore_errors=True)
            os.makedirs(tmp)
        collectives.barrier()
        self.strategy.save_state(tmp, self.model, self.optimizer)
        rank = comm.get_rank()
        atomic_torch_save({"rng": rng,
                           "batches_drawn": getattr(self.trainer, "batches_drawn", 0)},
                          os.path.join(tmp, f"rank{rank}.pt"))
        if comm.is_main_process():
            if self.trainer is not None:
                atomic_torch_save(self.trainer.state_dict(), os.path.join(tmp, TRAINER_FILE))
            _atomic_write_text(os.path.join(tmp, META_FILE), json.dumps(
                {"strategy": self.strategy.name, "world_size": comm.get_world_size(),
                 "iteration": getattr(self.trainer, "iter", None)}))
        collectives.barrier()
        if comm.is_main_process():
            self._publish(tmp, final, name)
        collectives.barrier()
        set_rng_state(rng)
        logger.info(f"saved checkpoint {final}")
        return final

    def _publish(self, tmp: str, final: str, name: str) -> None:
        old = None
        if os.path.exists(final):  # re-saving a name: move the old one aside first
            old = f"{final}.old"
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
        os.replace(tmp, final)
        _atomic_write_text(os.path.join(self.save_dir, POINTER), name)
        if old:
            shutil.rmtree(old, ignore_errors=True)

    def save_final_weights(self, path: str | None = None) -> str:
        """Consolidated model weights in detectron2's format (collective; rank 0 writes).

        Returns:
            The file's path (default ``<save_dir>/model_final.pth``).
        """
        path = path or os.path.join(self.save_dir, FINAL_WEIGHTS)
        state = self.strategy.full_state_dict(self.model)
        if state is not None:
            atomic_torch_save({"model": state, "iteration": getattr(self.trainer, "iter", None)},
                              path)
        collectives.barrier()
        return path

    # --- loading ----------------------------------------------------------------------
    def load(self, path: str) -> None:
        """Restore model, optimizer, trainer state, this rank's RNG and data position from
        checkpoint directory ``path`` (every rank must call)."""
        meta_path = os.path.join(path, META_FILE)
        if not os.path.isfile(meta_path):
            raise FileNotFoundError(f"{path} is not a complete checkpoint (no {META_FILE})")
        with open(meta_path) as f:
            meta = json.load(f)
        if (meta["strategy"] == "deepspeed") != (self.strategy.name == "deepspeed"):
            raise ValueError(f"{path} was written by train.strategy={meta['strategy']} and "
                             f"cannot resume under train.strategy={self.strategy.name} "
                             f"(DeepSpeed and DCP checkpoints differ): export it first")
        self.strategy.load_state(path, self.model, self.optimizer)
        if self.trainer is not None:
            self.trainer.load_state_dict(torch.load(os.path.join(path, TRAINER_FILE),
                                                    weights_only=False))
            self._load_rank_state(path, meta)
        logger.info(f"loaded checkpoint {path} (iteration {meta['iteration']}, "
                    f"{meta['strategy']}, world size {meta['world_size']})")

    def _load_rank_state(self, path: str, meta: dict) -> None:
        rank, world = comm.get_rank(), comm.get_world_size()
        rank_file = os.path.join(path, f"rank{rank}.pt")
        if meta["world_size"] != world or not os.path.isfile(rank_file):
            state = torch.load(os.path.join(path, "rank0.pt"), weights_only=False)
            logger.warning(f"checkpoint written by {meta['world_size']} ranks, resumed by "
                           f"{world}: RNG streams restart and the data stream continues at "
                           f"batch {state['batches_drawn']} of a re-sharded order")
            self.trainer.batches_drawn = state["batches_drawn"]
            return
        state = torch.load(rank_file, weights_only=False)
        set_rng_state(state["rng"])
        self.trainer.batches_drawn = state["batches_drawn"]


class AtomicCheckpointer(DetectionCheckpointer):
    """detectron2's ``DetectionCheckpointer`` for single weight files (``model_final.pth``,
    pretrained models), with atomic saves."""

    def save(self, name: str, **kwargs) -> None:
        if not self.save_dir or not self.save_to_disk:
            return
        data = {"model": self.model.state_dict(), **kwargs}
        for key, obj in self.checkpointables.items():
            data[key] = obj.state_dict()
        path = os.path.join(self.save_dir, f"{name}.pth")
        self.logger.info(f"Saving checkpoint to {path}")
        atomic_torch_save(data, path)


class PeriodicCheckpointHook(HookBase):
    """Save every ``period`` iterations, on a stop request and at the end (plus the
    consolidated ``model_final.pth``), keeping the last ``max_to_keep`` checkpoints.

    Runs on every rank: saving is collective. The stop decision is collective too (a
    signal may reach the ranks at different iterations): any rank's request stops all.

    Args:
        checkpointer: a :class:`Checkpointer`.
        period: iterations between saves.
        max_to_keep: checkpoints kept on disk (older ones are deleted after a newer one is
            complete; 0 = keep all).
    """

    def __init__(self, checkpointer: Checkpointer, period: int, max_to_keep: int = 3):
        if period <= 0:
            raise ValueError(f"train.checkpointer.period must be > 0, got {period}")
        self.checkpointer, self.period, self.max_to_keep = checkpointer, period, max_to_keep

    def after_step(self) -> None:
        trainer, iteration = self.trainer, self.trainer.iter
        trainer.stop_requested = collectives.any_rank(trainer.stop_requested)
        last = iteration + 1 >= trainer.max_iter
        if last or trainer.stop_requested or (iteration + 1) % self.period == 0:
            self.checkpointer.save(f"model_{iteration:07d}")
            self._prune()
        if last:
            self.checkpointer.save_final_weights()

    def _prune(self) -> None:
        if not comm.is_main_process() or self.max_to_keep <= 0:
            return
        save_dir = self.checkpointer.save_dir
        kept = sorted(d for d in os.listdir(save_dir)
                      if d.startswith("model_") and os.path.isdir(os.path.join(save_dir, d)))
        for old in kept[:-self.max_to_keep]:
            shutil.rmtree(os.path.join(save_dir, old), ignore_errors=True)

