"""Optimizer parameter groups by explicit, documented rules.

Rules (applied to trainable parameters only; frozen ones never reach the optimizer):

1. Parameters of normalisation layers (LayerNorm, BatchNorm/SyncBN, GroupNorm, detectron2's
   LayerNorm, the adapters' own LayerNorms) get no weight decay.
2. Swin relative-position bias tables get no weight decay.
3. Everything else, biases included, decays with the optimizer's ``weight_decay``.

This replaces the reference's "first matching key wins" custom keys, which gave the same
adapter parameter different decay on different tasks.
"""
from __future__ import annotations

from torch import nn

__all__ = ["NORM_TYPES", "NO_DECAY_NAME_SUFFIXES", "param_groups", "decay_rule"]

NORM_TYPES: tuple[type, ...] = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm,
                                nn.LocalResponseNorm)
NO_DECAY_NAME_SUFFIXES = ("relative_position_bias_table",)


def _norm_types() -> tuple[type, ...]:
    try:
        from detectron2.layers import LayerNorm as D2LayerNorm
    except ImportError:  # pragma: no cover
        return NORM_TYPES
    return NORM_TYPES + (D2LayerNorm,)


def decay_rule(module: nn.Module, param_name: str) -> str:
    """Which rule applies to a parameter: ``"norm"``, ``"position_table"`` or ``"decay"``.

    Args:
        module: the module that directly owns the parameter.
        param_name: the parameter's attribute name in that module.
    """
    if isinstance(module, _norm_types()):
        return "norm"
    if param_name.endswith(NO_DECAY_NAME_SUFFIXES):
        return "position_table"
    return "decay"


def param_groups(model: nn.Module, weight_decay: float, base_lr: float | None = None
                 ) -> list[dict]:
    """Two parameter groups (decay / no decay) over the trainable parameters of ``model``.

    Args:
        model: the model.
        weight_decay: decay of the ``decay`` group (the other group gets 0).
        base_lr: optional learning rate stored in each group.

    Returns:
        Groups with ``params``, ``weight_decay`` and ``names`` (for logging and tests).
    """
    groups = {"decay": ([], []), "no_decay": ([], [])}
    seen = set()
    for module_name, module in model.named_modules():
        for name, param in module.named_parameters(recurse=False):
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            key = "decay" if decay_rule(module, name) == "decay" else "no_decay"
            groups[key][0].append(param)
            groups[key][1].append(f"{module_name}.{name}" if module_name else name)
    result = []
    for key, (params, names) in groups.items():
        if params:
            group = {"params": params, "names": names,
                     "weight_decay": weight_decay if key == "decay" else 0.0}
            if base_lr is not None:
                group["lr"] = base_lr
            result.append(group)
    if not result:
        raise ValueError("the model has no trainable parameter: check tuning.method and "
                         "that the heads were not frozen")
    return result
