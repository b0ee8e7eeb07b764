"""``build_swin``: a Swin backbone of a named size with a tuning method applied.

Pretrained weights load later, from ``train.init_checkpoint``
(:func:`mona_scale.engine.defaults.load_init_checkpoint`), into the whole built model.

This sits above :mod:`mona_scale.backbones` (the architecture, weight loading) and
:mod:`mona_scale.adapters` (the adapters and tuning methods), which do not import each
other; configs build their backbone through it.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

from mona_scale.adapters.tuning import apply_tuning
from mona_scale.backbones import SwinTransformer, swin_of_size

__all__ = ["build_swin"]


def build_swin(name: str = "swin_t", tuning: str | Mapping | None = "mona", *,
               activation_checkpointing: bool = False,
               drop_path_rate: float = 0.2, window_size: int = 7,
               out_features: Sequence[str] | None = None, embed_dim: int | None = None,
               depths: Sequence[int] | None = None,
               num_heads: Sequence[int] | None = None) -> SwinTransformer:
    """Build a Swin backbone and apply a tuning method.

    Args:
        name: ``swin_t``, ``swin_s``, ``swin_b`` or ``swin_l``.
        tuning: method name or ``{"method": ..., **options}`` (see
            :mod:`mona_scale.adapters.tuning`); ``None`` means ``full``.
        activation_checkpointing: recompute each block in backward (non-reentrant).
        drop_path_rate: stochastic depth of the last block.
        window_size: attention window.
        out_features: subset of ``res2..res5``.
        embed_dim, depths, num_heads: override the named size (tiny test models).

    Returns:
        A detectron2 ``Backbone`` with ``output_shape()`` for ``out_features``.
    """
    backbone = swin_of_size(name, embed_dim=embed_dim, depths=depths, num_heads=num_heads,
                            window_size=window_size, drop_path_rate=drop_path_rate,
                            out_features=out_features)
    apply_tuning(backbone, tuning)
    backbone.set_activation_checkpointing(activation_checkpointing)
    return backbone
