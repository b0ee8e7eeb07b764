"""The names of the places in a backbone block where tuning methods put adapters.

Defined once here and used by the block that declares the slots
(:class:`~mona_scale.backbones.swin.SwinBlock`), the tuning methods that fill them
(:mod:`mona_scale.adapters.tuning`) and the weight loader that tells adapter tensors from
pretrained ones (:mod:`mona_scale.backbones.pretrained`). The slot names ``my_module_1`` /
``my_module_2`` are the authors' attribute names for Mona, so their checkpoints load
unchanged.
"""
from __future__ import annotations

__all__ = ["ATTN_ADAPTER", "MLP_ADAPTER", "PARALLEL_ADAPTER", "MONA_AFTER_ATTN",
           "MONA_AFTER_MLP", "ADAPTER_SLOTS", "LORA_PREFIX", "is_adapter_key"]

#: on the attention branch's output, before drop-path and the residual (sequential adapter)
ATTN_ADAPTER = "attn_adapter"
#: on the MLP branch's output, before drop-path and the residual (sequential adapter)
MLP_ADAPTER = "mlp_adapter"
#: ``f(x)`` added next to the MLP branch (AdaptFormer)
PARALLEL_ADAPTER = "parallel_adapter"
#: on the token stream after the attention residual (Mona; the authors' name)
MONA_AFTER_ATTN = "my_module_1"
#: on the token stream after the MLP residual (Mona; the authors' name)
MONA_AFTER_MLP = "my_module_2"

#: every slot of a block, in forward order
ADAPTER_SLOTS = (ATTN_ADAPTER, MONA_AFTER_ATTN, MLP_ADAPTER, PARALLEL_ADAPTER, MONA_AFTER_MLP)

#: prefix of the low-rank parameters LoRA adds inside an existing Linear (``lora_q_A``, ...)
LORA_PREFIX = "lora_"


def is_adapter_key(key: str) -> bool:
    """Does a state-dict key belong to an adapter (a slot module or LoRA's added matrices)?

    Args:
        key: a parameter / buffer name, e.g. ``layers.0.blocks.1.my_module_2.gamma``.

    Returns:
        True when one of its dotted parts is a slot name or starts with :data:`LORA_PREFIX`.
    """
    return any(part in ADAPTER_SLOTS or part.startswith(LORA_PREFIX) for part in key.split("."))
