"""Optimizer parameter groups: detectron2's ``get_default_optimizer_params`` with our rules.

Rules (applied to trainable parameters only; frozen ones never reach the optimizer):

1. Parameters of normalisation layers (LayerNorm, BatchNorm/SyncBN, GroupNorm, InstanceNorm,
   detectron2's channel-first LayerNorm, the adapters' own LayerNorms) get no weight decay.
2. Swin relative-position bias tables get no weight decay.
3. Everything else, biases included, decays with the optimizer's ``weight_decay``.

This replaces the reference's "first matching key wins" custom keys, which gave the same
adapter parameter different decay on different tasks.
"""
from __future__ import annotations

from detectron2.solver import get_default_optimizer_params
from detectron2.solver.build import reduce_param_groups
from torch import nn

__all__ = ["optimizer_param_groups"]

#: parameter names (the attribute in their module) that get no weight decay
NO_DECAY_PARAM_NAMES = ("relative_position_bias_table",)


def _norms_detectron2_misses() -> tuple[type, ...]:
    """Norm layers outside ``get_default_optimizer_params``'s own list (torch's batch,
    group, instance, layer and local-response norms): upstream detectron2's channel-first
    LayerNorm."""
    try:
        from detectron2.layers import LayerNorm  # upstream main; not in v0.6
    except ImportError:
        return ()
    return (LayerNorm,)


def optimizer_param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Parameter groups over the trainable parameters of ``model`` (the rules above).

    Args:
        model: the model.
        weight_decay: decay of the decaying parameters (the others get 0).

    Returns:
        detectron2's groups (``params`` and ``weight_decay``), merged by hyper-parameters.
    """
    groups = get_default_optimizer_params(
        model, weight_decay=weight_decay, weight_decay_norm=0.0,
        overrides={name: {"weight_decay": 0.0} for name in NO_DECAY_PARAM_NAMES})
    missed_types = _norms_detectron2_misses()
    missed = [p for m in model.modules() if missed_types and isinstance(m, missed_types)
              for p in m.parameters(recurse=False) if p.requires_grad]
    if missed:  # later groups override earlier ones per parameter
        groups = reduce_param_groups(groups + [{"params": missed, "weight_decay": 0.0}])
    if not groups:
        raise ValueError("the model has no trainable parameter: check tuning.method and "
                         "that the heads were not frozen")
    return groups
