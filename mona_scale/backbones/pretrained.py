"""Loading pretrained Swin weights from every layout users have.

Supported files (detected from their content, not their names):

==============  ============================  ==========================================
layout          container                     key prefix
==============  ============================  ==========================================
microsoft       ``{"model": sd}``             none (``layers.{i}.downsample``)
mmcv            ``{"state_dict": sd}``        ``backbone.`` (incl. trained Mona adapters)
detectron2      ``{"model": sd}`` (.pth/.pkl) ``backbone.bottom_up.`` or ``backbone.``
timm            plain ``sd``                  none, ``layers.{i+1}.downsample``, ``head.fc``
==============  ============================  ==========================================

Keys outside the backbone (necks, heads) are reported as unexpected; buffers the model
recomputes (``relative_position_index``, ``attn_mask``) and the classification ``head`` /
final ``norm`` are ignored. A relative-position table of another window size is
interpolated bicubically; any other shape disagreement, a file that matches nothing, or a
file of another depth (backbone blocks or stems the model has and the file lacks, or the
reverse) raises ``ValueError`` naming the problem. Adapters and the output norms
``norm0..3`` are expected to be missing from an ImageNet file.

No file can run code while it is read (:mod:`mona_scale.weights_io` reads them).
"""
from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from mona_scale.adapter_slots import is_adapter_key
from mona_scale.atomic_io import atomic_path
from mona_scale.weights_io import read_state_dict, unwrap_state_dict

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["LoadReport", "load_pretrained", "save_microsoft_checkpoint",
           "interpolate_position_table"]

logger = logging.getLogger(__name__)

PREFIXES = ("module.backbone.bottom_up.", "backbone.bottom_up.", "module.backbone.",
            "backbone.", "bottom_up.", "module.", "encoder.", "")
BACKBONE_ROOTS = ("patch_embed.", "layers.", "norm0.", "norm1.", "norm2.", "norm3.")
IGNORED = re.compile(r"(^|\.)(relative_position_index|attn_mask)$|^head\.|^norm\.")


@dataclass
class LoadReport:
    """What :func:`load_pretrained` did.

    Attributes:
        source: file path or ``"<state_dict>"``.
        layout: detected layout (``microsoft``, ``mmcv``, ``detectron2``, ``timm``).
        loaded: backbone keys that received a tensor.
        missing: backbone keys not in the file (adapters and ``norm0..3`` are expected).
        unexpected: file keys that belong to nothing in the backbone.
        ignored: file keys skipped on purpose (recomputed buffers, classifier head).
        interpolated: relative-position tables resized to another window.
    """

    source: str
    layout: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    interpolated: list[str] = field(default_factory=list)

    @property
    def missing_pretrained(self) -> list[str]:
        """Missing keys that a pretrained file should have had (not adapters/norm0..3)."""
        return [k for k in self.missing
                if not is_adapter_key(k) and not re.match(r"norm\d\.", k)]

    def summary(self) -> str:
        """One paragraph for the log."""
        text = (f"loaded {len(self.loaded)} tensors from {self.source} ({self.layout} layout); "
                f"missing {len(self.missing)} ({len(self.missing_pretrained)} not adapters or "
                f"output norms), unexpected {len(self.unexpected)}, ignored "
                f"{len(self.ignored)}, interpolated {len(self.interpolated)}")
        if self.missing_pretrained:
            text += f"\n  missing pretrained keys (first 10): {self.missing_pretrained[:10]}"
        if self.unexpected:
            text += f"\n  unexpected keys (first 10): {self.unexpected[:10]}"
        return text


def to_backbone_keys(state: Mapping[str, torch.Tensor], num_stages: int = 4,
                     container: str = "") -> tuple[dict, list[str], list[str], str]:
    """Map a file's keys onto the backbone's (Microsoft) key space.

    Returns:
        (mapped state, unexpected keys, ignored keys, layout name).
    """
    prefix = max(PREFIXES, key=lambda p: sum(  # ties keep the earlier (longer) prefix
        k.startswith(p) and k[len(p):].startswith(BACKBONE_ROOTS) for k in state))
    roots = BACKBONE_ROOTS + ("head.", "norm.")
    stripped = {k[len(prefix):]: v for k, v in state.items()
                if k.startswith(prefix) and k[len(prefix):].startswith(roots)}
    unexpected = [k for k in state if not k.startswith(prefix) or k[len(prefix):] not in stripped]
    # timm numbers each downsample with the stage after it, and names its classifier head.fc
    timm = f"layers.{num_stages - 1}.downsample.reduction.weight" in stripped or any(
        k.startswith("head.fc.") for k in stripped)
    mapped, ignored = {}, []
    for key, value in stripped.items():
        if IGNORED.search(key):
            ignored.append(prefix + key)
        else:
            mapped[re.sub(r"^layers\.(\d+)\.downsample", lambda m: f"layers.{int(m.group(1)) - 1}"
                          f".downsample", key) if timm else key] = value
    layout = ("timm" if timm else "detectron2" if "bottom_up" in prefix
              else "mmcv" if prefix.endswith("backbone.") or container == "state_dict"
              else "microsoft")
    return mapped, unexpected, ignored, layout


def interpolate_position_table(table: torch.Tensor, size: int) -> torch.Tensor:
    """Bicubic resize of a ((2w-1)^2, heads) relative-position table to ``size`` rows."""
    old, new = int(round(table.shape[0] ** 0.5)), int(round(size ** 0.5))
    grid = table.T.reshape(1, table.shape[1], old, old).float()
    grid = F.interpolate(grid, size=(new, new), mode="bicubic", align_corners=False)
    return grid.reshape(table.shape[1], new * new).T.to(table.dtype)


def _fit_shapes(mapped: dict, model_state: dict, source: str) -> list[str]:
    interpolated = []
    for key, value in mapped.items():
        target = model_state.get(key)
        if target is None or value.shape == target.shape:
            continue
        if key.endswith("relative_position_bias_table") and value.shape[1] == target.shape[1]:
            mapped[key] = interpolate_position_table(value, target.shape[0])
            interpolated.append(key)
            continue
        raise ValueError(
            f"{source}: shape of {key!r} is {tuple(value.shape)} in the file but "
            f"{tuple(target.shape)} in the model; is the checkpoint for another Swin size "
            f"(embed_dim / depths / heads)?")
    return interpolated


def load_pretrained(backbone: nn.Module, path_or_state_dict) -> LoadReport:
    """Load pretrained weights into a Swin backbone.

    Args:
        backbone: a :class:`~mona_scale.backbones.SwinTransformer` (tuned or not).
        path_or_state_dict: a file path or an already loaded (possibly wrapped) dict.

    Returns:
        A :class:`LoadReport`. Raises ``ValueError`` when nothing matched or a shape
        disagrees, ``FileNotFoundError`` for a missing file.
    """
    if isinstance(path_or_state_dict, Mapping):
        source = "<state_dict>"
        state, container = unwrap_state_dict(path_or_state_dict, source)
    else:
        source = os.fspath(path_or_state_dict)
        state, container = read_state_dict(source)
    mapped, unexpected, ignored, layout = to_backbone_keys(state, len(backbone.layers), container)
    model_state = backbone.state_dict()
    unexpected += [k for k in mapped if k not in model_state]
    mapped = {k: v for k, v in mapped.items() if k in model_state}
    if not mapped:
        raise ValueError(
            f"{source}: no tensor matched the Swin backbone (file keys look like "
            f"{list(state)[:5]}; expected keys like {list(model_state)[:3]}). Refusing to "
            f"continue with random weights.")
    interpolated = _fit_shapes(mapped, model_state, source)
    report = LoadReport(source, layout, loaded=sorted(mapped),
                        missing=[k for k in model_state if k not in mapped],
                        unexpected=unexpected, ignored=ignored, interpolated=interpolated)
    _check_depth(report, backbone)
    backbone.load_state_dict(mapped, strict=False)
    logger.info(report.summary())
    return report


def _block_names(keys) -> list[str]:
    """``layers.2.blocks.6-17``-style names of the blocks (or other parts) ``keys`` touch."""
    blocks: dict[int, set[int]] = {}
    other = set()
    for key in keys:
        m = re.match(r"layers\.(\d+)\.blocks\.(\d+)\.", key)
        if m:
            blocks.setdefault(int(m.group(1)), set()).add(int(m.group(2)))
        else:
            other.add(key.rsplit(".", 1)[0])
    names = []
    for stage, ids in sorted(blocks.items()):
        lo, hi = min(ids), max(ids)
        span = lo if lo == hi else f"{lo}-{hi}" if len(ids) == hi - lo + 1 else sorted(ids)
        names.append(f"layers.{stage}.blocks.{span}")
    return names + sorted(other)


def _check_depth(report: LoadReport, backbone: nn.Module) -> None:
    """A file of another Swin depth leaves blocks random (or drops trained ones): refuse."""
    extra = [k for k in report.unexpected
             if re.match(r"layers\.\d+\.blocks\.\d+\.", k) and not IGNORED.search(k)
             and not is_adapter_key(k)]
    if not report.missing_pretrained and not extra:
        return
    depths = tuple(len(layer.blocks) for layer in backbone.layers)
    problems = []
    if report.missing_pretrained:
        problems.append(f"the model's {_block_names(report.missing_pretrained)} have no "
                        f"weights in the file ({len(report.missing_pretrained)} tensors)")
    if extra:
        problems.append(f"the file's {_block_names(extra)} do not exist in the model")
    raise ValueError(
        f"{report.source}: {'; '.join(problems)}. The model's Swin depths are {depths}: is the "
        f"checkpoint for another Swin size (e.g. Swin-T weights into Swin-S)? Refusing to "
        f"continue with randomly initialised backbone blocks.")


def save_microsoft_checkpoint(backbone: nn.Module, path: str | os.PathLike) -> int:
    """Write the backbone's pretrained part in Microsoft's layout (``{"model": sd}``).

    Adapters and the detection output norms ``norm0..3`` are left out, as in Microsoft's
    files, so the result loads anywhere a Swin ImageNet checkpoint does.

    Args:
        backbone: a :class:`~mona_scale.backbones.SwinTransformer`.
        path: output file (written atomically).

    Returns:
        The number of tensors written.
    """
    state = {k: v.detach().cpu().clone() for k, v in backbone.state_dict().items()
             if not is_adapter_key(k) and not re.match(r"norm\d\.", k)}
    with atomic_path(path) as tmp:
        torch.save({"model": state}, tmp)
    return len(state)
