"""``train.strategy=fsdp``: FSDP2 (``fully_shard``) per Swin block and per head.

Trainable parameters (adapters, heads) are sharded across ranks, with their gradients and
optimizer state. Frozen parameters are either replicated (``shard_frozen=False``, the
default: a frozen Swin-B/L fits every GPU, and replicated weights need no all-gather) or
sharded too (``shard_frozen=True``, for backbones that do not fit one device). Frozen
weights never get gradients, so they never communicate gradients either way.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable

from mona_scale.backbones.swin import SwinBlock

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

from .base import STRATEGIES, Strategy
from .ddp import cpu_sync_batchnorm

__all__ = ["FSDPStrategy", "shard_units"]


def shard_units(model: nn.Module) -> list[nn.Module]:
    """The modules that become FSDP units below the root: every Swin block, and every
    direct child of the model that holds trainable parameters but no Swin block (the
    heads: FPN / RPN / ROI heads, UperNet, classifier)."""
    blocks = [m for m in model.modules() if isinstance(m, SwinBlock)]
    heads = [child for child in model.children()
             if not any(isinstance(m, SwinBlock) for m in child.modules())
             and any(p.requires_grad for p in child.parameters())]
    return blocks + heads


@STRATEGIES.register("fsdp")
class FSDPStrategy(Strategy):
    """FSDP2 over one data-parallel mesh of all ranks.

    Options:
        reshard_after_forward: free unsharded parameters after forward (saves memory,
            costs an all-gather in backward).
        per_block: one FSDP unit per Swin block and head (default; bounds the unsharded
            memory to one block) or, when False, a single unit for the whole model: one
            all-gather and one reduce-scatter per step, the fastest choice when only small
            adapters are sharded.
        shard_frozen: shard frozen parameters too (default: replicate them).
        param_dtype / reduce_dtype: FSDP mixed-precision policy ("bf16", "fp16", "fp32";
            empty = the parameters' own dtype). Independent of ``train.precision``'s
            autocast.

    ``train.precision=fp16`` uses torch's ``GradScaler`` as is: gradients are DTensor shards,
    and DTensor reduces the scaler's inf/NaN check over the mesh, so every rank skips the
    same steps and keeps the same scale.
    """

    name = "fsdp"
    collective_forward = True
    DTYPES = {"": None, "fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}

    def check_options(self) -> None:
        for key in ("param_dtype", "reduce_dtype"):
            if self.options.get(key, "") not in self.DTYPES:
                raise ValueError(f"train.fsdp.{key}={self.options[key]!r} is not one of "
                                 f"{list(self.DTYPES)}")

    def setup(self, model: nn.Module, make_optimizer: Callable[[nn.Module], torch.optim.Optimizer]
              ) -> tuple[nn.Module, torch.optim.Optimizer]:
        self.check_options()
        if not torch.cuda.is_available():
            model = cpu_sync_batchnorm(model)
        world = dist.get_world_size() if dist.is_initialized() else 1
        mesh = init_device_mesh("cuda" if torch.cuda.is_available() else "cpu", (world,))
        policy = MixedPrecisionPolicy(param_dtype=self.DTYPES[self.options.get("param_dtype", "")],
                                      reduce_dtype=self.DTYPES[self.options.get("reduce_dtype",
                                                                                "")])
        frozen = set() if self.options.get("shard_frozen", False) else {
            p for p in model.parameters() if not p.requires_grad}
        reshard = bool(self.options.get("reshard_after_forward", True))
        units = shard_units(model) if self.options.get("per_block", True) else []
        for unit in units:
            fully_shard(unit, mesh=mesh, reshard_after_forward=reshard, mp_policy=policy,
                        ignored_params=frozen & set(unit.parameters()) or None)
        fully_shard(model, mesh=mesh, reshard_after_forward=reshard, mp_policy=policy,
                    ignored_params=frozen or None)
        return model, make_optimizer(model)

    def unwrap(self, model: nn.Module) -> nn.Module:
        return model  # fully_shard works in place

    @contextlib.contextmanager
    def no_sync(self, model: nn.Module):
        model.set_requires_gradient_sync(False)
        try:
            yield
        finally:
            model.set_requires_gradient_sync(True)
