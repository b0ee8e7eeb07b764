"""Swin Transformer backbones with adapter slots, and pretrained-weight loading."""
from .build import build_swin, swin_channels, swin_output_shape
from .pretrained import LoadReport, load_pretrained
from .swin import SWIN_SPECS, SwinSpec, SwinTransformer

__all__ = ["build_swin", "swin_output_shape", "swin_channels", "load_pretrained", "LoadReport",
           "SwinTransformer", "SwinSpec", "SWIN_SPECS"]
