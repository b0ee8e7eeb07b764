"""What a training run finds in its output directory: continue it, refuse, or start over.

- ``--resume`` continues from the last checkpoint (the ``last_checkpoint`` pointer; when it
  is missing, empty or corrupt, the newest complete checkpoint, with a warning, and the
  pointer is repaired). ``metrics.json`` keeps the rows up to the restored iteration, so
  that iterations a crashed job logged after its last checkpoint appear once; the wandb run
  is rewound the same way (see :class:`~mona_scale.engine.wandb_writer.WandbWriter`).
- A new run (no ``--resume``, or ``--resume`` with nothing to resume) in a directory that
  holds checkpoints or ``model_final.pth`` of an earlier run refuses to start: it would
  overwrite them, append to their ``metrics.json`` and continue their wandb run.
  ``train.overwrite=True`` starts over there: the pointer, ``metrics.json`` and the wandb
  run id are removed (old checkpoint directories stay until overwritten; pruning never
  deletes them).
- A DeepSpeed checkpoint written at another world size is refused here, before DeepSpeed
  starts.
"""
from __future__ import annotations

import json
import logging
import os

from mona_scale.atomic_io import atomic_write

from detectron2.utils import comm

from .checkpoint import (
    POINTER,
    check_world_size,
    last_checkpoint,
    newest_checkpoint,
    previous_run_files,
)
from .wandb_writer import RUN_ID_FILE
from .writers import METRICS_FILE

__all__ = ["prepare_output_dir"]

logger = logging.getLogger(__name__)


def _truncate_metrics(path: str, last_iteration: int) -> int:
    """Keep the rows of ``metrics.json`` (detectron2's JSON lines) whose ``iteration`` is at
    most ``last_iteration``; rewrite the file atomically. A torn last line is dropped.

    Args:
        path: the ``metrics.json`` file (nothing happens when it does not exist).
        last_iteration: the restored iteration; -1 drops every row.

    Returns:
        The number of rows dropped.
    """
    if not os.path.isfile(path):
        return 0
    kept, dropped = [], 0
    with open(path) as f:
        for line in f:
            try:
                row = json.loads(line)
            except ValueError:  # a line cut by a kill
                dropped += 1
                continue
            if int(row.get("iteration", -1)) <= last_iteration:
                kept.append(line if line.endswith("\n") else line + "\n")
            else:
                dropped += 1
    if dropped:
        with atomic_write(path) as f:
            f.write("".join(kept))
    return dropped


def prepare_output_dir(output_dir: str, resume: bool, overwrite: bool = False,
                       strategy: str = "ddp", world_size: int = 1) -> str | None:
    """Decide, before anything is written, how a training run starts in ``output_dir``
    (every rank calls; rank 0 changes files).

    Args:
        output_dir: ``train.output_dir``.
        resume: ``--resume``.
        overwrite: ``train.overwrite``: start over in a directory of an earlier run.
        strategy: ``train.strategy`` (a DeepSpeed checkpoint must match the world size).
        world_size: this run's number of ranks.

    Returns:
        The checkpoint directory to resume from, or None for a new run.
        ``FileExistsError`` for a new run in an earlier run's directory without
        ``overwrite``; ``ValueError`` for a checkpoint this run cannot read.
    """
    if resume:
        last = last_checkpoint(output_dir)
        if last is None and (last := newest_checkpoint(output_dir)) is not None:
            logger.warning(f"{output_dir} has no {POINTER} pointer: resuming from the newest "
                           f"complete checkpoint {last}")
        if last is not None:
            meta = check_world_size(last, strategy, world_size)
            if comm.is_main_process():
                with atomic_write(os.path.join(output_dir, POINTER)) as f:  # (repaired)
                    f.write(os.path.basename(last))
                dropped = _truncate_metrics(os.path.join(output_dir, METRICS_FILE),
                                           int(meta["iteration"]))
                if dropped:
                    logger.info(f"{METRICS_FILE}: dropped {dropped} row(s) logged after "
                                f"iteration {meta['iteration']}, which is resumed from {last}")
            return last
    previous = previous_run_files(output_dir)
    if previous and not overwrite:
        raise FileExistsError(
            f"train.output_dir={output_dir} holds an earlier run ({', '.join(previous[:5])}"
            f"{', ...' if len(previous) > 5 else ''}): a new run there would overwrite its "
            f"checkpoints and model_final.pth, append to its metrics.json and continue its "
            f"wandb run. Continue it with --resume, choose another train.output_dir, or start "
            f"over in it with train.overwrite=True")
    if comm.is_main_process():
        removed = []
        for name in (POINTER, METRICS_FILE, RUN_ID_FILE):
            path = os.path.join(output_dir, name)
            if os.path.exists(path):
                os.remove(path)
                removed.append(name)
        if previous:
            logger.warning(f"train.overwrite=True: starting over in {output_dir} (removed "
                           f"{removed}; the earlier run's checkpoint directories stay until "
                           f"this run overwrites them)")
    return None
