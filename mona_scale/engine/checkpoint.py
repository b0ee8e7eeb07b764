"""Atomic, sharded training checkpoints and consolidated weights.

A training checkpoint is a directory ``<output_dir>/model_<iteration>/`` holding
- the strategy's model and optimizer state, sharded: ``torch.distributed.checkpoint`` files
  for ddp / fsdp (loadable at another world size), DeepSpeed's own files under ``state/``;
- ``trainer.pt``: iteration, hook states (the LR scheduler), loss-scaler state;
- ``rank<r>.pt`` per rank: python / numpy / torch RNG states and the training loader's
  ``state_dict()`` (under ``"loader"``: this rank's position in its data stream; None for a
  loader without state, which then cannot be resumed).
Every rank writes into ``.<name>.tmp/``; after a barrier rank 0 renames it into place and
only then rewrites the ``last_checkpoint`` pointer (both atomic renames). A process killed
mid-save leaves the previous checkpoint complete and the pointer naming it; the next save
deletes what it left (``.model_<iteration>.tmp/`` and ``mona_scale.atomic_io``'s temporary
files). Files are written through :mod:`mona_scale.atomic_io`. An empty or
corrupt pointer falls back, with a warning, to the newest complete checkpoint directory.

Every file is read with ``torch.load(weights_only=True)`` (what we write is tensors and
plain python values), so a checkpoint cannot run code when it is loaded. ``meta.json``
records the strategy, the world size, the iteration and the id of the run that wrote it;
pruning (``max_to_keep``) deletes only older checkpoints of this run, never the pointer's
target, another run's checkpoints or a directory the user made (``model_best/``).

At the end of training, ``model_final.pth`` holds the consolidated weights in detectron2's
format (``{"model": state_dict}``) for ``DetectionCheckpointer``, evaluation and demos.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import re
import secrets
import shutil

from mona_scale import collectives
from mona_scale.atomic_io import atomic_write, remove_stale_temps
from mona_scale.weights_io import read_pickle_weights

import numpy as np
import torch
import torch.distributed.checkpoint as dcp
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.engine import HookBase
from detectron2.utils import comm
from detectron2.utils.file_io import PathManager
from torch import nn

from .strategies import Strategy

__all__ = ["TrainingCheckpointer", "PeriodicCheckpointHook", "WeightsOnlyCheckpointer",
           "last_checkpoint", "newest_checkpoint", "resolve_checkpoint", "read_meta",
           "complete_checkpoints", "previous_run_files", "check_world_size",
           "weights_only_loads", "rng_state", "set_rng_state", "POINTER", "FINAL_WEIGHTS"]

logger = logging.getLogger(__name__)

POINTER = "last_checkpoint"
FINAL_WEIGHTS = "model_final.pth"
TRAINER_FILE = "trainer.pt"
META_FILE = "meta.json"
CHECKPOINT_NAME = re.compile(r"^model_(\d+)$")
TEMP_CHECKPOINT_NAME = re.compile(r"^\.model_\d+\.tmp$")  # a save in progress (or killed)


@contextlib.contextmanager
def weights_only_loads():
    """Every ``torch.load`` inside, including third-party ones that pass
    ``weights_only=False`` (DeepSpeed's checkpoint engine and ``zero_to_fp32``), runs with
    ``weights_only=True`` (torch's ``TORCH_FORCE_WEIGHTS_ONLY_LOAD``). DeepSpeed's optimizer
    files hold three plain DeepSpeed types (its loss scaler's settings, the ZeRO stage enum,
    a fragment address record), which are admitted; nothing else that is not a tensor or a
    plain python value loads."""
    extra = []
    with contextlib.suppress(ImportError):
        from deepspeed.runtime.fp16.loss_scaler import LossScaler
        from deepspeed.runtime.zero.config import ZeroStageEnum
        from deepspeed.utils.tensor_fragment import fragment_address

        extra = [LossScaler, ZeroStageEnum, fragment_address]
    previous = os.environ.get("TORCH_FORCE_WEIGHTS_ONLY_LOAD")
    os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = "1"
    try:
        with torch.serialization.safe_globals(extra):
            yield
    finally:
        if previous is None:
            os.environ.pop("TORCH_FORCE_WEIGHTS_ONLY_LOAD", None)
        else:
            os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = previous


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


def read_meta(path: str) -> dict:
    """``meta.json`` of checkpoint directory ``path`` (``FileNotFoundError`` when there is
    none: the directory is not a complete checkpoint)."""
    meta_path = os.path.join(path, META_FILE)
    if not os.path.isfile(meta_path):
        raise FileNotFoundError(f"{path} is not a complete checkpoint (no {META_FILE})")
    with open(meta_path) as f:
        return json.load(f)


def complete_checkpoints(save_dir: str) -> list[tuple[int, str]]:
    """``(iteration, directory name)`` of every complete checkpoint (``model_<digits>/`` with
    a readable ``meta.json``) in ``save_dir``, by iteration."""
    found = []
    for name in os.listdir(save_dir) if os.path.isdir(save_dir) else []:
        m = CHECKPOINT_NAME.match(name)
        if not m:
            continue
        try:  # (a file named like a checkpoint holds no meta.json either)
            meta = read_meta(os.path.join(save_dir, name))
        except (OSError, ValueError):
            continue
        iteration = meta.get("iteration")
        found.append((int(m.group(1)) if iteration is None else int(iteration), name))
    return sorted(found)


def newest_checkpoint(save_dir: str) -> str | None:
    """The complete checkpoint of ``save_dir`` with the highest iteration (None: none)."""
    found = complete_checkpoints(save_dir)
    return os.path.join(save_dir, found[-1][1]) if found else None


def last_checkpoint(save_dir: str) -> str | None:
    """The checkpoint directory to resume from in ``save_dir``: the one the
    ``last_checkpoint`` pointer names, or None when there is no pointer.

    An empty or corrupt pointer (unreadable, naming nothing complete) falls back, with a
    warning, to the newest complete checkpoint directory (``FileNotFoundError`` when none).
    """
    pointer = os.path.join(save_dir, POINTER)
    if not os.path.isfile(pointer):
        return None
    try:
        with open(pointer) as f:
            name = f.read().strip()
    except (OSError, UnicodeDecodeError):
        name = ""
    if name and CHECKPOINT_NAME.match(name) and os.path.isfile(
            os.path.join(save_dir, name, META_FILE)):
        return os.path.join(save_dir, name)
    path = newest_checkpoint(save_dir)
    if path is None:
        raise FileNotFoundError(
            f"{pointer} names {name!r}, which is not a complete checkpoint, and {save_dir} "
            f"holds no complete model_<iteration>/ directory to fall back to")
    logger.warning(f"{pointer} is empty or corrupt (it names {name[:80]!r}, not a complete "
                   f"checkpoint): resuming from the newest complete checkpoint {path}")
    return path


def resolve_checkpoint(path: str) -> str:
    """The checkpoint a directory names: the directory itself when it is a checkpoint
    (``meta.json``, a ``torch.distributed.checkpoint`` or DeepSpeed's ``state/``), else an
    output directory's last checkpoint, else its ``model_final.pth``.

    Args:
        path: a checkpoint or output directory.

    Returns:
        A checkpoint directory or weight file; ``FileNotFoundError`` when it holds neither.
    """
    if any(os.path.exists(os.path.join(path, n)) for n in (META_FILE, ".metadata", "state")):
        return path
    last = last_checkpoint(path) or newest_checkpoint(path)
    if last is not None:
        return last
    final = os.path.join(path, FINAL_WEIGHTS)
    if os.path.isfile(final):
        return final
    raise FileNotFoundError(f"{path} is a directory but neither a checkpoint (no {META_FILE}) "
                            f"nor an output directory with checkpoints or {FINAL_WEIGHTS}")


def previous_run_files(save_dir: str) -> list[str]:
    """What a training run left in ``save_dir`` that a new run would overwrite or append to:
    the pointer, complete checkpoint directories, ``model_final.pth``."""
    if not os.path.isdir(save_dir):
        return []
    names = [n for n in (POINTER, FINAL_WEIGHTS) if os.path.exists(os.path.join(save_dir, n))]
    return names + [name for _, name in complete_checkpoints(save_dir)]


def check_world_size(path: str, strategy: str, world_size: int) -> dict:
    """Refuse, before the strategy starts, to resume a checkpoint it cannot read.

    DeepSpeed's ZeRO files are partitioned for the world size that wrote them; a
    ``torch.distributed.checkpoint`` (ddp / fsdp) reshards to any world size.

    Args:
        path: checkpoint directory.
        strategy: ``train.strategy`` of this run.
        world_size: this run's number of ranks.

    Returns:
        The checkpoint's meta data. ``ValueError`` names both world sizes (or strategies).
    """
    meta = read_meta(path)
    if (meta["strategy"] == "deepspeed") != (strategy == "deepspeed"):
        raise ValueError(f"{path} was written by train.strategy={meta['strategy']} and "
                         f"cannot resume under train.strategy={strategy} "
                         f"(DeepSpeed and DCP checkpoints differ): export it first")
    if strategy == "deepspeed" and int(meta["world_size"]) != world_size:
        raise ValueError(
            f"{path} is a DeepSpeed checkpoint written by {meta['world_size']} ranks and this "
            f"run has {world_size}: DeepSpeed's ZeRO partitions do not load at another world "
            f"size. Resume with {meta['world_size']} ranks, or convert it with "
            f"`python -m mona_scale.export --config-file <config> --checkpoint {path} --full "
            f"model.pth` and start from train.init_checkpoint=model.pth")
    return meta


class TrainingCheckpointer:
    """Saves and restores whole training state through a strategy.

    Args:
        save_dir: the run's output directory.
        strategy: the run's strategy (it writes the model / optimizer shards).
        model: the model as the strategy wrapped it.
        optimizer: the optimizer from ``strategy.setup`` (None: model only).
        trainer: the :class:`~mona_scale.engine.trainer.StrategyTrainer` (None: model only).
    """

    def __init__(self, save_dir: str, strategy: Strategy, model: nn.Module,
                 optimizer: torch.optim.Optimizer | None = None, trainer=None):
        self.save_dir, self.strategy, self.model = save_dir, strategy, model
        self.optimizer, self.trainer = optimizer, trainer
        #: id of this run, recorded in every checkpoint it writes (a resumed run takes the
        #: id of the checkpoint it loads): pruning deletes only this run's checkpoints
        self.run_id = secrets.token_hex(8)

    # --- saving -----------------------------------------------------------------------
    def save(self, name: str) -> str:
        """Write checkpoint ``name`` atomically (every rank must call). Returns its path."""
        rng = rng_state()  # saving may draw random numbers (file names): keep it invisible
        final = os.path.join(self.save_dir, name)
        tmp = os.path.join(self.save_dir, f".{name}.tmp")
        if comm.is_main_process():  # first delete what saves killed mid-write left
            os.makedirs(self.save_dir, exist_ok=True)
            for entry in os.listdir(self.save_dir):
                if TEMP_CHECKPOINT_NAME.match(entry) or entry == os.path.basename(tmp):
                    shutil.rmtree(os.path.join(self.save_dir, entry), ignore_errors=True)
            remove_stale_temps(self.save_dir)
            os.makedirs(tmp)
        collectives.barrier()
        try:
            self.strategy.save_state(tmp, self.model, self.optimizer)
            loader = getattr(self.trainer, "data_loader", None)  # None: cannot resume
            with atomic_write(os.path.join(tmp, f"rank{comm.get_rank()}.pt"), "wb") as f:
                torch.save({"rng": rng, "loader": loader.state_dict() if callable(
                    getattr(loader, "state_dict", None)) else None}, f)
            if comm.is_main_process():
                if self.trainer is not None:
                    with atomic_write(os.path.join(tmp, TRAINER_FILE), "wb") as f:
                        torch.save(self.trainer.state_dict(), f)
                with atomic_write(os.path.join(tmp, META_FILE)) as f:
                    json.dump({"strategy": self.strategy.name,
                               "world_size": comm.get_world_size(),
                               "iteration": getattr(self.trainer, "iter", None),
                               "run": self.run_id}, f)
        except (Exception, dcp.CheckpointException) as e:  # DCP's is a BaseException
            raise OSError(f"saving checkpoint {final} failed ({type(e).__name__}: "
                          f"{str(e).strip().splitlines()[-1] if str(e).strip() else e!r}); "
                          f"nothing was published: {self.save_dir}/{POINTER} still names "
                          f"the last complete checkpoint (is the disk full?)") from e
        collectives.barrier()
        if comm.is_main_process():  # a re-saved name: the old one is moved aside first
            old = f"{final}.old" if os.path.exists(final) else None
            if old:
                shutil.rmtree(old, ignore_errors=True)
                os.replace(final, old)
            os.replace(tmp, final)
            with atomic_write(os.path.join(self.save_dir, POINTER)) as f:
                f.write(name)
            if old:
                shutil.rmtree(old, ignore_errors=True)
        collectives.barrier()
        set_rng_state(rng)
        logger.info(f"saved checkpoint {final}")
        return final

    def save_final_weights(self, path: str | None = None) -> str:
        """Consolidated model weights in detectron2's format (collective; rank 0 writes).

        Returns:
            The file's path (default ``<save_dir>/model_final.pth``).
        """
        path = path or os.path.join(self.save_dir, FINAL_WEIGHTS)
        state = self.strategy.full_state_dict(self.model)
        if state is not None:
            with atomic_write(path, "wb") as f:
                torch.save({"model": state, "iteration": getattr(self.trainer, "iter", None)}, f)
        collectives.barrier()
        return path

    # --- loading ----------------------------------------------------------------------
    def load(self, path: str) -> None:
        """Restore model, optimizer, trainer state, this rank's RNG and data position from
        checkpoint directory ``path`` (every rank must call)."""
        meta = check_world_size(path, self.strategy.name, comm.get_world_size())
        self.run_id = meta.get("run", self.run_id)
        with weights_only_loads():  # DeepSpeed's own loader included
            self.strategy.load_state(path, self.model, self.optimizer)
        if self.trainer is not None:
            self.trainer.load_state_dict(torch.load(os.path.join(path, TRAINER_FILE),
                                                    weights_only=True))
            self._load_rank_state(path, meta)
        logger.info(f"loaded checkpoint {path} (iteration {meta['iteration']}, "
                    f"{meta['strategy']}, world size {meta['world_size']})")

    def _load_rank_state(self, path: str, meta: dict) -> None:
        loader = self.trainer.data_loader
        if not callable(getattr(loader, "load_state_dict", None)):
            raise TypeError(f"{type(loader).__name__} cannot resume at the checkpoint's data "
                            f"position (it has no load_state_dict): build dataloader.train "
                            f"with mona_scale.data.build_train_loader or a streaming loader")
        rank, world = comm.get_rank(), comm.get_world_size()
        rank_file = os.path.join(path, f"rank{rank}.pt")
        same_world = meta["world_size"] == world and os.path.isfile(rank_file)
        state = torch.load(rank_file if same_world else os.path.join(path, "rank0.pt"),
                           weights_only=True)
        if state.get("loader") is None:
            raise ValueError(f"{path} holds no data position (the run that wrote it used a "
                             f"loader without state_dict): it cannot be resumed with "
                             f"{type(loader).__name__}; start from it with "
                             f"train.init_checkpoint={path} instead")
        if same_world:
            set_rng_state(state["rng"])
        else:  # the loader warns about its re-sharded order
            logger.warning(f"checkpoint written by {meta['world_size']} ranks, resumed by "
                           f"{world}: RNG streams restart")
        loader.load_state_dict(state["loader"])


class WeightsOnlyCheckpointer(DetectionCheckpointer):
    """detectron2's ``DetectionCheckpointer`` for loading single weight files
    (``model_final.pth``, pretrained models, detectron2's model zoo) without running code."""

    def _load_file(self, filename: str) -> dict:
        """detectron2's reading with ``torch.load`` forced to ``weights_only=True``, and
        ``.pkl`` model-zoo files through a restricted unpickler."""
        if not filename.endswith(".pkl"):
            with weights_only_loads():
                return super()._load_file(filename)
        data = read_pickle_weights(PathManager.get_local_path(filename))
        if "model" in data and "__author__" in data:  # detectron2's model zoo
            return data
        data = data.get("blobs", data)  # Detectron / Caffe2 model zoo
        return {"model": {k: v for k, v in data.items() if not k.endswith("_momentum")},
                "__author__": "Caffe2", "matching_heuristics": True}


class PeriodicCheckpointHook(HookBase):
    """Save every ``period`` iterations, on a stop request and at the end (plus the
    consolidated ``model_final.pth``), keeping the last ``max_to_keep`` checkpoints.

    Runs on every rank: saving is collective. The stop decision is collective too (a
    signal may reach the ranks at different iterations): any rank's request stops all.

    Args:
        checkpointer: a :class:`TrainingCheckpointer`.
        period: iterations between saves.
        max_to_keep: checkpoints kept on disk (older ones are deleted after a newer one is
            complete; 0 = keep all).
    """

    def __init__(self, checkpointer: TrainingCheckpointer, period: int, max_to_keep: int = 3):
        if period <= 0:
            raise ValueError(f"train.checkpointer.period must be > 0, got {period}")
        self.checkpointer, self.period, self.max_to_keep = checkpointer, period, max_to_keep

    def after_step(self) -> None:
        trainer, iteration = self.trainer, self.trainer.iter
        # stop_requested is the step's collective decision: the same on every rank
        last = iteration + 1 >= trainer.max_iter
        if last or trainer.stop_requested or (iteration + 1) % self.period == 0:
            self.checkpointer.save(f"model_{iteration:07d}")
            self._prune()
        if last:
            self.checkpointer.save_final_weights()

    def _prune(self) -> None:
        """Delete this run's checkpoints older than the newest ``max_to_keep``, by iteration;
        never the pointer's target, anything newer, another run's or a user's directory."""
        if not comm.is_main_process() or self.max_to_keep <= 0:
            return
        save_dir = self.checkpointer.save_dir
        target = last_checkpoint(save_dir)
        if target is None:
            return
        newest = read_meta(target).get("iteration")
        older = [os.path.join(save_dir, name) for iteration, name in
                 complete_checkpoints(save_dir) if newest is not None and iteration < newest]
        ours = [path for path in older if not os.path.samefile(path, target)
                and read_meta(path).get("run") == self.checkpointer.run_id]
        for path in ours[:max(0, len(ours) - (self.max_to_keep - 1))]:
            shutil.rmtree(path, ignore_errors=True)
