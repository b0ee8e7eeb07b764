"""Preemption: on SIGUSR1 or SIGTERM finish the current step, checkpoint, stop, and under
SLURM requeue the job, which then resumes from that checkpoint.

SLURM sends the signal some time before the time limit (``#SBATCH --signal=USR1@120``) or
on preemption. The handler only sets a flag; the checkpoint hook turns any rank's flag into
a collective stop after the step, saves, and the loop ends. Then rank 0 runs ``scontrol
requeue $SLURM_JOB_ID``: the requeued job keeps its id, so it finds its output directory
and resumes with no lost or repeated iteration.
"""
from __future__ import annotations

import atexit
import logging
import os
import signal
import subprocess

from mona_scale import collectives

from detectron2.engine import HookBase
from detectron2.utils import comm

__all__ = ["PreemptionHook", "requeue_slurm_job"]

logger = logging.getLogger(__name__)


def requeue_slurm_job(job_id: str) -> bool:
    """``scontrol requeue <job_id>``; returns whether SLURM accepted it (errors are logged)."""
    logger.info(f"requeueing SLURM job {job_id} (it resumes from the last checkpoint)")
    try:
        result = subprocess.run(["scontrol", "requeue", job_id], capture_output=True,
                                text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as error:
        logger.error(f"could not requeue SLURM job {job_id}: {error}")
        return False
    if result.returncode != 0:
        logger.error(f"scontrol requeue {job_id} failed: {result.stderr.strip()}")
        return False
    logger.info(f"requeued SLURM job {job_id}; it resumes from the checkpoint just written")
    return True


class PreemptionHook(HookBase):
    """Turns SIGUSR1 / SIGTERM into a checkpointed stop (and a SLURM requeue).

    Register it before the checkpoint hook. Handlers are installed for the duration of
    training, in the main thread only, and the previous ones restored afterwards.

    Args:
        requeue: run ``scontrol requeue`` after a signalled stop when ``SLURM_JOB_ID`` is set.
    """

    SIGNALS = (signal.SIGUSR1, signal.SIGTERM)

    def __init__(self, requeue: bool = True):
        self.requeue = requeue
        self.received: int | None = None
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, frame) -> None:
        self.received = signum
        self.trainer.stop_requested = True
        logger.warning(f"received {signal.Signals(signum).name}: checkpointing after iteration "
                       f"{self.trainer.iter}, then stopping")

    def before_train(self) -> None:
        try:
            self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        except ValueError:  # not the main thread: leave signals alone
            self._previous = {}

    def after_train(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        stopped_early = self.trainer.iter + 1 < self.trainer.max_iter
        if not (stopped_early and self.trainer.stop_requested):
            return
        job = os.environ.get("SLURM_JOB_ID")
        signalled = collectives.any_rank(self.received is not None)
        if signalled and self.requeue and job and comm.is_main_process():
            # at exit: SLURM kills the job on requeue, after the writers flushed and closed
            atexit.register(requeue_slurm_job, job)
