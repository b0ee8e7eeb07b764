"""Mona speed and memory, side by side (CPU; each training-step variant in its own process).

Part 1: fused vs reference Mona forward+backward on Swin-B's four stage shapes for a
1024x1024 image (batch 2), weighted by the number of adapters per stage (2 per block): the
whole adapter, and its filter stage alone (the part the fusion rewrites).
Part 2: one backbone training step (forward, backward, AdamW step) at 512x512, batch 2, for
Swin-T and Swin-B: full fine-tuning, Mona (fused / reference / with activation
checkpointing) and the floor (frozen backbone, no adapters; nothing to train but the
stand-in head). Time is the median of the timed steps after a warm-up step; memory is the
process's peak RSS above its RSS just before the first step ("step memory": activations,
gradients and optimizer state) and the total peak RSS.

Usage: python benchmarks/bench_mona.py [--models swin_t swin_b] [--steps 3] [--quick]
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import time

from mona_scale.adapters import Mona

import torch
from common import peak_rss_mb, print_table, rss_mb, run_worker

SWIN_B_STAGES = [(128, 256, 2), (256, 128, 2), (512, 64, 18), (1024, 32, 2)]  # C, side, depth

STEP_VARIANTS = {  # name -> (tuning, activation checkpointing)
    "full": ("full", False),
    "mona": ({"method": "mona", "fused": True}, False),
    "mona-reference": ({"method": "mona", "fused": False}, False),
    "mona+recompute": ({"method": "mona", "fused": True, "recompute": True}, False),
    "mona+ckpt": ({"method": "mona", "fused": True}, True),
    "floor (fixed, no adapters)": ("fixed", False),
}


def _fwd_bwd(fn, x: torch.Tensor) -> float:
    inp = x.detach().requires_grad_()
    start = time.perf_counter()
    fn(inp).sum().backward()
    return time.perf_counter() - start


def time_pair(ref_fn, fused_fn, x: torch.Tensor, repeats: int) -> tuple[float, float]:
    """Median seconds of forward+backward of both functions, alternating to share noise."""
    ref_times, fused_times = [], []
    for i in range(repeats + 1):
        t_ref, t_fused = _fwd_bwd(ref_fn, x), _fwd_bwd(fused_fn, x)
        if i:
            ref_times.append(t_ref)
            fused_times.append(t_fused)
    return statistics.median(ref_times), statistics.median(fused_times)


def bench_fused(repeats: int, batch: int = 2) -> list[dict]:
    """Part 1 rows: whole adapter and filter stage alone, per Swin-B stage and in total."""
    rows = []
    totals = {"adapter": [0.0, 0.0], "filter stage": [0.0, 0.0]}
    for dim, side, depth in SWIN_B_STAGES:
        fused = Mona(dim, fused=True)
        reference = Mona(dim, fused=False)
        reference.load_state_dict(fused.state_dict())
        hw, count = (side, side), 2 * depth
        cases = {"adapter": ("forward", torch.randn(batch, side * side, dim)),
                 "filter stage": ("filter_stage", torch.randn(batch, side * side, 64))}
        for part, (method, inp) in cases.items():
            t_ref, t_fused = time_pair(functools.partial(getattr(reference, method), hw=hw),
                                       functools.partial(getattr(fused, method), hw=hw),
                                       inp, repeats)
            totals[part][0] += count * t_ref
            totals[part][1] += count * t_fused
            rows.append({"part": part, "stage": f"C={dim} {side}x{side} x{count}",
                         "reference ms": t_ref * 1e3, "fused ms": t_fused * 1e3,
                         "fused/reference": t_fused / t_ref})
    for part, (t_ref, t_fused) in totals.items():
        rows.append({"part": part, "stage": "all 48 adapters", "reference ms": t_ref * 1e3,
                     "fused ms": t_fused * 1e3, "fused/reference": t_fused / t_ref})
    return rows


def run_step_worker(model: str, variant: str, steps: int, size: int, batch: int) -> dict:
    """Part 2, inside a fresh process: time and memory of one training-step variant."""
    from mona_scale.modeling import build_swin
    torch.manual_seed(0)
    tuning, ckpt = STEP_VARIANTS[variant]
    backbone = build_swin(model, tuning, activation_checkpointing=ckpt, drop_path_rate=0.0)
    head = torch.nn.Conv2d(backbone.num_features[-1], 1, 1)  # stand-in for a neck/head
    params = [p for p in backbone.parameters() if p.requires_grad] + list(head.parameters())
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    images = torch.randn(batch, 3, size, size)
    rss_before = rss_mb()
    times = []
    for i in range(steps + 1):
        start = time.perf_counter()
        feats = backbone(images)
        loss = head(feats["res5"]).square().mean() + sum(f.mean() for f in feats.values())
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if i:
            times.append(time.perf_counter() - start)
    peak = peak_rss_mb()
    return {"seconds": statistics.median(times), "step MB": peak - rss_before, "peak MB": peak,
            "trainable": sum(p.numel() for p in params)}


def bench_steps(models, steps, size, batch) -> list[dict]:
    """Part 2 rows, each variant measured in its own subprocess."""
    rows = []
    for model in models:
        results = {}
        for variant in STEP_VARIANTS:
            results[variant] = run_worker(__file__, model, variant, "--steps", str(steps),
                                          "--size", str(size), "--batch", str(batch))
        full = results["full"]
        for variant, r in results.items():
            rows.append({"model": model, "variant": variant, "s/step": r["seconds"],
                         "time vs full": r["seconds"] / full["seconds"],
                         "step MB": r["step MB"],
                         "step mem vs full": r["step MB"] / full["step MB"],
                         "peak MB": r["peak MB"], "peak vs full": r["peak MB"] / full["peak MB"]})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["swin_t", "swin_b"])
    parser.add_argument("--steps", type=int, default=3, help="timed steps after one warm-up")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7, help="timed adapter passes")
    parser.add_argument("--worker", nargs=2, metavar=("MODEL", "VARIANT"), help=argparse.SUPPRESS)
    parser.add_argument("--skip-adapter", action="store_true", help="skip part 1")
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    if args.worker:
        print(json.dumps(run_step_worker(*args.worker, args.steps, args.size, args.batch)))
        return
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU")
    if not args.skip_adapter:
        print_table("Part 1: Mona forward+backward, Swin-B stage shapes at 1024x1024, batch 2",
                    bench_fused(args.repeats))
    print_table(f"Part 2: one backbone training step, {args.size}x{args.size}, "
                f"batch {args.batch}", bench_steps(args.models, args.steps, args.size, args.batch))


if __name__ == "__main__":
    main()
