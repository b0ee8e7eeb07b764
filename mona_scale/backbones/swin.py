"""Swin Transformer as a detectron2 Backbone, behaving like Microsoft's detection port.

State-dict keys equal those of Microsoft's checkpoints (``patch_embed.*``,
``layers.{i}.blocks.{j}.*``, ``layers.{i}.downsample.*``) plus the output norms
``norm0..3``. Every block has named adapter slots that the tuning registry fills
(see :mod:`mona_scale.adapters.tuning`); empty slots cost nothing.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from mona_scale.adapter_slots import ADAPTER_SLOTS

import torch
import torch.nn.functional as F
import torch.utils.checkpoint as torch_checkpoint
from detectron2.modeling import Backbone, ShapeSpec
from torch import nn

from .pretrained import LoadReport, load_pretrained

__all__ = ["SwinTransformer", "SwinBlock", "SwinSpec", "SWIN_SPECS"]


@dataclass(frozen=True)
class SwinSpec:
    """Architecture of one Swin size."""

    embed_dim: int
    depths: tuple[int, ...]
    num_heads: tuple[int, ...]


SWIN_SPECS = {
    "swin_t": SwinSpec(96, (2, 2, 6, 2), (3, 6, 12, 24)),
    "swin_s": SwinSpec(96, (2, 2, 18, 2), (3, 6, 12, 24)),
    "swin_b": SwinSpec(128, (2, 2, 18, 2), (4, 8, 16, 32)),
    "swin_l": SwinSpec(192, (2, 2, 18, 2), (6, 12, 24, 48)),
}


class DropPath(nn.Module):
    """Stochastic depth per sample (identity in eval or at rate 0)."""

    def __init__(self, rate: float = 0.0):
        super().__init__()
        self.rate = rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.rate == 0.0 or not self.training:
            return x
        keep = 1.0 - self.rate
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"rate={self.rate:.3f}"


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


def window_partition(x: torch.Tensor, ws: int) -> torch.Tensor:
    """(B, H, W, C) -> (B * H/ws * W/ws, ws*ws, C)."""
    b, h, w, c = x.shape
    x = x.view(b, h // ws, ws, w // ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, ws * ws, c)


def window_reverse(windows: torch.Tensor, ws: int, h: int, w: int) -> torch.Tensor:
    """(B * nW, ws*ws, C) -> (B, H, W, C)."""
    c = windows.shape[-1]
    x = windows.view(-1, h // ws, w // ws, ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, h, w, c)


def relative_position_index(ws: int) -> torch.Tensor:
    """Index into the ((2ws-1)^2, heads) bias table for every pair of tokens in a window."""
    coords = torch.stack(torch.meshgrid(torch.arange(ws), torch.arange(ws), indexing="ij"))
    coords = coords.flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (ws - 1)
    return rel[..., 0] * (2 * ws - 1) + rel[..., 1]


class WindowAttention(nn.Module):
    """Multi-head self-attention in windows with a relative-position bias."""

    def __init__(self, dim: int, window_size: int, num_heads: int):
        super().__init__()
        self.window_size, self.num_heads = window_size, num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * window_size - 1) ** 2, num_heads))
        self.register_buffer("relative_position_index", relative_position_index(window_size),
                             persistent=False)
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def position_bias(self) -> torch.Tensor:
        n = self.window_size ** 2
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        return bias.view(n, n, -1).permute(2, 0, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """Args: x (B*nW, N, C) windows; mask (nW, N, N) additive or None."""
        bw, n, c = x.shape
        qkv = self.qkv(x).reshape(bw, n, 3, self.num_heads, c // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        if q.is_cuda:  # fused kernels pay off on GPU
            bias = self.position_bias().unsqueeze(0)  # (1, heads, N, N)
            if mask is not None:
                nw = mask.shape[0]
                bias = (bias + mask.unsqueeze(1)).repeat(bw // nw, 1, 1, 1)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype),
                                                 scale=self.scale)
        else:  # on CPU, for 49-token windows, the explicit product beats SDPA's kernels
            attn = (q * self.scale) @ k.transpose(-2, -1)
            attn += self.position_bias().unsqueeze(0).to(attn.dtype)
            if mask is not None:
                nw = mask.shape[0]
                attn = attn.view(bw // nw, nw, self.num_heads, n, n)
                attn += mask.unsqueeze(1).unsqueeze(0).to(attn.dtype)
                attn = attn.view(bw, self.num_heads, n, n)
            out = attn.softmax(dim=-1) @ v
        return self.proj(out.transpose(1, 2).reshape(bw, n, c))


class SwinBlock(nn.Module):
    """One Swin block with adapter slots.

    Slots (:mod:`mona_scale.adapter_slots`; None = empty): ``attn_adapter`` and
    ``mlp_adapter`` act on the branch outputs before drop-path and residual;
    ``parallel_adapter`` adds ``f(x)`` next to the MLP branch; ``my_module_1`` /
    ``my_module_2`` (Mona, reference names) act on the stream after each residual and
    receive the unpadded (H, W).
    """

    def __init__(self, dim: int, num_heads: int, window_size: int, shift: bool,
                 drop_path: float, mlp_ratio: float = 4.0):
        super().__init__()
        self.dim, self.window_size = dim, window_size
        self.shift_size = window_size // 2 if shift else 0
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window_size, num_heads)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        for slot in ADAPTER_SLOTS:
            setattr(self, slot, None)

    def _attention(self, x: torch.Tensor, hw: tuple[int, int], mask: torch.Tensor | None):
        h, w = hw
        b, _, c = x.shape
        ws, shift = self.window_size, self.shift_size
        x = x.view(b, h, w, c)
        pad_b, pad_r = (ws - h % ws) % ws, (ws - w % ws) % ws
        if pad_b or pad_r:
            x = F.pad(x, (0, 0, 0, pad_r, 0, pad_b))
        hp, wp = h + pad_b, w + pad_r
        if shift:
            x = torch.roll(x, shifts=(-shift, -shift), dims=(1, 2))
        x = window_reverse(self.attn(window_partition(x, ws), mask if shift else None),
                           ws, hp, wp)
        if shift:
            x = torch.roll(x, shifts=(shift, shift), dims=(1, 2))
        if pad_b or pad_r:
            x = x[:, :h, :w, :]
        return x.reshape(b, h * w, c)

    def forward(self, x: torch.Tensor, hw: tuple[int, int], mask: torch.Tensor | None):
        """Args: x (B, H*W, C); hw the unpadded (H, W); mask for the shifted windows."""
        attn = self._attention(self.norm1(x), hw, mask)
        if self.attn_adapter is not None:
            attn = self.attn_adapter(attn)
        x = x + self.drop_path(attn)
        if self.my_module_1 is not None:
            x = self.my_module_1(x, hw)
        mlp = self.mlp(self.norm2(x))
        if self.mlp_adapter is not None:
            mlp = self.mlp_adapter(mlp)
        out = x + self.drop_path(mlp)
        if self.parallel_adapter is not None:
            out = out + self.parallel_adapter(x)
        if self.my_module_2 is not None:
            out = self.my_module_2(out, hw)
        return out


def shifted_window_mask(hp: int, wp: int, ws: int, device: torch.device) -> torch.Tensor:
    """Additive (nW, ws*ws, ws*ws) mask (0 / -100) for shifted windows of a padded map."""
    shift = ws // 2
    img = torch.zeros((1, hp, wp, 1), device=device)
    regions = (slice(0, -ws), slice(-ws, -shift), slice(-shift, None))
    label = 0
    for hs in regions:
        for wsl in regions:
            img[:, hs, wsl, :] = label
            label += 1
    windows = window_partition(img, ws).squeeze(-1)
    diff = windows.unsqueeze(1) - windows.unsqueeze(2)
    return diff.masked_fill(diff != 0, -100.0).masked_fill(diff == 0, 0.0)


class PatchMerging(nn.Module):
    """2x2 patch merging (pads odd sizes); phase order matches Microsoft's weights."""

    def __init__(self, dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        h, w = hw
        b, _, c = x.shape
        x = x.view(b, h, w, c)
        if h % 2 or w % 2:
            x = F.pad(x, (0, 0, 0, w % 2, 0, h % 2))
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]],
                      dim=-1)
        return self.reduction(self.norm(x.view(b, -1, 4 * c)))


class SwinStage(nn.Module):
    """A stage of blocks (alternating shift) and an optional patch merging."""

    def __init__(self, dim: int, depth: int, num_heads: int, window_size: int,
                 drop_paths: list[float], downsample: bool):
        super().__init__()
        self.window_size = window_size
        self.activation_checkpointing = False
        self.blocks = nn.ModuleList(
            SwinBlock(dim, num_heads, window_size, shift=i % 2 == 1, drop_path=drop_paths[i])
            for i in range(depth))
        self.downsample = PatchMerging(dim) if downsample else None

    def forward(self, x: torch.Tensor, hw: tuple[int, int]):
        ws = self.window_size
        hp, wp = -(-hw[0] // ws) * ws, -(-hw[1] // ws) * ws
        mask = shifted_window_mask(hp, wp, ws, x.device).to(x.dtype)
        for block in self.blocks:
            if self.activation_checkpointing and torch.is_grad_enabled():
                x = torch_checkpoint.checkpoint(block, x, hw, mask, use_reentrant=False)
            else:
                x = block(x, hw, mask)
        return x


class SwinTransformer(Backbone):
    """Swin Transformer backbone (Microsoft's detection port) returning stage maps.

    Args:
        embed_dim: width of stage 1.
        depths: blocks per stage.
        num_heads: attention heads per stage.
        window_size: attention window (7).
        mlp_ratio: MLP expansion (4).
        drop_path_rate: stochastic depth at the last block, linear from 0.
        patch_size: patch embedding stride (4).
        in_chans: input channels.
        out_features: which of ``res2..res5`` (strides 4..32) to return.
    """

    def __init__(self, embed_dim: int = 96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24),
                 window_size: int = 7, mlp_ratio: float = 4.0, drop_path_rate: float = 0.2,
                 patch_size: int = 4, in_chans: int = 3, out_features=None):
        super().__init__()
        self.depths, self.window_size, self.patch_size = tuple(depths), window_size, patch_size
        self.num_features = [embed_dim * 2 ** i for i in range(len(depths))]
        self.stage_names = [f"res{i + 2}" for i in range(len(depths))]
        self._out_features = list(out_features or self.stage_names)
        unknown = set(self._out_features) - set(self.stage_names)
        if unknown:
            raise ValueError(f"unknown Swin out_features {sorted(unknown)}; "
                             f"choose from {self.stage_names}")
        self.patch_embed = PatchEmbed(patch_size, in_chans, embed_dim)
        total = sum(depths)
        rates = [drop_path_rate * i / max(total - 1, 1) for i in range(total)]
        self.layers = nn.ModuleList()
        for i, depth in enumerate(depths):
            start = sum(depths[:i])
            self.layers.append(SwinStage(self.num_features[i], depth, num_heads[i], window_size,
                                         rates[start:start + depth],
                                         downsample=i < len(depths) - 1))
        for i, name in enumerate(self.stage_names):
            if name in self._out_features:
                self.add_module(f"norm{i}", nn.LayerNorm(self.num_features[i]))
        self._out_feature_channels = {n: self.num_features[i]
                                      for i, n in enumerate(self.stage_names)}
        self._out_feature_strides = {n: patch_size * 2 ** i
                                     for i, n in enumerate(self.stage_names)}
        self.apply(_init_weights)

    @property
    def blocks(self) -> list[SwinBlock]:
        """All blocks in order."""
        return [b for layer in self.layers for b in layer.blocks]

    def shard_units(self) -> list[nn.Module]:
        """The blocks, in forward order: the units a sharding strategy may wrap one by one
        (:class:`~mona_scale.engine.model_protocol.ShardableBackbone`)."""
        return list(self.blocks)

    def set_activation_checkpointing(self, enabled: bool = True) -> None:
        """Recompute every block in backward (non-reentrant: frozen stems stay correct)."""
        for layer in self.layers:
            layer.activation_checkpointing = enabled

    def load_pretrained(self, weights: str | Mapping) -> LoadReport:
        """Load pretrained weights of any supported layout (:mod:`.pretrained`).

        Args:
            weights: a file path or an already loaded (possibly wrapped) state dict.

        Returns:
            The :class:`~mona_scale.backbones.pretrained.LoadReport`.
        """
        return load_pretrained(self, weights)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Args: x (B, 3, H, W), any H, W. Returns: {res2..res5: (B, C_i, H_i, W_i)}."""
        x = self.patch_embed(x)
        hw = (x.shape[2], x.shape[3])
        x = x.flatten(2).transpose(1, 2)
        outputs = {}
        last = max(self.stage_names.index(n) for n in self._out_features)
        for i, layer in enumerate(self.layers[:last + 1]):
            x = layer(x, hw)
            name = self.stage_names[i]
            if name in self._out_features:
                out = getattr(self, f"norm{i}")(x)
                outputs[name] = out.view(-1, hw[0], hw[1], self.num_features[i]).permute(
                    0, 3, 1, 2).contiguous()
            if i < last:
                x = layer.downsample(x, hw)
                hw = ((hw[0] + 1) // 2, (hw[1] + 1) // 2)
        return outputs

    def output_shape(self) -> dict[str, ShapeSpec]:
        return {n: ShapeSpec(channels=self._out_feature_channels[n],
                             stride=self._out_feature_strides[n]) for n in self._out_features}


class PatchEmbed(nn.Module):
    """Strided conv patch embedding with LayerNorm; pads right/bottom to the patch size."""

    def __init__(self, patch_size: int, in_chans: int, embed_dim: int):
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_chans, embed_dim, patch_size, stride=patch_size)
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.patch_size
        h, w = x.shape[-2:]
        if h % p or w % p:
            x = F.pad(x, (0, (p - w % p) % p, 0, (p - h % p) % p))
        x = self.proj(x)
        b, c, hh, ww = x.shape
        x = self.norm(x.flatten(2).transpose(1, 2))
        return x.transpose(1, 2).reshape(b, c, hh, ww)


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
    elif isinstance(module, WindowAttention):
        nn.init.trunc_normal_(module.relative_position_bias_table, std=0.02)
