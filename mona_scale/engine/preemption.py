"""SLURM requeue: ``scontrol requeue $SLURM_JOB_ID`` after a checkpointed stop.

The requeued job keeps its id, so it finds its output directory and resumes from the
checkpoint with no lost or repeated iteration. When to requeue (after ``SIGUSR1``, never
after ``SIGTERM``) is decided in :mod:`mona_scale.engine.stopping`.
"""
from __future__ import annotations

import logging
import subprocess

__all__ = ["requeue_slurm_job"]

logger = logging.getLogger(__name__)


def requeue_slurm_job(job_id: str) -> bool:
    """``scontrol requeue <job_id>``.

    Args:
        job_id: ``SLURM_JOB_ID``.

    Returns:
        Whether SLURM accepted it (a failure is logged with scontrol's message).
    """
    logger.info(f"requeueing SLURM job {job_id} (it resumes from the last checkpoint)")
    try:
        result = subprocess.run(["scontrol", "requeue", job_id], capture_output=True,
                                text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as error:
        logger.error(f"could not requeue SLURM job {job_id}: {error}")
        return False
    if result.returncode != 0:
        logger.error(f"scontrol requeue {job_id} failed (exit status {result.returncode}): "
                     f"{result.stderr.strip()}")
        return False
    logger.info(f"requeued SLURM job {job_id}; it resumes from the checkpoint just written")
    return True
