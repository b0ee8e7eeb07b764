"""Weights & Biases logging as a detectron2 EventWriter (rank 0 only).

Every scalar in the event storage (losses, lr, timings, evaluation results such as
``bbox/AP``) is logged at its iteration; the resolved config is the run's config. Without
an API key the run is offline (files under ``<output_dir>/wandb``). The run id is kept in
``<output_dir>/wandb_run_id`` so a resumed or requeued job continues the same run.
"""
from __future__ import annotations

import os
import secrets

from detectron2.utils.events import EventWriter, get_event_storage

__all__ = ["WandbWriter", "wandb_mode"]

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
        config: the resolved config as a plain dict.
        project: wandb project.
        name: run name (default: the output directory's name).
        mode: ``auto``, ``online``, ``offline`` or ``disabled``.
    """

    def __init__(self, output_dir: str, config: dict, project: str = "mona_scale",
                 name: str = "", mode: str = "auto"):
        import wandb

        os.makedirs(output_dir, exist_ok=True)
        id_file = os.path.join(output_dir, RUN_ID_FILE)
        run_id = secrets.token_hex(6)
        if os.path.exists(id_file):
            with open(id_file) as f:
                run_id = f.read().strip()
        name = name or os.path.basename(os.path.normpath(output_dir))
        self.run = wandb.init(project=project, name=name, id=run_id, resume="allow",
                              dir=output_dir, config=config, mode=wandb_mode(mode))
        with open(id_file, "w") as f:
            f.write(run_id)
        self._last_iter = -1

    def write(self) -> None:
        storage = get_event_storage()
        by_iter: dict[int, dict[str, float]] = {}
        for key, (value, iteration) in storage.latest().items():
            if iteration > self._last_iter:
                by_iter.setdefault(iteration, {})[key] = value
        for iteration in sorted(by_iter):
            self.run.log(by_iter[iteration], step=iteration)
        if by_iter:
            self._last_iter = max(by_iter)

    def close(self) -> None:
        self.run.finish()
