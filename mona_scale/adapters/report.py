"""Parameter (and optionally FLOP) report of the tuning methods.

``python -m mona_scale.adapters.report --model swin_b`` prints, for every method, the
backbone's total and trainable parameters, the trainable share and the reference count
of MONA.md section 5 with a match mark. Backbones are built on the meta device, so the
table for Swin-L takes about a second and allocates no weights.
"""
from __future__ import annotations

import argparse
import math
from dataclasses import dataclass

import torch
from tabulate import tabulate
from torch import nn

from .tuning import tuning_method_names

__all__ = ["REFERENCE_COUNTS", "ParameterCounts", "parameter_counts",
           "tuning_table", "main"]

# Trainable backbone parameters of the authors' reference code and logs (MONA.md section 5):
# (model, method) -> (count, tolerance). Swin-L partial-1 is given as "28.34M".
REFERENCE_COUNTS: dict[tuple[str, str], tuple[int, int]] = {
    ("swin_l", "full"): (194_998_164, 0), ("swin_b", "full"): (86_745_016, 0),
    ("swin_l", "fixed"): (0, 0), ("swin_b", "fixed"): (0, 0),
    ("swin_l", "bitfit"): (207_168, 0), ("swin_b", "bitfit"): (138_112, 0),
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
    """GFLOPs (fvcore's count: one fused multiply-add = one flop) of one forward pass."""
    from fvcore.nn import FlopCountAnalysis
    analysis = FlopCountAnalysis(module.eval(), torch.zeros(1, 3, image_size, image_size))
    analysis.set_op_handle("aten::scaled_dot_product_attention", _sdpa_flops)
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    return analysis.total() / 1e9


def tuning_table(model: str = "swin_b", flops_size: int = 0) -> list[dict]:
    """One row per tuning method for the named Swin size.

    Args:
        model: ``swin_t|swin_s|swin_b|swin_l``.
        flops_size: if > 0, also count GFLOPs at this square size (builds real weights).

    Returns:
        Rows with method, total, trainable, share (%), reference and match.
    """
    from mona_scale.backbones import build_swin
    rows = []
    for method in tuning_method_names():
        with torch.device("meta"):
            counts = parameter_counts(build_swin(model, method))
        expected = REFERENCE_COUNTS.get((model, method))
        row = {"method": method, "total": counts.total, "trainable": counts.trainable,
               "share %": round(counts.share, 3),
               "reference": expected[0] if expected else None,
               "match": None if expected is None
               else abs(counts.trainable - expected[0]) <= expected[1]}
        if flops_size:
            row["GFLOPs"] = round(count_flops(build_swin(model, method), flops_size), 2)
        rows.append(row)
    return rows


def format_table(rows: list[dict]) -> str:
    """Render :func:`tuning_table` rows as a text table."""
    def cell(key, value):
        if key == "match":
            return "-" if value is None else ("yes" if value else "NO")
        if key == "reference" and value is None:
            return "-"
        return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else value
    return tabulate([[cell(k, v) for k, v in r.items()] for r in rows],
                    headers=list(rows[0]), stralign="right")


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns 1 if a reference count does not match."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="swin_b", help="swin_t|swin_s|swin_b|swin_l")
    parser.add_argument("--flops", type=int, default=0, metavar="SIZE",
                        help="also count GFLOPs at SIZE x SIZE (0 = skip)")
    args = parser.parse_args(argv)
    rows = tuning_table(args.model, args.flops)
    print(f"Backbone parameters of {args.model} per tuning method "
          f"(heads excluded; reference = MONA.md section 5)")
    print(format_table(rows))
    return 1 if any(r["match"] is False for r in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
