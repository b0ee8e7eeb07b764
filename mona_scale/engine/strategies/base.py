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
from collections.abc import Callable, Mapping

from mona_scale.registry import Registry

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_state_dict,
    set_model_state_dict,
    set_state_dict,
)

from ..precision import Precision

__all__ = ["Strategy", "STRATEGIES", "NoOptions", "parse_options"]

STRATEGIES: Registry[type[Strategy]] = Registry("train.strategy")


@dataclasses.dataclass(frozen=True)
class NoOptions:
    """The options of a strategy that takes none."""


def parse_options(cls: type, section: str, options: Mapping) -> object:
    """Build a strategy's frozen options dataclass from its config section.

    Args:
        cls: the dataclass (e.g. :class:`~mona_scale.engine.strategies.fsdp.FSDPOptions`).
        section: the config key of the section, e.g. ``train.fsdp`` (for error messages).
        options: the section's keys and values.

    Returns:
        An instance of ``cls``; ``ValueError`` naming every unknown key and the allowed ones.
    """
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ValueError(f"unknown option(s) {[f'{section}.{k}' for k in unknown]}; "
                         f"allowed: {known}")
    return cls(**options)


@contextlib.contextmanager
def _single_process_is_fine():
    """DCP warns that it assumes one process when there is no process group: that is the
    intended use here (one-process runs and resharding to one process)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.distributed is disabled")
        yield


def _with_initial_lr(optimizer: torch.optim.Optimizer) -> None:
    """Give every group the ``initial_lr`` LR schedulers resume from, so that saved and
    loading state dicts have the same keys (DCP loads exactly the template's keys)."""
    for group in optimizer.param_groups:
        group.setdefault("initial_lr", group["lr"])


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
        self.options = parse_options(self.Options, f"train.{self.name}", options)
        self.check_options()

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
        return self.precision.scaler is None

    def step(self, model: nn.Module, optimizer: torch.optim.Optimizer
             ) -> torch.Tensor | float | None:
        """:meth:`grad_norm` then :meth:`apply_step`, with no finiteness check.

        Returns:
            The global gradient norm before clipping.
        """
        norm = self.grad_norm(model, optimizer)
        self.apply_step(model, optimizer)
        return norm

    def check_options(self) -> None:
        """Raise ``ValueError`` naming options that cannot work with the run's precision
        (none here; each options dataclass checks its own values)."""
        return None

    # --- checkpoint state -------------------------------------------------------------
    def save_state(self, path: str, model: nn.Module, optimizer: torch.optim.Optimizer
                   ) -> None:
        """Write model and optimizer state into directory ``path`` (collective)."""
        _with_initial_lr(optimizer)
        model_state, optim_state = get_state_dict(model, optimizer)
        with _single_process_is_fine():
            dcp.save({"model": model_state, "optimizer": optim_state}, checkpoint_id=path)

    def load_state(self, path: str, model: nn.Module, optimizer: torch.optim.Optimizer | None
                   ) -> None:
        """Read what :meth:`save_state` wrote, at any world size (collective)."""
        if optimizer is None:
            state = {"model": get_model_state_dict(model)}
            with _single_process_is_fine():
                dcp.load(state, checkpoint_id=path)
            set_model_state_dict(model, state["model"])
            return
        _with_initial_lr(optimizer)
        model_state, optim_state = get_state_dict(model, optimizer)
        state = {"model": model_state, "optimizer": optim_state}
        with _single_process_is_fine():
            dcp.load(state, checkpoint_id=path)
        set_state_dict(model, optimizer, model_state_dict=state["model"],
                       optim_state_dict=state["optimizer"])

    def full_state_dict(self, model: nn.Module) -> dict[str, torch.Tensor] | None:
        """The whole model's unsharded weights on CPU, on rank 0 (None elsewhere);
        collective."""
        state = get_model_state_dict(
            model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        rank = dist.get_rank() if dist.is_initialized() else 0
        return state if rank == 0 else None
