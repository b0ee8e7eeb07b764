"""A one-weight model trained by the real trainer, strategy and checkpointer (CPU, no
detectron2 model), for checkpoint-safety tests that need many quick saves and resumes."""
from __future__ import annotations

from mona_scale.data.loader import build_train_loader
from mona_scale.engine.checkpoint import PeriodicCheckpointHook, TrainingCheckpointer
from mona_scale.engine.precision import Precision
from mona_scale.engine.strategies import build_strategy
from mona_scale.engine.trainer import StrategyTrainer

import torch
from torch import nn


class OnesModel(nn.Module):
    """Loss = sum(weight * batch) over a 3-vector weight that starts at ones."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(3))

    def forward(self, batch):
        return {"loss": (self.weight * torch.stack(batch)).sum()}


def ones_loader():
    """Endless batches of ones, from a loader whose position a checkpoint can restore."""
    return build_train_loader([{}], mapper=lambda _: torch.ones(3), total_batch_size=1,
                              seed=0, aspect_ratio_grouping=False)


def tiny_trainer(out, period: int = 1, keep: int = 2, precision: str = "fp32"
                 ) -> tuple[StrategyTrainer, TrainingCheckpointer]:
    """A ddp-strategy trainer of :class:`OnesModel` (SGD, lr 0.1) checkpointing into ``out``.

    Args:
        out: the output directory.
        period: checkpoint every ``period`` iterations.
        keep: checkpoints to keep (0: all).
        precision: ``train.precision``.

    Returns:
        (trainer, checkpointer).
    """
    strategy = build_strategy("ddp", Precision(precision))
    model, optimizer = strategy.setup(OnesModel(),
                                      lambda m: torch.optim.SGD(m.parameters(), 0.1))
    trainer = StrategyTrainer(model, ones_loader(), optimizer, strategy)
    checkpointer = TrainingCheckpointer(str(out), strategy, model, optimizer, trainer)
    trainer.register_hooks([PeriodicCheckpointHook(checkpointer, period, max_to_keep=keep)])
    return trainer, checkpointer
