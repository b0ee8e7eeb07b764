"""The training loop: detectron2's TrainerBase + hooks, stepping through a Strategy.

One iteration is one optimizer step over ``grad_accum`` micro-batches. Loss terms are summed
on the device; after the last backward the gradient norm is taken (and clipped), and the
loss terms and the norm are copied to the host once, the step's only synchronisation
(DeepSpeed's and fp16's ``GradScaler`` add their own), for the logged metrics and the
finiteness check together. Then one host-side collective counts, over all ranks, non-finite
values and pending stop requests (:class:`~mona_scale.engine.stopping.StopControl`). A
non-finite loss or gradient norm on any rank raises ``FloatingPointError`` on every rank,
naming the iteration and this rank's values, before the optimizer step is applied and before
the iteration's hooks run: no checkpoint is written after it. A stop decision (signal,
``train.stop_at_iter``, :meth:`StrategyTrainer.request_stop`) ends the loop after the
iteration's hooks, which save a checkpoint first (``trainer.stop_requested`` is the
decision). ``fp16`` loss scaling is the exception for the gradient norm: an overflow there
is the scaler's business (it skips the step and lowers the scale).
"""
from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Iterable, Mapping

from mona_scale import collectives

import numpy as np
import torch
from detectron2.engine import TrainerBase
from detectron2.utils import comm
from detectron2.utils.events import EventStorage, get_event_storage
from torch import nn

from .stopping import StopControl
from .strategies import Strategy

__all__ = ["StrategyTrainer"]


class StrategyTrainer(TrainerBase):
    """detectron2's ``TrainerBase`` whose step runs through a parallelism strategy (DDP,
    FSDP or DeepSpeed): gradient accumulation, clipping, the finiteness check and the stop
    decision, for detectron2-style models (list-of-dict inputs, loss dict outputs).

    Args:
        model: the wrapped model (from ``strategy.setup``).
        data_loader: an iterable of batches; to resume a run it also needs
            ``state_dict()`` / ``load_state_dict()`` (its position, which the checkpoint
            saves), as :class:`~mona_scale.data.loader.ResumableTrainLoader` has.
        optimizer: the optimizer (from ``strategy.setup``).
        strategy: the :class:`~mona_scale.engine.strategies.Strategy` (it holds
            ``grad_accum`` and ``clip_grad``).
        stopping: where stop requests are recorded and decided (default: one with no
            signal handlers installed and no ``stop_at_iter``).
    """

    def __init__(self, model: nn.Module, data_loader: Iterable, optimizer: torch.optim.Optimizer,
                 strategy: Strategy, stopping: StopControl | None = None):
        super().__init__()
        if strategy.grad_accum < 1:
            raise ValueError(f"train.grad_accum must be >= 1, got {strategy.grad_accum}")
        self.model, self.data_loader, self.optimizer = model, data_loader, optimizer
        self.strategy, self.grad_accum = strategy, strategy.grad_accum
        self._data_loader_iter_obj = None
        self.stopping = stopping if stopping is not None else StopControl()

    @property
    def stop_requested(self) -> bool:
        """The collective decision of this iteration's poll: the loop ends after this
        iteration's hooks (the checkpoint hook saves when it is true)."""
        return self.stopping.decision.stop

    def request_stop(self) -> None:
        """Ask for a checkpointed stop; every rank stops after the next step (the request
        is counted in that step's collective decision)."""
        self.stopping.request()

    @property
    def _data_loader_iter(self):
        # created at the first step: a resumed run's checkpoint has restored the loader's
        # state (its position) by then
        if self._data_loader_iter_obj is None:
            self._data_loader_iter_obj = iter(self.data_loader)
        return self._data_loader_iter_obj

    def train(self, start_iter: int, max_iter: int) -> None:
        """detectron2's loop, which also ends after an iteration for which the ranks decided
        to stop (``self.iter`` is then that iteration; it is ``max_iter`` after a full run).
        A stop decision only ends the loop after the iteration's hooks (its checkpoint)."""
        logger = logging.getLogger(__name__)
        logger.info(f"Starting training from iteration {start_iter}")
        self.iter = self.start_iter = start_iter
        self.max_iter = max_iter
        with EventStorage(start_iter) as self.storage:
            try:
                self.before_train()
                for self.iter in range(start_iter, max_iter):
                    self.before_step()
                    self.run_step()
                    self.after_step()
                    if self.stopping.decision.stop:
                        logger.info(f"stopped after iteration {self.iter}: "
                                    f"{self.stopping.decision.describe()}")
                        break
                else:
                    self.iter += 1
            except Exception:
                logger.exception("Exception during training:")
                raise
            finally:
                self.after_train()

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
                if isinstance(loss_dict, torch.Tensor):
                    loss_dict = {"total_loss": loss_dict}
                if not isinstance(loss_dict, Mapping) or not loss_dict:
                    raise TypeError(f"model(batch) in training must return a dict of losses, "
                                    f"got {type(loss_dict).__name__}")
                self.strategy.backward(sum(loss_dict.values()) / self.grad_accum)
            for k, v in loss_dict.items():  # on the device: no synchronisation
                term = v.detach().float().reshape(()) / self.grad_accum
                loss_sums[k] = loss_sums[k] + term if k in loss_sums else term
        norm = self.strategy.grad_norm(self.model, self.optimizer)
        metrics = self._finite_metrics(loss_sums, norm)  # also decides whether to stop
        self.strategy.apply_step(self.model, self.optimizer)
        self._write_metrics(metrics, data_time)

    def _finite_metrics(self, loss_sums: Mapping[str, torch.Tensor],
                        norm: torch.Tensor | float | None) -> dict[str, float]:
        """The step's loss terms (and gradient norm) as floats, in one device-to-host copy,
        and the step's one control collective: it counts non-finite values and takes the
        stop decision. Raises ``FloatingPointError`` on every rank when a loss term (or,
        without fp16 loss scaling, the gradient norm) is not finite on any."""
        values = list(loss_sums.values())
        if isinstance(norm, torch.Tensor):
            values.append(norm.detach().float().reshape(()).to(values[0].device))
        host = torch.stack(values).cpu().tolist()
        terms = dict(zip(loss_sums, host, strict=False))
        grad_norm = (host[-1] if isinstance(norm, torch.Tensor)
                     else None if norm is None else float(norm))
        bad_loss = not all(math.isfinite(v) for v in terms.values())
        bad_norm = (grad_norm is not None and self.strategy.checks_grad_norm
                    and not math.isfinite(grad_norm))
        losses, norms = self.stopping.poll(self.iter, bad_loss, bad_norm)
        if losses or norms:
            what = "loss" if losses else "gradient norm"
            raise FloatingPointError(
                f"{what} became non-finite at iteration {self.iter} (on {losses or norms} "
                f"rank(s)); this rank's loss terms: {terms}, gradient norm: {grad_norm}. "
                f"Training stopped before this step was applied; the last checkpoint written "
                f"before this iteration is intact.")
        if grad_norm is not None:
            terms["grad_norm"] = grad_norm
        return terms

    def _write_metrics(self, metrics: dict[str, float], data_time: float) -> None:
        metrics["data_time"] = data_time
        gathered = collectives.gather_objects(metrics)
        if not comm.is_main_process():
            return
        # metrics.json gets each iteration's own values (the console printer smooths)
        storage = get_event_storage()
        storage.put_scalar("data_time", max(m.pop("data_time") for m in gathered),
                           smoothing_hint=False)
        averaged = {k: float(np.mean([m[k] for m in gathered])) for k in gathered[0]}
        averaged["total_loss"] = sum(v for k, v in averaged.items() if k != "grad_norm")
        storage.put_scalars(**averaged, smoothing_hint=False)

    def state_dict(self) -> dict:
        state = super().state_dict()
        state["precision"] = self.strategy.precision.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.strategy.precision.load_state_dict(state.get("precision", {}))
