"""The tuning registry: each method inserts its adapters into a Swin backbone and decides
which backbone parameters train. Everything outside the backbone (necks, heads) is left
as it is (trainable).

Methods (docs/method.md, "Tuning methods"): ``full fixed bitfit ln partial-1 adapter
adaptformer lora mona``. Select one with :func:`apply_tuning` or
``mona_scale.modeling.build_swin(..., tuning=...)``. A backbone to tune has ``blocks`` (each
with the slots of :mod:`mona_scale.adapter_slots`, a width ``dim`` and an ``attn.qkv``
Linear) and ``layers`` (stages, each with ``blocks``). The selective methods use the
authors' name rules: ``bitfit`` trains every parameter whose name contains ``bias`` (so the
relative-position bias tables train too), ``ln`` every one whose name contains ``norm``,
``partial-1`` the last block of the last stage.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields

from mona_scale.adapter_slots import (
    ATTN_ADAPTER,
    LORA_PREFIX,
    MLP_ADAPTER,
    MONA_AFTER_ATTN,
    MONA_AFTER_MLP,
    PARALLEL_ADAPTER,
)
from mona_scale.registry import Registry

from torch import nn

from .bottleneck import AdaptFormer, BottleneckAdapter
from .lora import LoRAQKV
from .mona import Mona

__all__ = ["TUNING_METHODS", "TuningOptions", "TuningMethod", "apply_tuning", "parse_tuning"]

TUNING_METHODS: Registry[TuningMethod] = Registry("tuning.method")


@dataclass(frozen=True)
class TuningOptions:
    """Options shared by the methods (each uses the ones it needs).

    Attributes:
        bottleneck: adapter / Mona inner width (64).
        dropout: adapter dropout (0.1).
        scale: AdaptFormer output scale (0.1).
        rank: LoRA rank (64).
        alpha: LoRA alpha (1.0).
        fused: Mona's fused execution path (True) or the reference path.
        recompute: Mona recomputes its branch in backward instead of storing activations.
        frozen_stages: mmdet's Swin ``frozen_stages`` on top of the method: >= 0 freezes
            the patch embedding, k >= 2 also stages 1..k-1 (adapters in them included);
            -1 (default) freezes nothing more. The authors' VOC RetinaNet runs use 1.
    """

    bottleneck: int = 64
    dropout: float = 0.1
    scale: float = 0.1
    rank: int = 64
    alpha: float = 1.0
    fused: bool = True
    recompute: bool = False
    frozen_stages: int = -1


@dataclass(frozen=True)
class TuningMethod:
    """How a method changes a backbone.

    Attributes:
        insert: adds the method's modules to the backbone (no-op for selective methods).
        trains: predicate on (backbone, parameter name): does that parameter train?
    """

    insert: Callable[[nn.Module, TuningOptions], None]
    trains: Callable[[nn.Module, str], bool]


def _no_insert(backbone: nn.Module, options: TuningOptions) -> None:
    return None


def _insert_mona(backbone, options: TuningOptions) -> None:
    for block in backbone.blocks:
        for slot in (MONA_AFTER_ATTN, MONA_AFTER_MLP):
            setattr(block, slot, Mona(block.dim, options.bottleneck, options.dropout,
                                      fused=options.fused, recompute=options.recompute))


def _insert_adapter(backbone, options: TuningOptions) -> None:
    for block in backbone.blocks:
        for slot in (ATTN_ADAPTER, MLP_ADAPTER):
            setattr(block, slot, BottleneckAdapter(block.dim, options.bottleneck,
                                                   options.dropout))


def _insert_adaptformer(backbone, options: TuningOptions) -> None:
    for block in backbone.blocks:
        setattr(block, PARALLEL_ADAPTER, AdaptFormer(block.dim, options.bottleneck,
                                                     options.dropout, options.scale))


def _insert_lora(backbone, options: TuningOptions) -> None:
    for block in backbone.blocks:
        block.attn.qkv = LoRAQKV(block.attn.qkv, options.rank, options.alpha)


def _has_part(*parts: str) -> Callable[[nn.Module, str], bool]:
    return lambda backbone, name: any(p in name.split(".") for p in parts)


def _in_last_block(backbone, name: str) -> bool:
    last = len(backbone.layers) - 1
    return name.startswith(f"layers.{last}.blocks.{len(backbone.layers[last].blocks) - 1}.")


TUNING_METHODS.register("full", TuningMethod(_no_insert, lambda bb, n: True))
TUNING_METHODS.register("fixed", TuningMethod(_no_insert, lambda bb, n: False))
TUNING_METHODS.register("bitfit", TuningMethod(_no_insert, lambda bb, n: "bias" in n))
TUNING_METHODS.register("ln", TuningMethod(_no_insert, lambda bb, n: "norm" in n))
TUNING_METHODS.register("partial-1", TuningMethod(_no_insert, _in_last_block))
TUNING_METHODS.register("adapter", TuningMethod(_insert_adapter,
                                                _has_part(ATTN_ADAPTER, MLP_ADAPTER)))
TUNING_METHODS.register("adaptformer", TuningMethod(_insert_adaptformer,
                                                    _has_part(PARALLEL_ADAPTER)))
TUNING_METHODS.register("lora", TuningMethod(
    _insert_lora, lambda bb, n: n.rsplit(".", 1)[-1].startswith(LORA_PREFIX)))
TUNING_METHODS.register("mona", TuningMethod(_insert_mona,
                                             _has_part(MONA_AFTER_ATTN, MONA_AFTER_MLP)))


def _in_frozen_stage(name: str, frozen_stages: int) -> bool:
    """Is the parameter in a part that mmdet's Swin ``frozen_stages`` freezes?"""
    if frozen_stages >= 0 and name.startswith("patch_embed."):
        return True
    return any(name.startswith(f"layers.{i}.") for i in range(frozen_stages - 1))


def parse_tuning(tuning: str | Mapping | None) -> tuple[str, TuningOptions]:
    """Split a tuning spec (``"mona"`` or ``{"method": "mona", "bottleneck": 32}``).

    Returns:
        (method name, options). Raises ValueError naming an unknown method or option.
    """
    if tuning is None:
        tuning = "full"
    if isinstance(tuning, str):
        spec = {"method": tuning}
    else:
        spec = dict(tuning)
    method = spec.pop("method", None)
    if method not in TUNING_METHODS:
        raise ValueError(f"tuning.method={method!r} is not one of {TUNING_METHODS.names()}")
    known = {f.name for f in fields(TuningOptions)}
    unknown = sorted(set(spec) - known)
    if unknown:
        raise ValueError(f"unknown tuning option(s) {['tuning.' + k for k in unknown]}; "
                         f"known: {sorted(known)}")
    return method, TuningOptions(**spec)


def apply_tuning(backbone: nn.Module, tuning: str | Mapping | None = "mona") -> nn.Module:
    """Insert the method's adapters into ``backbone`` and set ``requires_grad``.

    Args:
        backbone: a :class:`~mona_scale.backbones.SwinTransformer` (or a backbone of the
            same structure, see the module docstring).
        tuning: method name or mapping with ``method`` and options.

    Returns:
        The same backbone, with ``backbone.tuning_method`` and ``backbone.tuning_options``.
    """
    if getattr(backbone, "tuning_method", None) is not None:
        raise RuntimeError(f"backbone is already tuned with {backbone.tuning_method!r}")
    name, options = parse_tuning(tuning)
    method = TUNING_METHODS.get(name)
    method.insert(backbone, options)
    for param_name, param in backbone.named_parameters():
        param.requires_grad_(method.trains(backbone, param_name)
                             and not _in_frozen_stage(param_name, options.frozen_stages))
    backbone.tuning_method, backbone.tuning_options = name, options
    return backbone
