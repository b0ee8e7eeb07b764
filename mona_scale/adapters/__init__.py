"""Adapters (Mona and the paper's baselines) and the tuning registry."""
from .bottleneck import AdaptFormer, BottleneckAdapter
from .lora import LoRAQKV
from .mona import Mona, MonaOp, mona_param_count
from .tuning import (
                     TUNING_METHODS,
                     TuningMethod,
                     TuningOptions,
                     apply_tuning,
                     parse_tuning,
                     tuning_method_names,
)

__all__ = ["Mona", "MonaOp", "mona_param_count", "BottleneckAdapter", "AdaptFormer", "LoRAQKV",
           "TUNING_METHODS", "TuningMethod", "TuningOptions", "apply_tuning", "parse_tuning",
           "tuning_method_names"]
