"""Weights & Biases logging as a detectron2 EventWriter (rank 0 only).

Every scalar in the event storage (losses, lr, timings, evaluation results such as
``bbox/AP``) is logged at its iteration; the resolved config, with secrets redacted, is the
run's config. Without an API key the run is offline (files under ``<output_dir>/wandb``).
The run id is kept in ``<output_dir>/wandb_run_id`` so a resumed or requeued job continues
the same run: it rewinds the run to the restored iteration (``resume_from``), so that the
iterations a crashed job logged after its last checkpoint are replaced, not duplicated.

wandb is an observer: a failure of ``wandb.init`` or of a ``log`` call is logged as a
warning and training continues without it.
"""
from __future__ import annotations

import logging
import os
import secrets

from mona_scale.atomic_io import atomic_write
from mona_scale.redact import redact

from detectron2.utils.events import EventWriter, get_event_storage

__all__ = ["WandbWriter", "wandb_mode"]

logger = logging.getLogger(__name__)

RUN_ID_FILE = "wandb_run_id"
MODES = ("auto", "online", "offline", "disabled")


def wandb_mode(mode: str) -> str:
    """``auto``: online with an API key (``WANDB_API_KEY``), otherwise offline.

    ``WANDB_MODE`` in the environment wins over the config, as in wandb itself.
    """
    if mode not in MODES:
        raise ValueError(f"train.wandb.mode={mode!r} is not one of {list(MODES)}")
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    if mode == "auto":
        return "online" if os.environ.get("WANDB_API_KEY") else "offline"
    return mode


class WandbWriter(EventWriter):
    """Log the event storage's scalars to wandb.

    Args:
        output_dir: the run's output directory (wandb files and the run id live there).
        config: the resolved config as a plain dict (secrets are redacted before logging).
        project: wandb project.
        name: run name (default: the output directory's name).
        mode: ``auto``, ``online``, ``offline`` or ``disabled``.
        resume_iteration: the iteration a resumed run restored (its checkpoint's): the wandb
            run of ``wandb_run_id`` is rewound to it, and rows after it are dropped. None:
            a new run (or, with an existing ``wandb_run_id``, continue it as it is).
    """

    def __init__(self, output_dir: str, config: dict, project: str = "mona_scale",
                 name: str = "", mode: str = "auto", resume_iteration: int | None = None):
        self.run = None
        self._last_iter = -1 if resume_iteration is None else resume_iteration
        self._failures = 0
        os.makedirs(output_dir, exist_ok=True)
        id_file = os.path.join(output_dir, RUN_ID_FILE)
        run_id, existing = secrets.token_hex(6), False
        if os.path.exists(id_file):
            with open(id_file) as f:
                run_id, existing = f.read().strip() or run_id, True
        options = dict(project=project, name=name or os.path.basename(os.path.normpath(
            output_dir)), id=run_id, dir=output_dir, config=redact(config),
            mode=wandb_mode(mode))
        attempts = [dict(resume="allow")]
        if existing and resume_iteration is not None:  # rewind: drop rows past the checkpoint
            attempts.insert(0, dict(resume_from=f"{run_id}?_step={resume_iteration}"))
        for attempt in attempts:
            try:
                import wandb

                self.run = wandb.init(**options, **attempt)
                break
            except Exception as e:  # noqa: BLE001 - wandb must never stop training
                logger.warning(f"wandb.init({', '.join(f'{k}={v!r}' for k, v in attempt.items())})"
                               f" failed ({type(e).__name__}: {e}); "
                               + ("retrying without the rewind" if attempt is not attempts[-1]
                                  else "training continues without wandb logging"))
        if self.run is not None:
            with atomic_write(id_file) as f:
                f.write(run_id)

    def write(self) -> None:
        if self.run is None:
            return
        storage = get_event_storage()
        by_iter: dict[int, dict[str, float]] = {}
        for key, (value, iteration) in storage.latest().items():
            if iteration > self._last_iter:
                by_iter.setdefault(iteration, {})[key] = value
        for iteration in sorted(by_iter):
            try:
                self.run.log(by_iter[iteration], step=iteration)
            except Exception as e:  # noqa: BLE001 - wandb must never stop training
                self._failures += 1
                if self._failures == 1 or self._failures % 100 == 0:
                    logger.warning(f"wandb could not log iteration {iteration} ({type(e).__name__}"
                                   f": {e}); training continues ({self._failures} failed "
                                   f"log call(s) so far)")
        if by_iter:
            self._last_iter = max(by_iter)

    def close(self) -> None:
        if self.run is None:
            return
        try:
            self.run.finish()
        except Exception as e:  # noqa: BLE001
            logger.warning(f"wandb could not finish the run ({type(e).__name__}: {e})")
