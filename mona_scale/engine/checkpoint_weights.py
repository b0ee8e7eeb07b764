"""A whole model's weights from any checkpoint the library writes, read in one process.

Training checkpoints are sharded (``torch.distributed.checkpoint`` for ddp / fsdp,
DeepSpeed's ZeRO partitions) and written by any number of ranks; evaluation, export,
demos and ``train.init_checkpoint`` need the plain, unsharded state dict. Everything is
read without running code: DCP through its public reader, DeepSpeed's files and weight
files with ``weights_only=True``, ``.pkl`` files through a restricted unpickler.
"""
from __future__ import annotations

import os
import warnings

from mona_scale.weights_io import read_state_dict

import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint import FileSystemReader
from torch.distributed.checkpoint.metadata import TensorStorageMetadata

from .checkpoint import weights_only_loads

__all__ = ["load_checkpoint_weights"]

MODEL_KEY = "model"  # the model's entry in the strategies' DCP state ({"model", "optimizer"})


def _dcp_model_state(path: str) -> dict[str, torch.Tensor]:
    """The ``model`` entry of a DCP checkpoint: empty tensors shaped from its metadata are
    filled by ``dcp.load`` (one process, no process group)."""
    reader = FileSystemReader(path)
    prefix = f"{MODEL_KEY}."
    state = {}
    for key, meta in reader.read_metadata().state_dict_metadata.items():
        if key.startswith(prefix) and isinstance(meta, TensorStorageMetadata):
            state[key[len(prefix):]] = torch.empty(meta.size, dtype=meta.properties.dtype)
    if not state:
        raise ValueError(f"{path} is a torch.distributed.checkpoint without model tensors "
                         f"(no '{prefix}*' entry in its .metadata)")
    with warnings.catch_warnings():  # one process is the intent: not worth a warning
        warnings.filterwarnings("ignore", message="torch.distributed is disabled")
        dcp.load({MODEL_KEY: state}, storage_reader=reader, no_dist=True)
    return state


def _deepspeed_model_state(path: str) -> dict[str, torch.Tensor]:
    os.environ.setdefault("DS_ACCELERATOR", "cuda" if torch.cuda.is_available() else "cpu")
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

    from .strategies.deepspeed import TAG

    with weights_only_loads():  # DeepSpeed's reader passes weights_only=False
        return dict(get_fp32_state_dict_from_zero_checkpoint(path, tag=TAG))


def load_checkpoint_weights(path: str) -> dict[str, torch.Tensor]:
    """The whole model's weights from any checkpoint this library writes, in one process.

    Args:
        path: a checkpoint directory (``torch.distributed.checkpoint`` or DeepSpeed, any
            world size) or a weight file (``model_final.pth``: ``{"model": ...}``; read by
            :func:`mona_scale.weights_io.read_state_dict`, so that loading runs no code).

    Returns:
        A plain state dict (unsharded, on CPU).
    """
    if os.path.isdir(os.path.join(path, "state")):
        return _deepspeed_model_state(path)
    if os.path.isfile(os.path.join(path, ".metadata")):
        return _dcp_model_state(path)
    if os.path.isdir(path):
        raise ValueError(f"{path} is neither a weight file nor a checkpoint directory "
                         f"(no .metadata, no DeepSpeed state/)")
    return read_state_dict(path)[0]  # FileNotFoundError naming a missing path
