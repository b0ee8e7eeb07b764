"""The baseline adapters of the paper: sequential bottleneck adapter and AdaptFormer."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["BottleneckAdapter", "AdaptFormer"]


class _Bottleneck(nn.Module):
    """``up(drop(gelu(down(x))))`` with trunc-normal Linears (the backbone-wide init)."""

    def __init__(self, dim: int, bottleneck: int = 64, dropout: float = 0.1):
        super().__init__()
        self.down = nn.Linear(dim, bottleneck)
        self.dropout = nn.Dropout(dropout)
        self.up = nn.Linear(bottleneck, dim)
        for linear in (self.down, self.up):
            nn.init.trunc_normal_(linear.weight, std=0.02)
            nn.init.zeros_(linear.bias)

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.dropout(F.gelu(self.down(x))))


class BottleneckAdapter(_Bottleneck):
    """Sequential adapter ``a(z) = z + up(drop(gelu(down(z))))`` (Houlsby style).

    Inserted on the attention output and on the MLP output of every block, before their
    drop-path and residual.

    Args:
        dim: token width C.
        bottleneck: inner width (64).
        dropout: dropout rate (0.1).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.branch(x)


class AdaptFormer(_Bottleneck):
    """Parallel adapter ``scale * up(drop(gelu(down(x))))``, added next to the MLP branch.

    Args:
        dim: token width C.
        bottleneck: inner width (64).
        dropout: dropout rate (0.1).
        scale: fixed output scale (0.1).
    """

    def __init__(self, dim: int, bottleneck: int = 64, dropout: float = 0.1, scale: float = 0.1):
        super().__init__(dim, bottleneck, dropout)
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.branch(x) * self.scale
