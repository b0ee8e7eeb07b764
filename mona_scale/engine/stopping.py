"""Stopping a training run early: one collective decision per step, one exit status.

Three things ask a run to stop before ``train.max_iter``:

- ``SIGUSR1``: SLURM's warning before the time limit (``#SBATCH --signal=USR1@120``). The
  run checkpoints, stops, and rank 0 runs ``scontrol requeue $SLURM_JOB_ID``; the requeued
  job (same id, same output directory) resumes from that checkpoint.
- ``SIGTERM``: ``scancel``, or preemption. The run checkpoints and stops, and does *not*
  requeue: a cancelled job stays cancelled, and SLURM requeues a preempted ``--requeue`` job
  itself.
- ``train.stop_at_iter=N``: a deliberate stop after iteration N (checkpoint, exit 0).

The signal handlers only record which signal arrived (they never decide anything, and a
record is never cleared). Once per step, before the optimizer step is applied, the trainer
calls :meth:`StopControl.poll`: every rank's pending requests are counted in one host-side
collective, so all ranks take the same decision at the same iteration. The loop ends only
on that decision, after the iteration's hooks wrote its checkpoint. A signal that arrives
while a collective, an evaluation or a checkpoint runs is seen at the next poll; one that
arrives during the last step is seen by :meth:`StopControl.conclude`, which runs once after
the loop and turns everything into the process's exit status.

Exit status: 0 for a finished run, a ``train.stop_at_iter`` stop and a successful requeue;
``128 + signal number`` (as if killed by it: 138 for SIGUSR1, 143 for SIGTERM) for a signalled
stop before ``max_iter`` that is not followed by a requeue (no SLURM job, ``train.requeue``
off, ``SIGTERM``, or a failed ``scontrol requeue``), so SLURM never shows such a job
COMPLETED. :func:`~mona_scale.engine.defaults.do_train` raises :class:`TrainingStopped`
(a ``SystemExit``) with that status.
"""
from __future__ import annotations

import logging
import os
import signal
from dataclasses import dataclass

from mona_scale.collectives import count_each

from detectron2.utils import comm

from .preemption import requeue_slurm_job

__all__ = ["StopControl", "StopDecision", "TrainingStopped"]

logger = logging.getLogger(__name__)

REQUEUE_SIGNAL = signal.SIGUSR1  # checkpoint, stop, requeue
EXIT_SIGNAL = signal.SIGTERM  # checkpoint, stop, no requeue


@dataclass(frozen=True)
class StopDecision:
    """What the ranks agreed on at one poll.

    Attributes:
        stop: end the loop after this iteration (and checkpoint it).
        reasons: why, in this order: ``SIGUSR1`` / ``SIGTERM`` (some rank received it),
            ``train.stop_at_iter`` (this is its iteration), ``a stop request`` (some rank
            called :meth:`StopControl.request`: a hook or a user).
    """

    stop: bool = False
    reasons: tuple[str, ...] = ()

    @property
    def signalled(self) -> bool:
        """Whether a signal takes part in the decision."""
        return any(reason.startswith("SIG") for reason in self.reasons)

    def describe(self) -> str:
        """The reasons, for the log."""
        return ", ".join(self.reasons) or "nothing"


class TrainingStopped(SystemExit):
    """A signalled stop before ``train.max_iter`` with no requeue (or a failed one): the
    process should exit with ``code`` (non-zero) so the job is not recorded as completed.

    Args:
        code: the exit status (``128 + signal number``).
        message: why, for the log.
    """

    def __init__(self, code: int, message: str):
        super().__init__(code)
        self.message = message

    def __str__(self) -> str:
        return f"{self.message} (exit status {self.code})"


class StopControl:
    """Pending stop requests of this rank, and the decision all ranks took from them.

    Args:
        stop_at_iter: ``train.stop_at_iter`` (stop after this many iterations; 0 = off).
        requeue: ``train.requeue``: after a ``SIGUSR1`` stop, requeue the SLURM job
            (``SLURM_JOB_ID``).
    """

    SIGNALS = (REQUEUE_SIGNAL, EXIT_SIGNAL)

    def __init__(self, stop_at_iter: int = 0, requeue: bool = True):
        self.stop_at_iter, self.requeue = int(stop_at_iter or 0), requeue
        self.received: list[int] = []  # signals, as they arrived (only the handler appends)
        self.requests = 0  # request() calls (only request() increments)
        self.decision = StopDecision()
        self._previous: dict[int, object] = {}

    # --- recording (signal handlers, hooks) ----------------------------------------------
    def _record(self, signum: int, frame) -> None:
        self.received.append(signum)  # nothing else: no lock, no I/O, no decision

    def request(self) -> None:
        """Ask for a stop (from a hook, or a user's code): honoured at the next poll, on
        every rank, with a checkpoint."""
        self.requests += 1

    def install(self) -> bool:
        """Install the recording handlers for SIGUSR1 and SIGTERM (main thread only;
        elsewhere signals are left alone). Idempotent.

        Returns:
            Whether the handlers are installed.
        """
        if self._previous:
            return True
        try:
            self._previous = {s: signal.signal(s, self._record) for s in self.SIGNALS}
        except ValueError:  # not the main thread
            self._previous = {}
        return bool(self._previous)

    def restore(self) -> None:
        """Put back the handlers :meth:`install` replaced."""
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    # --- deciding -------------------------------------------------------------------------
    def _local_flags(self) -> list[bool]:
        received = list(self.received)  # a snapshot: later arrivals stay for the next poll
        return [REQUEUE_SIGNAL in received, EXIT_SIGNAL in received, self.requests > 0]

    def poll(self, iteration: int, *extra: bool) -> list[int]:
        """The once-per-step collective: every rank's pending requests (and ``extra`` flags
        the trainer checks in the same collective) counted over all ranks. Sets
        :attr:`decision`.

        Args:
            iteration: the iteration being run (it is the last one when the decision stops).
            extra: further flags to count (e.g. "this rank's loss is not finite").

        Returns:
            The ranks counted for each of ``extra``.
        """
        counts = count_each([*self._local_flags(), *extra])
        at_iteration = self.stop_at_iter > 0 and iteration + 1 == self.stop_at_iter
        reasons = tuple(name for name, on in zip(
            ("SIGUSR1", "SIGTERM", "train.stop_at_iter", "a stop request"),
            (counts[0], counts[1], at_iteration, counts[2]), strict=True) if on)
        decision = StopDecision(stop=bool(reasons), reasons=reasons)
        if decision.stop and not self.decision.stop:
            logger.warning(f"stopping after iteration {iteration} (its checkpoint is written "
                           f"first): {decision.describe()}")
        self.decision = decision
        return counts[3:]

    def conclude(self, iteration: int, max_iter: int) -> int:
        """After the loop (collective; every rank, after its writers closed): reconcile
        signals that arrived after the last poll, requeue the SLURM job (rank 0) when a
        SIGUSR1 stopped the run early, and agree on the exit status.

        Args:
            iteration: the trainer's ``iter`` after the loop (``max_iter`` when it ran to the
                end, else the iteration it stopped after).
            max_iter: ``train.max_iter``.

        Returns:
            The exit status (see the module's documentation).
        """
        usr1, term = count_each(self._local_flags()[:2])
        finished = iteration + 1 >= max_iter
        if finished:
            if usr1 or term:
                logger.info("a stop signal arrived after the last iteration: nothing to stop")
            return 0
        if not (usr1 or term or self.decision.signalled):
            return 0  # train.stop_at_iter or a request: a deliberate stop
        signum = EXIT_SIGNAL if term else REQUEUE_SIGNAL
        job = os.environ.get("SLURM_JOB_ID")
        if signum == EXIT_SIGNAL:
            logger.warning(f"stopped after iteration {iteration} on SIGTERM (scancel or "
                           f"preemption): not requeueing; resume with --resume")
        elif not (self.requeue and job):
            logger.warning(f"stopped after iteration {iteration} on SIGUSR1 with no requeue "
                           f"({'train.requeue=False' if job else 'no SLURM_JOB_ID'}); resume "
                           f"with --resume")
        else:
            ok = requeue_slurm_job(job) if comm.is_main_process() else False
            if count_each([ok])[0] > 0:
                return 0
        return 128 + int(signum)

    def exit_error(self, status: int, iteration: int) -> TrainingStopped:
        """The exception :func:`~mona_scale.engine.defaults.do_train` raises for a
        non-zero :meth:`conclude` status (logged here: ``SystemExit`` prints nothing).

        Args:
            status: :meth:`conclude`'s status.
            iteration: the iteration the run stopped after.

        Returns:
            A :class:`TrainingStopped` to raise.
        """
        error = TrainingStopped(status, f"training stopped by a signal after iteration "
                                        f"{iteration}, before train.max_iter, and the job was "
                                        f"not requeued (its checkpoint is written)")
        logger.error(str(error))
        return error
