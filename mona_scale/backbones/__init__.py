"""Swin Transformer backbones with adapter slots, and pretrained-weight loading.

A tuned backbone (adapters inserted, weights loaded) is built one layer up, by
:func:`mona_scale.modeling.build_swin`.
"""
from .pretrained import LoadReport, load_pretrained, save_microsoft_checkpoint
from .sizes import swin_channels, swin_of_size, swin_output_shape
from .swin import SWIN_SPECS, SwinBlock, SwinSpec, SwinTransformer

__all__ = ["swin_of_size", "swin_output_shape", "swin_channels", "load_pretrained",
           "LoadReport", "save_microsoft_checkpoint", "SwinTransformer", "SwinBlock", "SwinSpec",
           "SWIN_SPECS"]
