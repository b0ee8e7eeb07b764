"""What the engine needs from a model's parts, as a protocol (the engine imports no backbone).

A backbone that wants sharding units of its own and activation checkpointing implements
:class:`ShardableBackbone`; the engine finds such modules inside any model with
:func:`find_shardable` and never names a concrete backbone class. This mirrors how
torchtitan's models expose their parallelisable blocks to its parallelism code.
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

from torch import nn

__all__ = ["ShardableBackbone", "find_shardable"]


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
