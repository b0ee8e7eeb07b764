"""Swin Transformer backbones with adapter slots, and pretrained-weight loading."""
from .build import build_swin
from .pretrained import LoadReport, load_pretrained
from .swin import SWIN_SPECS, SwinSpec, SwinTransformer

__all__ = ["build_swin", "load_pretrained", "LoadReport", "SwinTransformer", "SwinSpec",
           "SWIN_SPECS"]
