"""Adapters (Mona and the paper's baselines) and the tuning registry.

The tuning methods fill the slots named in :mod:`mona_scale.adapter_slots`; this package
imports no backbone (:func:`mona_scale.modeling.build_swin` puts the two together).
"""
from .bottleneck import AdaptFormer, BottleneckAdapter
from .lora import LoRAQKV
from .mona import Mona
from .tuning import TUNING_METHODS, TuningMethod, TuningOptions, apply_tuning, parse_tuning

__all__ = ["Mona", "BottleneckAdapter", "AdaptFormer", "LoRAQKV",
           "TUNING_METHODS", "TuningMethod", "TuningOptions", "apply_tuning", "parse_tuning"]
