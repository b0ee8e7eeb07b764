"""Mixed precision: bf16 autocast without a scaler, fp16 autocast with a GradScaler, fp32.

detectron2 v0.6's ``AMPTrainer`` requires CUDA; this works on CPU and GPU alike.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch

__all__ = ["Precision", "DTYPES", "parse_dtype"]

#: the one map from the configs' dtype names to torch dtypes (``train.precision``,
#: ``train.fsdp.param_dtype`` / ``reduce_dtype``)
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def parse_dtype(name: str, key: str) -> torch.dtype:
    """The torch dtype a config names.

    Args:
        name: ``fp32``, ``bf16`` or ``fp16``.
        key: the config key that holds it, for the error message.

    Returns:
        The dtype; ``ValueError`` naming ``key`` and the allowed names otherwise.
    """
    if name not in DTYPES:
        raise ValueError(f"{key}={name!r} is not one of {list(DTYPES)}")
    return DTYPES[name]


@dataclass
class Precision:
    """Autocast and loss scaling for one ``train.precision`` value.

    Args:
        name: ``fp32``, ``bf16`` or ``fp16``.
        device_type: ``cpu`` or ``cuda``.
    """

    name: str = "fp32"
    device_type: str = "cpu"
    #: torch's loss scaler, enabled for fp16 only (a disabled one passes everything through)
    scaler: torch.amp.GradScaler = field(init=False)

    def __post_init__(self) -> None:
        parse_dtype(self.name, "train.precision")
        self.scaler = torch.amp.GradScaler(self.device_type, enabled=self.name == "fp16")

    @property
    def dtype(self) -> torch.dtype | None:
        """The autocast dtype, None for fp32 (no autocast)."""
        return None if self.name == "fp32" else DTYPES[self.name]

    def autocast(self):
        """Context manager for the forward pass."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def scale(self, loss: torch.Tensor) -> torch.Tensor:
        """The loss to call backward on."""
        return self.scaler.scale(loss)

    def unscale_(self, optimizer: torch.optim.Optimizer) -> None:
        """Unscale gradients in place (before clipping)."""
        self.scaler.unscale_(optimizer)

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """Optimizer step (skipped by the scaler on inf/NaN gradients in fp16)."""
        self.scaler.step(optimizer)
        self.scaler.update()

    def state_dict(self) -> dict:
        return self.scaler.state_dict()  # {} when disabled

    def load_state_dict(self, state: dict) -> None:
        if state:  # (a checkpoint of another precision holds none)
            self.scaler.load_state_dict(state)
