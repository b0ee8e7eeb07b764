"""``train.strategy=ddp``: DistributedDataParallel (or the bare model in one process).

Frozen parameters (``requires_grad=False``) get no gradient bucket and are never
all-reduced; only adapter and head gradients communicate.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from .base import STRATEGIES, Strategy

__all__ = ["DDPStrategy", "DDPOptions", "cpu_sync_batchnorm"]


def cpu_sync_batchnorm(module: nn.Module) -> nn.Module:
    """Replace ``nn.SyncBatchNorm`` (GPU only under DDP) by detectron2's NaiveSyncBatchNorm,
    which synchronises statistics with plain all-reduces and so works on gloo/CPU.

    Args:
        module: a model (changed in place).

    Returns:
        The model.
    """
    from detectron2.layers import NaiveSyncBatchNorm

    for name, child in module.named_children():
        if isinstance(child, nn.SyncBatchNorm):
            naive = NaiveSyncBatchNorm(child.num_features, child.eps, child.momentum,
                                       child.affine, child.track_running_stats)
            naive.load_state_dict(child.state_dict())
            naive.train(child.training)
            naive.requires_grad_(any(p.requires_grad for p in child.parameters()))
            setattr(module, name, naive)
        else:
            cpu_sync_batchnorm(child)
    return module


@dataclass(frozen=True)
class DDPOptions:
    """``train.ddp`` options.

    Attributes:
        find_unused_parameters: for models whose graph skips trainable parameters.
    """

    find_unused_parameters: bool = False


@STRATEGIES.register("ddp")
class DDPStrategy(Strategy):
    """DDP with detectron2's defaults (no buffer broadcast); options: :class:`DDPOptions`."""

    name = "ddp"
    Options = DDPOptions

    def setup(self, model: nn.Module, make_optimizer: Callable[[nn.Module], torch.optim.Optimizer]
              ) -> tuple[nn.Module, torch.optim.Optimizer]:
        if not torch.cuda.is_available():
            model = cpu_sync_batchnorm(model)
        optimizer = make_optimizer(model)
        if torch.distributed.is_initialized() and torch.distributed.get_world_size() > 1:
            device_ids = [torch.cuda.current_device()] if torch.cuda.is_available() else None
            model = DistributedDataParallel(
                model, device_ids=device_ids, broadcast_buffers=False,
                find_unused_parameters=self.options.find_unused_parameters)
        return model, optimizer

    def no_sync(self, model: nn.Module):
        if isinstance(model, DistributedDataParallel):
            return model.no_sync()
        return super().no_sync(model)
