"""The training loop: detectron2's TrainerBase + hooks, stepping through a Strategy.

One iteration is one optimizer step over ``grad_accum`` micro-batches. A non-finite loss
stops the run before its backward pass with a ``FloatingPointError`` naming the iteration
and the loss terms (collectively: every rank stops at the same iteration, so none hangs),
and no checkpoint is written after it.
"""
from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Mapping

import numpy as np
import torch
import torch.distributed as dist
from detectron2.engine import TrainerBase
from detectron2.utils import comm
from detectron2.utils.events import get_event_storage
from torch import nn

from .strategies import Strategy

__all__ = ["MonaTrainer"]


class MonaTrainer(TrainerBase):
    """Trainer for detectron2-style models (list-of-dict inputs, loss dict outputs).

    Args:
        model: the wrapped model (from ``strategy.setup``).
        data_loader: an iterable of batches.
        optimizer: the optimizer (from ``strategy.setup``).
        strategy: the :class:`~mona_scale.engine.strategies.Strategy`.
        grad_accum: micro-batches per optimizer step.
        clip_grad: max global gradient norm (0 = no clipping).
    """

    def __init__(self, model: nn.Module, data_loader: Iterable, optimizer: torch.optim.Optimizer,
                 strategy: Strategy, grad_accum: int = 1, clip_grad: float = 0.0):
        super().__init__()
        if grad_accum < 1:
            raise ValueError(f"train.grad_accum must be >= 1, got {grad_accum}")
        self.model, self.data_loader, self.optimizer = model, data_loader, optimizer
        self.strategy, self.grad_accum, self.clip_grad = strategy, grad_accum, clip_grad
        self._data_loader_iter_obj = None

    @property
    def _data_loader_iter(self):
        if self._data_loader_iter_obj is None:
            self._data_loader_iter_obj = iter(self.data_loader)
        return self._data_loader_iter_obj

    def run_step(self) -> None:
        self.model.train()
        data_time, loss_sums = 0.0, {}
        for micro in range(self.grad_accum):
            start = time.perf_counter()
            data = next(self._data_loader_iter)
            data_time += time.perf_counter() - start
            last = micro == self.grad_accum - 1
            sync = contextlib.nullcontext() if last else self.strategy.no_sync(self.model)
            with sync:
                with self.strategy.autocast():
                    loss_dict = self.model(data)
                loss_dict = _as_loss_dict(loss_dict)
                losses = sum(loss_dict.values())
                self._raise_if_not_finite(losses, loss_dict)
                self.strategy.backward(losses / self.grad_accum)
            for k, v in loss_dict.items():
                loss_sums[k] = loss_sums.get(k, 0.0) + v.detach().float().item() / self.grad_accum
        metrics = dict(loss_sums)
        if self.clip_grad > 0:
            norm = self.strategy.clip_grad_norm(self.model, self.optimizer, self.clip_grad)
            metrics["grad_norm"] = float(norm)
        self.strategy.step(self.model, self.optimizer)
        self._write_metrics(metrics, data_time)

    def _raise_if_not_finite(self, losses: torch.Tensor, loss_dict: Mapping) -> None:
        bad = torch.tensor([0.0 if torch.isfinite(losses) else 1.0])
        if dist.is_initialized() and dist.get_world_size() > 1:
            dist.all_reduce(bad)
        if bad.item() > 0:
            terms = {k: float(v.detach()) for k, v in loss_dict.items()}
            raise FloatingPointError(
                f"loss became non-finite at iteration {self.iter} (on {int(bad.item())} "
                f"rank(s)); this rank's loss terms: {terms}. Training stopped; the last "
                f"checkpoint written before this iteration is intact.")

    def _write_metrics(self, metrics: dict[str, float], data_time: float) -> None:
        metrics["data_time"] = data_time
        gathered = comm.gather(metrics)
        if not comm.is_main_process():
            return
        storage = get_event_storage()
        storage.put_scalar("data_time", max(m.pop("data_time") for m in gathered))
        averaged = {k: float(np.mean([m[k] for m in gathered])) for k in gathered[0]}
        grad_norm = averaged.pop("grad_norm", None)
        storage.put_scalar("total_loss", sum(averaged.values()))
        storage.put_scalars(**averaged)
        if grad_norm is not None:
            storage.put_scalar("grad_norm", grad_norm)

    def state_dict(self) -> dict:
        state = super().state_dict()
        state["precision"] = self.strategy.precision.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.strategy.precision.load_state_dict(state.get("precision", {}))


def _as_loss_dict(output) -> dict[str, torch.Tensor]:
    if isinstance(output, torch.Tensor):
        return {"total_loss": output}
    if not isinstance(output, Mapping) or not output:
        raise TypeError(f"model(batch) in training must return a dict of losses, got "
                        f"{type(output).__name__}")
    return dict(output)

