"""``build_swin``: a Swin backbone of a named size with a tuning method applied."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from mona_scale.adapters.tuning import apply_tuning

import torch
from detectron2.layers import ShapeSpec

from .pretrained import load_pretrained
from .swin import SWIN_SPECS, SwinTransformer

__all__ = ["build_swin", "swin_output_shape", "swin_channels"]


def build_swin(name: str = "swin_t", tuning: str | Mapping | None = "mona", *,
               pretrained: str | None = None, activation_checkpointing: bool = False,
               drop_path_rate: float = 0.2, window_size: int = 7, out_features=None,
               embed_dim: int | None = None, depths=None, num_heads=None) -> SwinTransformer:
    """Build a Swin backbone, apply a tuning method and optionally load weights.

    Args:
        name: ``swin_t``, ``swin_s``, ``swin_b`` or ``swin_l``.
        tuning: method name or ``{"method": ..., **options}`` (see
            :mod:`mona_scale.adapters.tuning`); ``None`` means ``full``.
        pretrained: checkpoint path for :func:`load_pretrained` (empty/None: none).
        activation_checkpointing: recompute each block in backward (non-reentrant).
        drop_path_rate: stochastic depth of the last block.
        window_size: attention window.
        out_features: subset of ``res2..res5``.
        embed_dim, depths, num_heads: override the named size (tiny test models).

    Returns:
        A detectron2 ``Backbone`` with ``output_shape()`` for ``res2..res5``.
    """
    backbone = _bare_swin(name, embed_dim, depths, num_heads, window_size, drop_path_rate,
                          out_features)
    backbone.name = name
    apply_tuning(backbone, tuning)
    if pretrained:
        load_pretrained(backbone, pretrained)
    backbone.set_activation_checkpointing(activation_checkpointing)
    return backbone


def _bare_swin(name: str, embed_dim, depths, num_heads, window_size: int = 7,
               drop_path_rate: float = 0.0, out_features=None) -> SwinTransformer:
    """The Swin of a named size (with overrides), without a tuning method."""
    if name not in SWIN_SPECS:
        raise ValueError(f"unknown Swin {name!r}; choose from {sorted(SWIN_SPECS)}")
    overrides = {k: (tuple(v) if k != "embed_dim" else v) for k, v in
                 dict(embed_dim=embed_dim, depths=depths, num_heads=num_heads).items()
                 if v is not None}
    spec = replace(SWIN_SPECS[name], **overrides)
    return SwinTransformer(spec.embed_dim, spec.depths, spec.num_heads,
                           window_size=window_size, drop_path_rate=drop_path_rate,
                           out_features=out_features)


def swin_output_shape(name: str = "swin_t", *, embed_dim: int | None = None, depths=None,
                      num_heads=None, out_features=None) -> dict[str, ShapeSpec]:
    """``output_shape()`` of the backbone :func:`build_swin` builds with these arguments.

    The backbone is built on the meta device (no weights are allocated), so configs can size
    necks and heads from the backbone itself: changing ``model.backbone.name`` (or its
    ``embed_dim``) is then one override.

    Args:
        name, embed_dim, depths, num_heads, out_features: as for :func:`build_swin`.

    Returns:
        ``{feature: ShapeSpec(channels, stride)}`` for the backbone's ``out_features``.
    """
    with torch.device("meta"):
        return _bare_swin(name, embed_dim, depths, num_heads,
                          out_features=out_features).output_shape()


def swin_channels(feature: str, name: str = "swin_t", *, embed_dim: int | None = None,
                  depths=None, num_heads=None) -> int:
    """Channels of one Swin feature (e.g. ``res5`` for RetinaNet's P6/P7 block).

    Args:
        feature: ``res2`` .. ``res5``.
        name, embed_dim, depths, num_heads: as for :func:`build_swin`.

    Returns:
        ``swin_output_shape(...)[feature].channels``.
    """
    return swin_output_shape(name, embed_dim=embed_dim, depths=depths, num_heads=num_heads,
                             out_features=[feature])[feature].channels
