"""The total batch must split evenly over the ranks; say how to launch when it does not."""
from __future__ import annotations

__all__ = ["check_batch_fits_world"]


def _fitting_world(total_batch_size: int, world_size: int, ranks_per_node: int) -> int:
    """The largest world size <= ``world_size`` that divides the batch and fills whole nodes
    (or part of one)."""
    return max(w for w in range(1, min(world_size, total_batch_size) + 1)
               if total_batch_size % w == 0 and (w <= ranks_per_node or w % ranks_per_node == 0))


def check_batch_fits_world(total_batch_size: int, world_size: int,
                           ranks_per_node: int = 8) -> int:
    """The per-rank batch size, or a ``ValueError`` that names the launch flags that fit.

    Args:
        total_batch_size: ``dataloader.train.total_batch_size``.
        world_size: the number of training processes.
        ranks_per_node: processes (GPUs) per node in this job, for the ``sbatch`` example.

    Returns:
        ``total_batch_size // world_size``.
    """
    if total_batch_size > 0 and total_batch_size % world_size == 0:
        return total_batch_size // world_size
    ranks_per_node = max(1, ranks_per_node)
    fit = (_fitting_world(total_batch_size, world_size, ranks_per_node)
           if total_batch_size > 0 else 1)
    nodes = max(1, fit // ranks_per_node)
    per_node = fit // nodes
    bigger = -(-max(total_batch_size, 1) // world_size) * world_size
    raise ValueError(
        f"dataloader.train.total_batch_size={total_batch_size} cannot be split over "
        f"{world_size} ranks (it must be a positive multiple of the world size). Either launch "
        f"{fit} rank(s): sbatch --nodes={nodes} --ntasks-per-node={per_node} "
        f"--gpus-per-node={per_node} slurm/<task>.sh ..., or --num-gpus {fit}, or torchrun "
        f"--nproc-per-node {fit}; or keep {world_size} ranks and set "
        f"dataloader.train.total_batch_size={bigger} (scale optimizer.lr with it).")
