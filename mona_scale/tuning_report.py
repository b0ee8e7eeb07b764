"""Parameter and compute report of the tuning methods.

``python -m mona_scale.tuning_report --model swin_b [--size 224]`` prints, for every
method, the backbone's total and trainable parameters, the trainable share, the count the
authors' code gives (docs/method.md, "Tuning methods") with a match mark, and the forward
GFLOPs of the backbone at ``size`` x ``size`` (fvcore's count: one multiply-add = one
flop) with the extra compute over the frozen backbone. Parameter counts use meta-device
backbones; FLOPs trace real ones (about 2 s per method for Swin-B on one CPU core;
``--size 0`` skips them).
"""
from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from dataclasses import dataclass

from mona_scale.adapters.tuning import TUNING_METHODS
from mona_scale.modeling.tuned_backbone import build_swin

import torch
from tabulate import tabulate
from torch import nn

__all__ = ["REFERENCE_COUNTS", "ParameterCounts", "parameter_counts",
           "tuning_table", "main"]

# Trainable backbone parameters in the authors' code and logs (four outputs, norm0..norm3):
# (model, method) -> (count, tolerance). Swin-L partial-1 is given as "28.34M". BitFit
# trains every parameter whose name contains "bias", relative-position tables included.
REFERENCE_COUNTS: dict[tuple[str, str], tuple[int, int]] = {
    ("swin_l", "full"): (194_998_164, 0), ("swin_b", "full"): (86_745_016, 0),
    ("swin_l", "fixed"): (0, 0), ("swin_b", "fixed"): (0, 0),
    ("swin_l", "bitfit"): (302_484, 0), ("swin_b", "bitfit"): (201_656, 0),
    ("swin_l", "ln"): (89_088, 0), ("swin_b", "ln"): (59_392, 0),
    ("swin_l", "partial-1"): (28_340_000, 5_000), ("swin_b", "partial-1"): (12_601_632, 0),
    ("swin_l", "adapter"): (4_659_456, 0), ("swin_l", "adaptformer"): (2_329_728, 0),
    ("swin_l", "lora"): (4_620_288, 0),
    ("swin_l", "mona"): (5_267_712, 0), ("swin_b", "mona"): (3_667_456, 0),
    ("swin_t", "mona"): (1_408_128, 0), ("swin_t", "fixed"): (0, 0),
}


@dataclass(frozen=True)
class ParameterCounts:
    """Total and trainable parameters of a module."""

    total: int
    trainable: int

    @property
    def share(self) -> float:
        """Trainable / total, in percent."""
        return 100.0 * self.trainable / max(self.total, 1)


def parameter_counts(module: nn.Module) -> ParameterCounts:
    """Count the parameters of ``module``.

    Args:
        module: any module (meta-device modules work).

    Returns:
        :class:`ParameterCounts` (shared parameters counted once).
    """
    params = list(module.parameters())
    return ParameterCounts(sum(p.numel() for p in params),
                           sum(p.numel() for p in params if p.requires_grad))


def _sdpa_flops(inputs, outputs) -> int:
    """fvcore handle for scaled_dot_product_attention: q@k^T and attn@v multiply-adds."""
    from fvcore.nn.jit_handles import get_shape
    q, v = get_shape(inputs[0]), get_shape(inputs[2])
    batch = math.prod(q[:-2])
    return batch * q[-2] * v[-2] * (q[-1] + v[-1])


def count_flops(module: nn.Module, image_size: int = 224) -> float:
    """Forward GFLOPs of ``module`` on one ``image_size`` x ``image_size`` RGB image.

    Args:
        module: a backbone (or model) taking an (N, 3, H, W) tensor; put in eval mode.
        image_size: square input side.

    Returns:
        fvcore's count (one fused multiply-add = one flop) in units of 1e9, with
        ``scaled_dot_product_attention`` counted as its two matrix products.
    """
    from fvcore.nn import FlopCountAnalysis
    analysis = FlopCountAnalysis(module.eval(), torch.zeros(1, 3, image_size, image_size))
    analysis.set_op_handle("aten::scaled_dot_product_attention", _sdpa_flops)
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    return analysis.total() / 1e9


def tuning_table(model: str = "swin_b", flops_size: int = 0,
                 methods: Sequence[str] | None = None) -> list[dict]:
    """One row per tuning method for the named Swin size.

    Args:
        model: ``swin_t|swin_s|swin_b|swin_l``.
        flops_size: if > 0, also count forward GFLOPs at this square size (builds real
            weights, one method at a time).
        methods: the methods to report (default: all, in the paper's order); with
            ``flops_size``, ``fixed`` is always counted as the baseline.

    Returns:
        Rows with method, total, trainable, share (%), reference and match; with
        ``flops_size`` also ``GFLOPs`` and ``extra compute %`` (over ``fixed``).
    """
    rows = []
    names = TUNING_METHODS.names() if methods is None else list(methods)
    if flops_size and "fixed" not in names:
        names.insert(0, "fixed")
    for method in names:
        with torch.device("meta"):
            counts = parameter_counts(build_swin(model, method))
        expected = REFERENCE_COUNTS.get((model, method))
        row = {"method": method, "total": counts.total, "trainable": counts.trainable,
               "share %": round(counts.share, 3),
               "reference": expected[0] if expected else None,
               "match": None if expected is None
               else abs(counts.trainable - expected[0]) <= expected[1]}
        if flops_size:
            row["GFLOPs"] = count_flops(build_swin(model, method), flops_size)
        rows.append(row)
    if flops_size:
        base = next(r["GFLOPs"] for r in rows if r["method"] == "fixed")
        for row in rows:
            row["extra compute %"] = 100.0 * (row["GFLOPs"] - base) / base
    return rows


def format_table(rows: list[dict]) -> str:
    """Render :func:`tuning_table` rows as a text table."""
    def cell(key, value):
        if key == "match":
            return "-" if value is None else ("yes" if value else "NO")
        if key == "reference" and value is None:
            return "-"
        if key == "GFLOPs":
            return f"{value:.3f}"
        if key == "extra compute %":
            return f"{value:.2f}"
        return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else value
    return tabulate([[cell(k, v) for k, v in r.items()] for r in rows],
                    headers=list(rows[0]), stralign="right")


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns 1 if a reference count does not match."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="swin_b", help="swin_t|swin_s|swin_b|swin_l")
    parser.add_argument("--size", type=int, default=224, metavar="SIZE",
                        help="count forward GFLOPs at SIZE x SIZE (default 224; 0 = skip)")
    args = parser.parse_args(argv)
    if args.size < 0:
        parser.error(f"--size must be >= 0, got {args.size}")
    rows = tuning_table(args.model, args.size)
    flops = f"; GFLOPs of one {args.size}x{args.size} forward" if args.size else ""
    print(f"Backbone parameters of {args.model} per tuning method (heads excluded; "
          f"reference = the authors' code, docs/method.md{flops})")
    print(format_table(rows))
    return 1 if any(r["match"] is False for r in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
