"""Export trained weights: adapter-only (safetensors) and consolidated full models.

An adapter file holds only what the tuning method trains (adapters, the parameters the
method unfreezes, necks and heads, and those modules' buffers), with the base model and the
tuning config in its metadata. Base weights + adapter file reproduce the trained model
exactly. A full file is ``{"model": state_dict}`` in detectron2's format, loadable by
``DetectionCheckpointer`` for inference.

Command line::

    python -m mona_scale.export --config-file configs/quickstart/shapes_cascade_mona.py \\
        --checkpoint output/run/model_0000399 --adapter mona.safetensors --full model.pth
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence

import torch
from torch import nn

from .atomic_io import atomic_path
from .engine.checkpoint_weights import load_checkpoint_weights

__all__ = ["save_adapter", "load_adapter", "main"]

logger = logging.getLogger(__name__)

ADAPTER_FORMAT = "mona_scale-adapter-v1"


def _adapter_keys(model: nn.Module) -> list[str]:
    """State-dict keys the tuning method trains: trainable parameters, plus the buffers of
    modules that own a trainable parameter (e.g. a head's BatchNorm statistics)."""
    keys, persistent = [], set(model.state_dict())
    for module_name, module in model.named_modules():
        own = list(module.named_parameters(recurse=False))
        if not any(p.requires_grad for _, p in own):
            continue
        prefix = f"{module_name}." if module_name else ""
        keys += [prefix + n for n, p in own if p.requires_grad]
        keys += [prefix + n for n, b in module.named_buffers(recurse=False)
                 if prefix + n in persistent and b is not None]
    return keys


def save_adapter(model: nn.Module, state: dict[str, torch.Tensor], path: str,
                 metadata: dict[str, str]) -> int:
    """Write the adapter part of ``state`` (what the tuning method trains) to safetensors.

    Args:
        model: the built model (its ``requires_grad`` flags say what the method trains).
        state: the trained weights.
        path: output ``.safetensors`` file.
        metadata: string metadata (base model, tuning config).

    Returns:
        Bytes written.
    """
    from safetensors.torch import save_file

    keys = _adapter_keys(model)
    missing = [k for k in keys if k not in state]
    if missing:
        raise KeyError(f"the checkpoint lacks {len(missing)} trained tensors of this model, "
                       f"e.g. {missing[:3]}: is it from another config?")
    tensors = {k: state[k].detach().cpu().contiguous() for k in keys}
    with atomic_path(path) as tmp:
        save_file(tensors, tmp, metadata={"format": ADAPTER_FORMAT, **metadata})
    return os.path.getsize(path)


def load_adapter(model: nn.Module, path: str) -> dict[str, str]:
    """Load an adapter file into a model built with the same config (and its base weights).

    Returns:
        The file's metadata.
    """
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(path, framework="pt") as f:
        metadata = f.metadata() or {}
    if metadata.get("format") != ADAPTER_FORMAT:
        raise ValueError(f"{path} is not a mona_scale adapter file (format "
                         f"{metadata.get('format')!r})")
    tensors = load_file(path)
    own = model.state_dict()
    unknown = sorted(set(tensors) - set(own))
    if unknown:
        raise KeyError(f"{path} holds {len(unknown)} tensors this model lacks, e.g. "
                       f"{unknown[:3]}: build the model with the tuning config in its "
                       f"metadata: {metadata.get('tuning')}")
    model.load_state_dict(tensors, strict=False)
    return metadata


def main(argv: Sequence[str] | None = None) -> dict[str, int]:
    """Command line entry point. Returns the bytes written per output."""
    from omegaconf import OmegaConf

    from .engine.config import load_config
    from .engine.defaults import build_model

    parser = argparse.ArgumentParser(prog="python -m mona_scale.export", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", required=True, help="the training config")
    parser.add_argument("--checkpoint", required=True,
                        help="checkpoint directory (any strategy / world size) or .pth file")
    parser.add_argument("--adapter", help="write adapter-only weights here (.safetensors)")
    parser.add_argument("--full", help="write consolidated full weights here (.pth)")
    parser.add_argument("opts", nargs="*", help="config overrides key=value")
    args = parser.parse_args(argv)
    if not (args.adapter or args.full):
        parser.error("give --adapter and/or --full")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cfg = load_config(args.config_file, args.opts)
    cfg.train.device = "cpu"
    model = build_model(cfg)
    state = load_checkpoint_weights(args.checkpoint)
    model.load_state_dict(state)  # strict: the checkpoint must be of this config's model
    written = {}
    for path in (args.full, args.adapter):
        if path:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if args.full:
        with atomic_path(args.full) as tmp:
            torch.save({"model": model.state_dict()}, tmp)
        written["full"] = os.path.getsize(args.full)
    if args.adapter:
        base = cfg.train.init_checkpoint or _run_init_checkpoint(args.checkpoint)
        if not base:
            logger.warning("no base model known (train.init_checkpoint is empty in the config "
                           "and in the run's config.yaml): the adapter file names none")
        metadata = {"base_model": str(base or ""),
                    "tuning": json.dumps(OmegaConf.to_container(cfg.tuning, resolve=True)),
                    "config": os.path.abspath(args.config_file)}
        written["adapter"] = save_adapter(model, model.state_dict(), args.adapter, metadata)
    total = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    for kind, size in written.items():
        logger.info(f"{kind}: {size / 2**20:.2f} MiB ({100 * size / total:.1f}% of the "
                    f"model's {total / 2**20:.2f} MiB)")
    return written


def _run_init_checkpoint(checkpoint: str) -> str:
    """``train.init_checkpoint`` of the run a checkpoint belongs to, read from the
    ``config.yaml`` the run wrote beside its checkpoints ("" when there is none).

    Args:
        checkpoint: a checkpoint directory ``<output_dir>/model_<iter>`` or a weight file
            ``<output_dir>/model_final.pth``.

    Returns:
        The path the run started from, or "".
    """
    from omegaconf import OmegaConf

    path = os.path.join(os.path.dirname(os.path.abspath(checkpoint.rstrip("/"))), "config.yaml")
    if not os.path.isfile(path):
        return ""
    value = OmegaConf.select(OmegaConf.load(path), "train.init_checkpoint", default="")
    return str(value or "")


if __name__ == "__main__":
    from .console import quiet_third_party

    quiet_third_party()
    main(sys.argv[1:])
