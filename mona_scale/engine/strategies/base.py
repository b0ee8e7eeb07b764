"""The strategy interface: how a model is wrapped, stepped and checkpointed.

A strategy owns everything that differs between DDP, FSDP and DeepSpeed: wrapping the
model, building the optimizer over trainable parameters only, backward (with loss scaling),
gradient synchronisation during accumulation, clipping, the optimizer step, and the model /
optimizer state that checkpoints hold. The trainer only talks to this interface.
"""
from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Callable

from mona_scale.registry import Registry

import torch
from torch import nn

from ..precision import Precision

__all__ = ["Strategy", "STRATEGIES"]

STRATEGIES: Registry[type[Strategy]] = Registry("train.strategy")


class Strategy(ABC):
    """Base class of ``train.strategy`` implementations.

    Args:
        precision: the run's :class:`Precision`.
        options: strategy-specific options from the config (``train.<strategy>``).
    """

    name = "base"

    def __init__(self, precision: Precision, **options):
        self.precision = precision
        self.options = options

    @abstractmethod
    def setup(self, model: nn.Module, make_optimizer: Callable[[nn.Module], torch.optim.Optimizer]
              ) -> tuple[nn.Module, torch.optim.Optimizer]:
        """Wrap ``model`` and build its optimizer. Returns (wrapped model, optimizer)."""

    def unwrap(self, model: nn.Module) -> nn.Module:
        """The user's model inside the wrapper."""
        return getattr(model, "module", model)

    def autocast(self):
        """Forward-pass context (mixed precision)."""
        return self.precision.autocast()

    def no_sync(self, model: nn.Module):
        """Context that skips gradient synchronisation (for accumulation micro-steps)."""
        return contextlib.nullcontext()

    def backward(self, loss: torch.Tensor) -> None:
        """Backward of the (scaled) loss."""
        self.precision.scale(loss).backward()

    def clip_grad_norm(self, model: nn.Module, optimizer: torch.optim.Optimizer,
                       max_norm: float) -> torch.Tensor:
        """Unscale, then clip the global gradient norm; returns the norm before clipping."""
        self.precision.unscale_(optimizer)
        params = [p for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
        return torch.nn.utils.clip_grad_norm_(params, max_norm)

    def step(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        """Optimizer step and zeroing of gradients."""
        self.precision.step(optimizer)
        optimizer.zero_grad(set_to_none=True)

    def check_options(self, train_cfg) -> None:
        """Raise ``ValueError`` for options incompatible with this strategy (none here)."""
        return None
