"""Control-plane collectives: flags, counts, stop decisions and metrics across ranks.

These values are python scalars and objects on the host. A CPU tensor can only reach a
process group that has a backend for the CPU device type: ``gloo`` does, ``nccl`` does not
("No backend type associated with device type cpu"). :func:`mona_scale.launch.init_distributed`
creates ``cuda:nccl,cpu:gloo`` on GPUs, so the default group serves both; a default group
created elsewhere may be NCCL only. Every helper here therefore runs over
:func:`control_group`: the default group when its backend configuration
(``torch.distributed.get_backend_config``) names a CPU backend, else a gloo group over the
same ranks, created once. The values never visit the GPU, so a control collective adds no
device synchronisation of its own.

All functions are collective (every rank calls them in the same order) and return the
local value unchanged when the job has one process or no process group.
"""
from __future__ import annotations

import atexit
import datetime
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

__all__ = ["is_distributed", "gloo_group", "control_group", "release_gloo_group",
           "all_reduce_scalar", "count_each", "barrier", "gather_objects", "shared_random_seed"]

_OPS = {"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX, "min": dist.ReduceOp.MIN}
_GLOO: dict[str, Any] = {"world": None, "group": None}  # the side group and its WORLD


def is_distributed() -> bool:
    """Whether a process group with more than one rank exists."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def gloo_group(timeout: datetime.timedelta | None = None):
    """A process group over all ranks whose backend is exactly ``gloo``: the default group
    when it is plain gloo, else one created on first use (collectively) and reused while
    the default group lives.

    Args:
        timeout: the created group's timeout (default: torch's, 30 minutes).

    Returns:
        A ``ProcessGroup``.
    """
    world = dist.group.WORLD
    if dist.get_backend() == "gloo":
        return world
    if _GLOO["world"] is not world:  # first use, or a new default group since
        if _GLOO["world"] is None:
            atexit.register(release_gloo_group)
        _GLOO["group"] = dist.new_group(backend="gloo", timeout=timeout)
        _GLOO["world"] = world
    return _GLOO["group"]


def release_gloo_group() -> None:
    """Drop this module's reference to :func:`gloo_group`'s side group (at exit, and before
    the default group is destroyed). A gloo group whose last reference lives until the
    interpreter shuts down aborts the process there ("terminate called without an active
    exception"), after training succeeded."""
    _GLOO.update(world=None, group=None)


def control_group():
    """The group control collectives run over: the default group if it serves CPU tensors
    (gloo, or ``cuda:nccl,cpu:gloo``), else :func:`gloo_group` (an NCCL-only default group).

    Returns:
        A ``ProcessGroup``.
    """
    return dist.group.WORLD if "cpu:" in dist.get_backend_config() else gloo_group()


def all_reduce_scalar(value: float, op: str = "sum") -> float:
    """``value`` reduced over all ranks.

    Args:
        value: this rank's number (exact for integers below 2**53).
        op: ``"sum"``, ``"max"`` or ``"min"``.

    Returns:
        The reduced value, as a float, on every rank.
    """
    if op not in _OPS:
        raise ValueError(f"op={op!r} is not one of {sorted(_OPS)}")
    if not is_distributed():
        return float(value)
    tensor = torch.tensor([float(value)], dtype=torch.float64)
    dist.all_reduce(tensor, op=_OPS[op], group=control_group())
    return float(tensor.item())


def count_each(flags: Sequence[bool]) -> list[int]:
    """For each position, how many ranks pass a true flag there (one all-reduce for all).

    Args:
        flags: this rank's flags (the same length on every rank).

    Returns:
        The counts, in the order of ``flags``, on every rank.
    """
    local = [int(bool(f)) for f in flags]
    if not is_distributed():
        return local
    tensor = torch.tensor(local, dtype=torch.int64)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM, group=control_group())
    return [int(v) for v in tensor.tolist()]


def barrier() -> None:
    """Wait until every rank arrives (host-side; no device work is waited for)."""
    if is_distributed():
        dist.barrier(group=control_group())


def gather_objects(obj: Any, dst: int = 0) -> list:
    """Picklable ``obj`` of every rank, on rank ``dst``.

    Returns:
        The list of all ranks' objects (in rank order) on ``dst``, ``[]`` elsewhere.
    """
    if not is_distributed():
        return [obj]
    rank = dist.get_rank()
    out = [None] * dist.get_world_size() if rank == dst else None
    dist.gather_object(obj, out, dst=dst, group=control_group())
    return out if rank == dst else []


def shared_random_seed() -> int:
    """A random seed drawn by rank 0 and shared by all ranks (detectron2's
    ``comm.shared_random_seed`` over :func:`control_group`)."""
    seed = int(np.random.randint(2**31))
    if not is_distributed():
        return seed
    box = [seed]
    dist.broadcast_object_list(box, src=0, group=control_group())
    return int(box[0])
