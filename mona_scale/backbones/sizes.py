"""Swin backbones of a named size (``swin_t`` .. ``swin_l``) and their output shapes.

These build the bare architecture; a backbone with a tuning method applied and pretrained
weights loaded comes from :func:`mona_scale.modeling.build_swin`.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import torch
from detectron2.layers import ShapeSpec

from .swin import SWIN_SPECS, SwinTransformer

__all__ = ["swin_of_size", "swin_output_shape", "swin_channels"]


def swin_of_size(name: str = "swin_t", *, embed_dim: int | None = None,
                 depths: Sequence[int] | None = None, num_heads: Sequence[int] | None = None,
                 window_size: int = 7, drop_path_rate: float = 0.0,
                 out_features: Sequence[str] | None = None) -> SwinTransformer:
    """The Swin of a named size, with optional overrides, without a tuning method.

    Args:
        name: ``swin_t``, ``swin_s``, ``swin_b`` or ``swin_l``.
        embed_dim, depths, num_heads: override the named size (tiny test models).
        window_size: attention window.
        drop_path_rate: stochastic depth of the last block.
        out_features: subset of ``res2..res5``.

    Returns:
        A :class:`~mona_scale.backbones.swin.SwinTransformer`; ``ValueError`` naming the
        sizes for an unknown ``name``.
    """
    if name not in SWIN_SPECS:
        raise ValueError(f"unknown Swin {name!r}; choose from {sorted(SWIN_SPECS)}")
    overrides = {k: (tuple(v) if k != "embed_dim" else v) for k, v in
                 dict(embed_dim=embed_dim, depths=depths, num_heads=num_heads).items()
                 if v is not None}
    spec = replace(SWIN_SPECS[name], **overrides)
    return SwinTransformer(spec.embed_dim, spec.depths, spec.num_heads,
                           window_size=window_size, drop_path_rate=drop_path_rate,
                           out_features=out_features)


def swin_output_shape(name: str = "swin_t", *, embed_dim: int | None = None,
                      depths: Sequence[int] | None = None,
                      num_heads: Sequence[int] | None = None,
                      out_features: Sequence[str] | None = None) -> dict[str, ShapeSpec]:
    """``output_shape()`` of the Swin of this size (tuning methods do not change it).

    The backbone is built on the meta device (no weights are allocated), so configs can size
    necks and heads from the backbone itself: changing ``model.backbone.name`` (or its
    ``embed_dim``) is then one override.

    Args:
        name, embed_dim, depths, num_heads, out_features: as for :func:`swin_of_size`.

    Returns:
        ``{feature: ShapeSpec(channels, stride)}`` for the backbone's ``out_features``.
    """
    with torch.device("meta"):
        return swin_of_size(name, embed_dim=embed_dim, depths=depths, num_heads=num_heads,
                            out_features=out_features).output_shape()


def swin_channels(feature: str, name: str = "swin_t", *, embed_dim: int | None = None,
                  depths: Sequence[int] | None = None,
                  num_heads: Sequence[int] | None = None) -> int:
    """Channels of one Swin feature (e.g. ``res5`` for RetinaNet's P6/P7 block).

    Args:
        feature: ``res2`` .. ``res5``.
        name, embed_dim, depths, num_heads: as for :func:`swin_of_size`.

    Returns:
        ``swin_output_shape(...)[feature].channels``.
    """
    return swin_output_shape(name, embed_dim=embed_dim, depths=depths, num_heads=num_heads,
                             out_features=[feature])[feature].channels
