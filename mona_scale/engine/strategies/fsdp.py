"""``train.strategy=fsdp``: FSDP2 (``fully_shard``) with units grouped by parameter bytes.

Trainable parameters (adapters, heads) are sharded across ranks, with their gradients and
optimizer state. Frozen parameters are either replicated (``shard_frozen=False``, the
default: a frozen Swin-B/L fits every GPU, and replicated weights need no all-gather) or
sharded too (``shard_frozen=True``, for backbones that do not fit one device). Frozen
weights never get gradients, so they never communicate gradients either way.

Each FSDP unit costs one all-gather in forward, one more in backward (when it reshards
after forward) and one reduce-scatter per step. A backbone's blocks (found through the
:class:`~mona_scale.engine.model_protocol.ShardableBackbone` protocol, never by class) carry
only small adapters when the backbone is frozen, so one unit per block issues many tiny
collectives. By default consecutive candidate units (the backbone's blocks in forward order,
then the heads) are therefore merged into one unit until it holds ``unit_mb`` MiB of
sharded parameters, as DDP merges gradients into buckets.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

from ..model_protocol import find_shardable
from ..precision import DTYPES, parse_dtype
from .base import STRATEGIES, Strategy
from .ddp import cpu_sync_batchnorm

__all__ = ["FSDPStrategy", "FSDPOptions", "candidate_units", "group_units", "fsdp_units"]


@dataclass(frozen=True)
class FSDPOptions:
    """``train.fsdp`` options.

    Attributes:
        reshard_after_forward: free unsharded parameters after forward (saves memory,
            costs an all-gather in backward).
        shard_frozen: shard frozen parameters too (default: replicate them).
        per_block: None (default): candidate units merged up to ``unit_mb`` each; True: one
            unit per backbone block and per head (bounds the unsharded memory to one block,
            most collectives); False: a single unit for the whole model (one all-gather and
            one reduce-scatter per step).
        unit_mb: MiB of sharded parameters per grouped unit (``per_block=None``); trainable
            parameters only, frozen ones too under ``shard_frozen``.
        param_dtype / reduce_dtype: FSDP mixed-precision policy ("bf16", "fp16", "fp32";
            "" = the parameters' own dtype). Independent of ``train.precision``'s autocast.
    """

    reshard_after_forward: bool = True
    shard_frozen: bool = False
    per_block: bool | None = None
    unit_mb: float = 25.0
    param_dtype: str = ""
    reduce_dtype: str = ""

    def __post_init__(self) -> None:
        for key in ("param_dtype", "reduce_dtype"):
            if getattr(self, key):
                parse_dtype(getattr(self, key), f"train.fsdp.{key}")
        if not self.unit_mb > 0:
            raise ValueError(f"train.fsdp.unit_mb={self.unit_mb!r} must be > 0")
        if self.per_block not in (None, True, False):
            raise ValueError(f"train.fsdp.per_block={self.per_block!r} must be null (grouped "
                             f"by unit_mb), true (one unit per block) or false (one unit)")

    def policy(self) -> MixedPrecisionPolicy:
        """The FSDP mixed-precision policy of ``param_dtype`` / ``reduce_dtype``."""
        return MixedPrecisionPolicy(param_dtype=DTYPES.get(self.param_dtype),
                                    reduce_dtype=DTYPES.get(self.reduce_dtype))


def candidate_units(model: nn.Module) -> list[nn.Module]:
    """The modules that may become FSDP units below the root, in forward order: every
    block of every :class:`~mona_scale.engine.model_protocol.ShardableBackbone` in the
    model, then every direct child of the model that holds trainable parameters but no
    such backbone (the heads: FPN / RPN / ROI heads, UperNet, classifier).

    Args:
        model: any model.

    Returns:
        The modules (disjoint).
    """
    backbones = find_shardable(model)
    inside = {id(m) for b in backbones for m in b.modules()}
    blocks = [block for b in backbones for block in b.shard_units()]
    heads = [child for child in model.children()
             if not any(id(m) in inside for m in child.modules())
             and any(p.requires_grad for p in child.parameters())]
    return blocks + heads


def group_units(units: Iterable[nn.Module], nbytes: Callable[[nn.Module], int],
                cap_bytes: float) -> list[list[nn.Module]]:
    """Merge consecutive units into groups of at least ``cap_bytes`` (the last may hold
    less), as DDP fills gradient buckets; units of 0 bytes are left out.

    Args:
        units: candidate units in forward order.
        nbytes: bytes a unit would shard.
        cap_bytes: a group is closed once it holds this many bytes.

    Returns:
        The groups, each a list of units.
    """
    groups, current, size = [], [], 0
    for unit in units:
        n = nbytes(unit)
        if n == 0:
            continue
        current.append(unit)
        size += n
        if size >= cap_bytes:
            groups.append(current)
            current, size = [], 0
    if current:
        groups.append(current)
    return groups


def fsdp_units(model: nn.Module, options: FSDPOptions) -> list[list[nn.Module]]:
    """The FSDP units below the root that ``options`` asks for (the root unit, the whole
    model, takes every parameter no unit holds).

    Args:
        model: the model before sharding.
        options: ``train.fsdp``.

    Returns:
        One list of modules per unit (``fully_shard`` takes a list as one unit).
    """
    if options.per_block is False:
        return []

    def nbytes(unit: nn.Module) -> int:
        return sum(p.numel() * p.element_size() for p in unit.parameters()
                   if p.requires_grad or options.shard_frozen)

    cap = 0 if options.per_block else options.unit_mb * 2 ** 20
    return group_units(candidate_units(model), nbytes, cap)


@STRATEGIES.register("fsdp")
class FSDPStrategy(Strategy):
    """FSDP2 over one data-parallel mesh of all ranks; options: :class:`FSDPOptions`.

    ``train.precision=fp16`` uses torch's ``GradScaler`` as is: gradients are DTensor shards,
    and DTensor reduces the scaler's inf/NaN check over the mesh, so every rank skips the
    same steps and keeps the same scale.
    """

    name = "fsdp"
    Options = FSDPOptions
    collective_forward = True

    def setup(self, model: nn.Module, make_optimizer: Callable[[nn.Module], torch.optim.Optimizer]
              ) -> tuple[nn.Module, torch.optim.Optimizer]:
        if not torch.cuda.is_available():
            model = cpu_sync_batchnorm(model)
        world = dist.get_world_size() if dist.is_initialized() else 1
        mesh = init_device_mesh("cuda" if torch.cuda.is_available() else "cpu", (world,))
        options = self.options
        frozen = set() if options.shard_frozen else {
            p for p in model.parameters() if not p.requires_grad}
        if frozen and options.param_dtype and self.precision.dtype is None:
            raise ValueError(
                f"train.fsdp.param_dtype={options.param_dtype} casts each unit's inputs, but "
                f"the replicated frozen weights (train.fsdp.shard_frozen=False) keep their "
                f"dtype, and layers cannot mix them without autocast: set "
                f"train.precision={options.param_dtype} (shard_frozen=True alone does not "
                f"help detectron2 models: they normalise images after FSDP's input cast)")
        shard = dict(mesh=mesh, reshard_after_forward=options.reshard_after_forward,
                     mp_policy=options.policy())
        for unit in fsdp_units(model, options):
            params = {p for module in unit for p in module.parameters()}
            fully_shard(unit if len(unit) > 1 else unit[0], **shard,
                        ignored_params=frozen & params or None)
        fully_shard(model, **shard, ignored_params=frozen or None)
        return model, make_optimizer(model)

    @contextlib.contextmanager
    def no_sync(self, model: nn.Module):
        model.set_requires_gradient_sync(False)
        try:
            yield
        finally:
            model.set_requires_gradient_sync(True)
