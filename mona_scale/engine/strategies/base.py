"""The strategy interface: how a model is wrapped, stepped and checkpointed.

A strategy owns everything that differs between DDP, FSDP and DeepSpeed: wrapping the
model, building the optimizer over trainable parameters only, backward (with loss scaling),
gradient synchronisation during accumulation, clipping, the optimizer step, and the model /
optimizer state that checkpoints hold. The trainer and the checkpointer only talk to this
interface. The default state handling is ``torch.distributed.checkpoint`` (DCP): sharded
writes by every rank, loadable at another world size.
"""
from __future__ import annotations

import contextlib
import dataclasses
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable

from mona_scale.registry import Registry

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_state_dict,
    set_state_dict,
)

from ..precision import Precision

__all__ = ["Strategy", "STRATEGIES", "NoOptions"]

STRATEGIES: Registry[type[Strategy]] = Registry("train.strategy")


@dataclasses.dataclass(frozen=True)
class NoOptions:
    """The options of a strategy that takes none."""


def _dcp_io(io: Callable, path: str, model: nn.Module,
           optimizer: torch.optim.Optimizer | None) -> dict:
    """``dcp.save`` / ``dcp.load`` of ``{"model", "optimizer"}`` (optimizer state empty
    without one). Every group first gets the ``initial_lr`` LR schedulers resume from, so
    that saved and loading state have the same keys (DCP loads exactly the template's)."""
    for group in optimizer.param_groups if optimizer is not None else []:
        group.setdefault("initial_lr", group["lr"])
    model_state, optim_state = get_state_dict(model, optimizer or [])
    state = {"model": model_state, "optimizer": optim_state}
    with warnings.catch_warnings():  # one process without a group is intended here
        warnings.filterwarnings("ignore", message="torch.distributed is disabled")
        io(state, checkpoint_id=path)
    return state


class Strategy(ABC):
    """Base class of ``train.strategy`` implementations.

    Args:
        precision: the run's :class:`Precision`.
        grad_accum: micro-batches per optimizer step (``train.grad_accum``).
        clip_grad: max global gradient norm, 0 = off (``train.clip_grad``).
        options: strategy-specific options from the config (``train.<name>``), checked
            against :attr:`Options` (unknown keys are refused).
    """

    name = "base"
    #: the frozen dataclass of this strategy's ``train.<name>`` options
    Options: type = NoOptions
    #: evaluation must run the same number of forward passes on every rank (the parameters
    #: are sharded, so every forward is collective)
    collective_forward = False

    def __init__(self, precision: Precision, grad_accum: int = 1, clip_grad: float = 0.0,
                 **options):
        self.precision, self.grad_accum, self.clip_grad = precision, grad_accum, clip_grad
        known = [f.name for f in dataclasses.fields(self.Options)]
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise ValueError(f"unknown option(s) {[f'train.{self.name}.{k}' for k in unknown]}; "
                             f"allowed: {known}")
        self.options = self.Options(**options)

    @abstractmethod
    def setup(self, model: nn.Module, make_optimizer: Callable[[nn.Module], torch.optim.Optimizer]
              ) -> tuple[nn.Module, torch.optim.Optimizer]:
        """Wrap ``model`` and build its optimizer. Returns (wrapped model, optimizer)."""

    def autocast(self):
        """Forward-pass context (mixed precision)."""
        return self.precision.autocast()

    def no_sync(self, model: nn.Module):
        """Context that skips gradient synchronisation (for accumulation micro-steps)."""
        return contextlib.nullcontext()

    def backward(self, loss: torch.Tensor) -> None:
        """Backward of one micro-batch's loss (already divided by ``grad_accum``)."""
        self.precision.scale(loss).backward()

    def grad_norm(self, model: nn.Module, optimizer: torch.optim.Optimizer
                  ) -> torch.Tensor | float | None:
        """After the last backward of a step, before :meth:`apply_step`: unscale (fp16), take
        the global gradient norm over the optimizer's parameters and clip to ``clip_grad``
        (when set). Queues device work only; nothing is copied to the host.

        Args:
            model: the wrapped model.
            optimizer: its optimizer.

        Returns:
            The global gradient norm before clipping, a device tensor (the trainer checks it
            with the losses, in the step's one host copy), or None for no gradients.
        """
        self.precision.unscale_(optimizer)
        params = [p for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
        if not params:
            return None
        if self.clip_grad > 0:
            norm = torch.nn.utils.clip_grad_norm_(params, self.clip_grad)
        else:
            norm = torch.nn.utils.get_total_norm([p.grad for p in params])
        return norm.full_tensor() if hasattr(norm, "full_tensor") else norm

    def apply_step(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        """The optimizer step (fp16: skipped by the scaler on inf/NaN gradients), then zero
        the gradients. Called only when the trainer found the step's losses and gradient
        norm finite on every rank (fp16: its loss).

        Args:
            model: the wrapped model.
            optimizer: its optimizer.
        """
        self.precision.step(optimizer)
        optimizer.zero_grad(set_to_none=True)

    @property
    def checks_grad_norm(self) -> bool:
        """Whether a non-finite :meth:`grad_norm` must stop the run. Not under fp16 loss
        scaling, where an overflow is expected now and then: the scaler skips that step and
        lowers the scale."""
        return not self.precision.scaler.is_enabled()

    def step(self, model: nn.Module, optimizer: torch.optim.Optimizer
             ) -> torch.Tensor | float | None:
        """:meth:`grad_norm` then :meth:`apply_step`, with no finiteness check.

        Returns:
            The global gradient norm before clipping.
        """
        norm = self.grad_norm(model, optimizer)
        self.apply_step(model, optimizer)
        return norm

    # --- checkpoint state -------------------------------------------------------------
    def save_state(self, path: str, model: nn.Module, optimizer: torch.optim.Optimizer
                   ) -> None:
        """Write model and optimizer state into directory ``path`` (collective)."""
        _dcp_io(dcp.save, path, model, optimizer)

    def load_state(self, path: str, model: nn.Module, optimizer: torch.optim.Optimizer | None
                   ) -> None:
        """Read what :meth:`save_state` wrote, at any world size (collective)."""
        state = _dcp_io(dcp.load, path, model, optimizer)
        set_state_dict(model, optimizer or [], model_state_dict=state["model"],
                       optim_state_dict=state["optimizer"])

    def full_state_dict(self, model: nn.Module) -> dict[str, torch.Tensor] | None:
        """The whole model's unsharded weights on CPU, on rank 0 (None elsewhere);
        collective."""
        state = get_model_state_dict(
            model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        return state if not dist.is_initialized() or dist.get_rank() == 0 else None

    def close(self) -> None:
        """Release what :meth:`setup` registered outside the model (hooks held by C++,
        which the garbage collector cannot free), so the wrapped model and the process
        groups it holds can be freed once the run drops them. Nothing by default."""
        return None
