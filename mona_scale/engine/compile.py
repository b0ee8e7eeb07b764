"""``train.compile``: ``torch.compile`` applied to a model's adapters or its backbone.

The option names what is compiled:

* ``""`` (default): nothing, eager PyTorch.
* ``"adapters"``: every module sitting in an adapter slot of a block
  (:data:`mona_scale.adapter_slots.ADAPTER_SLOTS`: Mona, the bottleneck adapters); the frozen
  backbone stays eager. LoRA's matrices live inside the attention's Linear and are not
  compiled by this option.
* ``"backbone"``: every backbone the engine finds through the
  :class:`~mona_scale.engine.model_protocol.ShardableBackbone` protocol, as a whole.

Modules are compiled in place (:meth:`torch.nn.Module.compile`), so parameter names, state
dicts and checkpoints are unchanged. Shapes are static: each new input size compiles anew
(fine for fixed crops; detection's varying sizes reach dynamo's recompile limit and then run
eager). Compilation is lazy: it happens on the first forward
(and the first backward); a hook on the model logs the first forward's time, compilation
included, next to the second one's.
"""
from __future__ import annotations

import logging
import time

from mona_scale.adapter_slots import ADAPTER_SLOTS

from torch import nn

from .model_protocol import find_shardable

__all__ = ["COMPILE_TARGETS", "compile_model", "compile_targets"]

logger = logging.getLogger(__name__)

#: the values ``train.compile`` accepts
COMPILE_TARGETS = ("", "adapters", "backbone")


def compile_targets(model: nn.Module, target: str) -> list[tuple[str, nn.Module]]:
    """The named submodules ``train.compile=<target>`` compiles, outermost first.

    Args:
        model: the model (a detector, a classifier, a bare backbone).
        target: one of :data:`COMPILE_TARGETS`.

    Returns:
        ``(qualified name, module)`` pairs; empty for ``""``.

    Raises:
        ValueError: an unknown target, naming ``train.compile`` and the accepted values.
    """
    if target not in COMPILE_TARGETS:
        raise ValueError(f"train.compile={target!r} is not one of {list(COMPILE_TARGETS)}")
    if target == "adapters":
        return [(name, module) for name, module in model.named_modules()
                if name.rsplit(".", 1)[-1] in ADAPTER_SLOTS]
    if target == "backbone":
        names = {module: name for name, module in model.named_modules()}
        return [(names[module], module) for module in find_shardable(model)]
    return []


def compile_model(model: nn.Module, target: str = "", **compile_kwargs) -> nn.Module:
    """Apply ``torch.compile`` in place to the part of ``model`` that ``target`` names.

    Args:
        model: the model; its submodules are compiled in place.
        target: ``""`` (nothing), ``"adapters"`` or ``"backbone"`` (see the module doc).
        compile_kwargs: passed to :func:`torch.compile` (``backend``, ``mode``, ``dynamic``);
            ``dynamic`` defaults to False: each new input shape compiles its own kernels
            (inductor 2.x fails on the depthwise convolution with symbolic sizes), up to
            ``torch._dynamo.config.recompile_limit`` shapes per module, then eager.

    Returns:
        ``model`` itself (same object, same parameter names).

    Raises:
        ValueError: an unknown target, or a target that finds nothing to compile in this
            model (e.g. ``adapters`` with ``tuning.method=fixed``).
    """
    modules = compile_targets(model, target)
    if not target:
        return model
    if not modules:
        raise ValueError(f"train.compile={target!r}: {type(model).__name__} has no "
                         f"{'adapter slot modules' if target == 'adapters' else 'backbone'}"
                         " to compile")
    compile_kwargs.setdefault("dynamic", False)
    for _, module in modules:
        module.compile(**compile_kwargs)
    logger.info(f"train.compile={target}: {len(modules)} module(s) compiled lazily "
                f"({', '.join(name or '<model>' for name, _ in modules[:3])}"
                f"{', ...' if len(modules) > 3 else ''})")
    if all(module is not model for _, module in modules):
        _log_first_calls(model, target)
    return model


def _log_first_calls(model: nn.Module, target: str) -> None:
    """Log the wall time of the model's first two forwards (the first one compiles)."""
    times: list[float] = []

    def before(module, args, kwargs=None):
        times.append(time.perf_counter())

    def after(module, args, output):
        elapsed = time.perf_counter() - times.pop()
        calls.append(elapsed)
        if len(calls) == 1:
            logger.info(f"train.compile={target}: first forward (compilation included) "
                        f"{elapsed:.1f} s")
        else:
            logger.info(f"train.compile={target}: second forward {elapsed:.2f} s")
            pre.remove()
            post.remove()

    calls: list[float] = []
    pre = model.register_forward_pre_hook(before)
    post = model.register_forward_hook(after)
