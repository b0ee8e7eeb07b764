"""What the engine needs from a model's parts, as protocols (the engine imports no backbone).

A backbone that wants sharding units of its own and activation checkpointing implements
:class:`ShardableBackbone`; the engine finds such modules inside any model with
:func:`find_shardable` and never names a concrete backbone class. This mirrors how
torchtitan's models expose their parallelisable blocks to its parallelism code. A backbone
that reads pretrained weight files (``train.init_checkpoint`` when the file is not a
checkpoint of the whole model) implements :class:`PretrainedBackbone`, found with
:func:`find_backbone`.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from torch import nn

__all__ = ["ShardableBackbone", "find_shardable", "PretrainedBackbone", "find_backbone"]


@runtime_checkable
class ShardableBackbone(Protocol):
    """A backbone made of repeated blocks the engine may wrap one by one."""

    def shard_units(self) -> list[nn.Module]:
        """The blocks, in forward order, that may each become one sharding unit."""

    def set_activation_checkpointing(self, enabled: bool = True) -> None:
        """Recompute each block in backward instead of keeping its activations."""


def find_shardable(model: nn.Module) -> list[nn.Module]:
    """Every submodule of ``model`` (itself included) that implements the protocol.

    Args:
        model: any model.

    Returns:
        The modules, outermost first; nested ones inside a found module are not listed.
    """
    found: list[nn.Module] = []
    for module in model.modules():
        if isinstance(module, ShardableBackbone) and not any(
                module in set(f.modules()) for f in found):
            found.append(module)
    return found


@runtime_checkable
class PretrainedBackbone(Protocol):
    """A backbone that loads pretrained weights in the layouts its users have."""

    def load_pretrained(self, weights: str | Mapping[str, Any]) -> Any:
        """Load a weight file (or a loaded state dict) into the backbone; return a report."""


def find_backbone(model: nn.Module) -> nn.Module | None:
    """The first submodule of ``model`` (itself included) that loads pretrained weights.

    Args:
        model: any model.

    Returns:
        The outermost such module, or None when the model has none.
    """
    return next((m for m in model.modules() if isinstance(m, PretrainedBackbone)), None)
