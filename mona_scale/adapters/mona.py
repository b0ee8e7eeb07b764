"""The Mona adapter (Multi-cognitive Visual Adapter, CVPR 2025).

Parameter names follow the authors' reference (``project1``, ``project2``,
``adapter_conv.conv1/2/3``, ``adapter_conv.projector``, ``norm``, ``gamma``, ``gammax``)
so that trained reference checkpoints load unchanged.

Two execution paths compute the same function:

* ``reference``: the literal sequence of the paper (three depthwise convs averaged plus
  identity, then ``y + pw(y)``), kept for parity checks.
* ``fused`` (default): because the filter stage is linear, ``(dw3 + dw5 + dw7) / 3 + id``
  is ONE depthwise 7x7 conv with the zero-padded average kernel plus 1 at the centre tap,
  and ``y + pw(y)`` is one 1x1 conv with weight ``W + I``. The kernels are rebuilt from the
  original parameters on every call, so gradients flow to them unchanged. The fused path
  also stays in the token (channels-last) layout, folds ``gamma`` into the LayerNorm, draws
  its dropout mask as a bool tensor from 16-bit random words (see :func:`dropout_mask`)
  and folds the dropout scale into ``project2``'s weight.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

__all__ = ["Mona", "MonaOp", "dropout_mask"]


def dropout_mask(shape: tuple[int, ...], p: float,
                 device: torch.device | str = "cpu") -> tuple[torch.Tensor, float]:
    """A bool drop-mask for dropout and the matching scale, cheaper than ``bernoulli_``.

    On CPU, ``bernoulli_`` draws one float per element; here one 64-bit random word
    (``random_`` on int64 gives 63 uniform bits) yields four 16-bit draws: the three low
    16-bit chunks are uniform over 2^16 values, the top one over 2^15. An element is
    dropped with probability ``p_eff = round(p * 2^15) / 2^15`` in every chunk (threshold
    ``2t`` of 2^16, resp. ``t`` of 2^15), so ``|p_eff - p| <= 2^-16``, and the returned
    scale is ``1 / (1 - p_eff)``: the expectation is preserved exactly. Other devices use
    ``torch.rand(shape) < p`` and ``1 / (1 - p)``.

    Args:
        shape: mask shape.
        p: drop probability in [0, 1).
        device: where the mask is drawn.

    Returns:
        ``(drop, scale)``: a bool tensor of ``shape``, True where a value is zeroed, and
        the factor for the kept values.
    """
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout probability must be in [0, 1), got {p}")
    device = torch.device(device)
    if device.type != "cpu":
        return torch.rand(shape, device=device) < p, 1.0 / (1.0 - p)
    t = round(p * 2**15)
    n = math.prod(shape)
    words = torch.empty((n + 3) // 4, dtype=torch.int64).random_()
    chunks = words.view(torch.int16).view(-1, 4)  # little endian: column 3 = bits 48..63
    low = -(2**15) + 2 * t  # int16 view of a uniform 16-bit chunk: drop below this
    threshold = torch.tensor([low, low, low, t], dtype=torch.int16)
    drop = torch.lt(chunks, threshold).view(-1)[:n].view(shape)
    return drop, 1.0 / (1.0 - t / 2**15)


class MonaOp(nn.Module):
    """The multi-cognitive filter stage: three depthwise convs and a 1x1 aggregation."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, groups=channels)
        self.conv2 = nn.Conv2d(channels, channels, 5, padding=2, groups=channels)
        self.conv3 = nn.Conv2d(channels, channels, 7, padding=3, groups=channels)
        self.projector = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reference path on an NCHW map."""
        x = (self.conv1(x) + self.conv2(x) + self.conv3(x)) / 3.0 + x
        return x + self.projector(x)

    def forward_fused(self, x: torch.Tensor) -> torch.Tensor:
        """Fused path: NCHW map in, the same values out in NHWC (channels-last) layout."""
        dw_weight, dw_bias = self.fused_depthwise()
        if x.dtype == torch.bfloat16 and x.device.type == "cpu":
            # oneDNN's bf16 depthwise weight gradient is 2.5x slower than its fp32 one on
            # CPU; the map is only c wide, so the two casts cost less than they save
            with torch.autocast("cpu", enabled=False):
                x = F.conv2d(x.float(), dw_weight.float(), dw_bias.float(), padding=3,
                             groups=x.shape[1])  # weights are bf16 under fsdp.param_dtype
        else:
            x = F.conv2d(x, dw_weight, dw_bias, padding=3, groups=x.shape[1])
        pw_weight, pw_bias = self.fused_pointwise()
        return F.linear(x.permute(0, 2, 3, 1), pw_weight, pw_bias)

    def fused_depthwise(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The single 7x7 depthwise kernel (C,1,7,7) and bias equal to the filter stage."""
        weight = F.pad(self.conv1.weight, (2, 2, 2, 2))
        weight = weight + F.pad(self.conv2.weight, (1, 1, 1, 1)) + self.conv3.weight
        weight = weight / 3.0
        centre = torch.zeros_like(weight)
        centre[:, :, 3, 3] = 1.0
        bias = (self.conv1.bias + self.conv2.bias + self.conv3.bias) / 3.0
        return weight + centre, bias

    def fused_pointwise(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The (C, C) matrix ``W + I`` and bias of the aggregation stage."""
        w = self.projector.weight.flatten(1)
        return w + torch.eye(w.shape[0], dtype=w.dtype, device=w.device), self.projector.bias


class Mona(nn.Module):
    """Mona adapter: ``x + up(drop(gelu(agg(filters(down(LN(x)*gamma + x*gammax))))))``.

    Args:
        dim: token width C.
        bottleneck: inner width (64 for every stage in the paper).
        dropout: dropout before the up projection (0.1 in the paper).
        fused: use the fused execution path (default) instead of the reference path.
        recompute: save only the input and recompute the adapter in backward (non-reentrant
            checkpointing of the adapter branch: less memory, one extra adapter forward).
    """

    def __init__(self, dim: int, bottleneck: int = 64, dropout: float = 0.1, fused: bool = True,
                 recompute: bool = False):
        super().__init__()
        self.fused, self.recompute = fused, recompute
        self.norm = nn.LayerNorm(dim, eps=1e-5)
        self.gamma = nn.Parameter(torch.full((dim,), 1e-6))
        self.gammax = nn.Parameter(torch.ones(dim))
        self.project1 = nn.Linear(dim, bottleneck)
        self.adapter_conv = MonaOp(bottleneck)
        self.dropout = nn.Dropout(dropout)
        self.project2 = nn.Linear(bottleneck, dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The reference initialisation: trunc-normal Linears, unit LN, default convs."""
        for linear in (self.project1, self.project2):
            nn.init.trunc_normal_(linear.weight, std=0.02)
            nn.init.zeros_(linear.bias)
        nn.init.ones_(self.norm.weight)
        nn.init.zeros_(self.norm.bias)

    def forward(self, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        """Args: x (B, N, C) tokens in row-major order; hw the unpadded (H, W), H*W == N."""
        if x.shape[1] != hw[0] * hw[1]:
            raise ValueError(f"Mona got {x.shape[1]} tokens for a {hw[0]}x{hw[1]} map")
        if self.recompute and torch.is_grad_enabled():
            out = checkpoint(self.branch, x, hw, use_reentrant=False)
        else:
            out = self.branch(x, hw)
        # a new tensor, not a view (F.linear on 3-D input returns a view of its 2-D result;
        # a view as a block's output defeats FSDP2's pre-backward hook, which warns on
        # every rank); under autocast the branch is half precision and the sum takes the
        # input's (fp32) dtype, as in the reference path
        return x + out

    def branch(self, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        """Everything but the residual: ``up(drop(gelu(filters(down(scaled_norm(x))))))``."""
        z = self.filter_stage(self.project1(self.scaled_norm(x)), hw)
        if not self.fused:
            return self.project2(self.dropout(F.gelu(z)))
        # fused: a bool mask filled in place into the GELU output (GELU's backward needs its
        # input only; masked_fill keeps the mask bool, a multiply would convert it to float
        # in forward and backward), the dropout scale folded into project2's (C, c) weight
        h, weight = F.gelu(z), self.project2.weight
        if self.training and self.dropout.p > 0:
            drop, scale = dropout_mask(h.shape, self.dropout.p, h.device)
            h, weight = h.masked_fill_(drop, 0.0), weight * scale
        return F.linear(h, weight, self.project2.bias)

    def scaled_norm(self, x: torch.Tensor) -> torch.Tensor:
        """``LN(x) * gamma + x * gammax`` (fused: gamma folded into the LN affine)."""
        if not self.fused:
            return self.norm(x) * self.gamma + x * self.gammax
        norm = self.norm
        z = F.layer_norm(x, norm.normalized_shape, norm.weight * self.gamma,
                         norm.bias * self.gamma, norm.eps)
        # not addcmul: its backward multiplies by its scalar ``value`` (a full extra pass)
        return z.add_(x * self.gammax)

    def filter_stage(self, z: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        """Multi-cognitive filters and aggregation on (B, N, c) tokens over the (H, W) map."""
        b, n, c = z.shape
        # (B, N, c) is channels-last memory: this NCHW view costs no copy.
        maps = z.reshape(b, hw[0], hw[1], c).permute(0, 3, 1, 2)
        if self.fused:
            return self.adapter_conv.forward_fused(maps).reshape(b, n, c)
        return self.adapter_conv(maps).permute(0, 2, 3, 1).reshape(b, n, c)
