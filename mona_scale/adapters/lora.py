"""LoRA on the query and value projections of a fused ``qkv`` Linear."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["LoRAQKV"]


class LoRAQKV(nn.Linear):
    """A ``qkv`` Linear (C -> 3C) with low-rank updates on Q and V.

    ``q += (x @ A_q^T @ B_q^T) * alpha / rank`` and likewise for V; K is untouched. A is
    kaiming-uniform, B is zero, so the layer equals the original one at initialisation.
    The base ``weight`` and ``bias`` keep their names, so pretrained ``attn.qkv.*`` keys
    load unchanged.

    Args:
        base: the Linear to extend (its parameters are shared, not copied).
        rank: LoRA rank (64 in the paper).
        alpha: LoRA alpha (1 in the paper: scaling 1/64).
    """

    def __init__(self, base: nn.Linear, rank: int = 64, alpha: float = 1.0):
        nn.Module.__init__(self)
        self.in_features, self.out_features = base.in_features, base.out_features
        if self.out_features != 3 * self.in_features:
            raise ValueError(f"LoRAQKV expects a C -> 3C Linear, got {self.in_features} -> "
                             f"{self.out_features}")
        self.weight, self.bias = base.weight, base.bias
        dim = self.in_features
        factory = dict(device=base.weight.device, dtype=base.weight.dtype)
        self.lora_q_A = nn.Parameter(torch.empty(rank, dim, **factory))
        self.lora_q_B = nn.Parameter(torch.zeros(dim, rank, **factory))
        self.lora_v_A = nn.Parameter(torch.empty(rank, dim, **factory))
        self.lora_v_B = nn.Parameter(torch.zeros(dim, rank, **factory))
        self.rank, self.scaling = rank, alpha / rank
        for a in (self.lora_q_A, self.lora_v_A):
            nn.init.kaiming_uniform_(a, a=math.sqrt(5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        qkv = F.linear(x, self.weight, self.bias)
        q = F.linear(F.linear(x, self.lora_q_A), self.lora_q_B) * self.scaling
        v = F.linear(F.linear(x, self.lora_v_A), self.lora_v_B) * self.scaling
        return qkv + torch.cat([q, torch.zeros_like(q), v], dim=-1)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, rank={self.rank}, scaling={self.scaling:g}"
