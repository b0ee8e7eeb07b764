"""Mona against the floor, side by side (CPU): time and memory of a Swin-B training step.

The floor is what every Mona step must at least do: the frozen backbone WITHOUT adapters,
back-propagating to its input (the heads above a backbone need its input gradients; a
frozen Linear still costs its input-gradient matmul and attention has no weights to skip).
Every variant gets the same images with ``requires_grad`` and the same stand-in head
(a 1x1 conv on res5 plus the mean of every level, AdamW on what trains).

Part 1: the Mona op alone (the filter stage: three depthwise convs + 1x1 aggregation) and
the whole adapter, fused vs reference, forward+backward on Swin-B's stage shapes for the
step's image size (batch 2), weighted by the adapters per stage (2 per block).
Part 2: step time at each size and precision (fp32; bf16 autocast): floor, Mona (fused),
Mona (reference path), Mona with ``tuning.recompute=True``, full fine-tuning. All variants
live in one process per (size, precision) and run in alternating rounds (noise hits each
alike); the median of the timed rounds after one warm-up round; ratios to the floor.
Part 3: step memory, each variant in its own process (peak RSS above the RSS just before
the first step: activations, gradients, optimizer state), ratios to the floor.
``--compile`` adds Part 4: Mona with ``train.compile=adapters`` / ``backbone`` (inductor)
against eager Mona and the floor, with the compile time (first step minus a later one).

Usage (the quiet-machine rerun, about 8 minutes on 2 free cores):
    python benchmarks/bench_mona.py
Quicker: ``--sizes 224 --precisions fp32 --skip memory``; add ``--compile`` for Part 4
(about 4 more minutes, mostly compilation).
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

SWIN_B_STAGES = [(128, 4, 2), (256, 8, 2), (512, 16, 18), (1024, 32, 2)]  # C, stride, depth

VARIANTS = {  # name -> (tuning, train.compile)
    "floor": ("fixed", ""),
    "mona": ({"method": "mona"}, ""),
    "mona-reference": ({"method": "mona", "fused": False}, ""),
    "mona+recompute": ({"method": "mona", "recompute": True}, ""),
    "full": ("full", ""),
}
COMPILE_VARIANTS = {
    "floor": ("fixed", ""),
    "mona": ({"method": "mona"}, ""),
    "mona, compile adapters": ({"method": "mona"}, "adapters"),
    "mona, compile backbone": ({"method": "mona"}, "backbone"),
}
MEMORY_VARIANTS = ("floor", "mona", "mona+recompute", "full")


def _fwd_bwd(fn, x: torch.Tensor) -> float:
    # a dense output gradient, as in a network (``.sum().backward()`` would pass a stride-0
    # tensor of ones, which the matmul backward first copies)
    inp = x.detach().requires_grad_()
    start = time.perf_counter()
    out = fn(inp)
    out.backward(_dense_grad(out.shape))
    return time.perf_counter() - start


@functools.lru_cache(maxsize=4)
def _dense_grad(shape: torch.Size) -> torch.Tensor:
    return torch.randn(shape)


def time_pair(ref_fn, fused_fn, x: torch.Tensor, repeats: int) -> tuple[float, float]:
    """Median seconds of forward+backward of both functions, alternating to share noise."""
    ref_times, fused_times = [], []
    for i in range(repeats + 1):
        t_ref, t_fused = _fwd_bwd(ref_fn, x), _fwd_bwd(fused_fn, x)
        if i:
            ref_times.append(t_ref)
            fused_times.append(t_fused)
    return statistics.median(ref_times), statistics.median(fused_times)


def bench_op(size: int, repeats: int, batch: int = 2) -> list[dict]:
    """Part 1 rows: the op (filter stage) and the whole adapter, per Swin-B stage and total."""
    torch.manual_seed(0)
    rows = []
    totals = {"op (filter stage)": [0.0, 0.0], "adapter": [0.0, 0.0]}
    for dim, stride, depth in SWIN_B_STAGES:
        side = size // stride
        fused = Mona(dim, fused=True).train()
        reference = Mona(dim, fused=False).train()
        reference.load_state_dict(fused.state_dict())
        hw, count = (side, side), 2 * depth
        cases = {"op (filter stage)": ("filter_stage", torch.randn(batch, side * side, 64)),
                 "adapter": ("forward", torch.randn(batch, side * side, dim))}
        for part, (method, inp) in cases.items():
            t_ref, t_fused = time_pair(functools.partial(getattr(reference, method), hw=hw),
                                       functools.partial(getattr(fused, method), hw=hw),
                                       inp, repeats)
            totals[part][0] += count * t_ref
            totals[part][1] += count * t_fused
            rows.append({"part": part, "stage": f"{batch}x{side}x{side}x{dim} x{count}",
                         "reference ms": t_ref * 1e3, "fused ms": t_fused * 1e3,
                         "fused/reference": t_fused / t_ref})
    for part, (t_ref, t_fused) in totals.items():
        rows.append({"part": part, "stage": "all 48 adapters", "reference ms": t_ref * 1e3,
                     "fused ms": t_fused * 1e3, "fused/reference": t_fused / t_ref})
    return rows


class StepRunner:
    """One variant's backbone, stand-in head and optimizer; ``step()`` times one step."""

    def __init__(self, model: str, tuning, compile_target: str, size: int, batch: int,
                 precision: str):
        from mona_scale.engine.compile import compile_model
        from mona_scale.modeling import build_swin
        torch.manual_seed(0)
        self.backbone = build_swin(model, tuning, drop_path_rate=0.0)
        compile_model(self.backbone, compile_target)
        self.head = torch.nn.Conv2d(self.backbone.num_features[-1], 1, 1)
        params = [p for p in self.backbone.parameters() if p.requires_grad]
        params += list(self.head.parameters())
        self.trainable = sum(p.numel() for p in params)
        self.optimizer = torch.optim.AdamW(params, lr=1e-4)
        self.images = torch.randn(batch, 3, size, size)
        self.bf16 = precision == "bf16"

    def step(self) -> float:
        """Seconds of one step: forward, backward to the input, AdamW."""
        start = time.perf_counter()
        images = self.images.clone().requires_grad_()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            feats = self.backbone(images)
            loss = self.head(feats["res5"]).float().square().mean()
            loss = loss + sum(f.float().mean() for f in feats.values())
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return time.perf_counter() - start


def time_worker(model: str, size: int, batch: int, precision: str, rounds: int,
                variants: dict) -> dict:
    """In a fresh process: all variants in alternating rounds; median seconds and first."""
    runners = {name: StepRunner(model, tuning, target, size, batch, precision)
               for name, (tuning, target) in variants.items()}
    times: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(rounds + 1):
        for name, runner in runners.items():
            times[name].append(runner.step())
    return {name: {"seconds": statistics.median(t[1:]), "first": t[0],
                   "trainable": runners[name].trainable} for name, t in times.items()}


def memory_worker(model: str, size: int, batch: int, precision: str, variant: str) -> dict:
    """In a fresh process: one variant's step memory (two steps: AdamW state included)."""
    tuning, target = VARIANTS[variant]
    runner = StepRunner(model, tuning, target, size, batch, precision)
    rss_before = rss_mb()
    for _ in range(2):
        runner.step()
    return {"step MB": peak_rss_mb() - rss_before, "peak MB": peak_rss_mb()}


def _worker(kind: str, spec: dict) -> dict:
    if kind == "time":
        table = COMPILE_VARIANTS if spec.pop("compile") else VARIANTS
        return time_worker(**spec, variants=table)
    return memory_worker(**spec)


def bench_time(model, sizes, precisions, batch, rounds, compile_=False) -> list[dict]:
    """Part 2 (or 4) rows: one process per (size, precision), variants alternating."""
    rows = []
    for size in sizes:
        for precision in precisions:
            spec = dict(model=model, size=size, batch=batch, precision=precision,
                        rounds=rounds or (6 if size < 384 else 2), compile=compile_)
            result = run_worker(__file__, "time", json.dumps(spec))
            floor = result["floor"]["seconds"]
            for name, r in result.items():
                row = {"size": size, "precision": precision, "variant": name,
                       "trainable": r["trainable"], "s/step": r["seconds"],
                       "vs floor": r["seconds"] / floor}
                if compile_:
                    row["compile s"] = r["first"] - r["seconds"]
                rows.append(row)
    return rows


def bench_memory(model, size, precision, batch) -> list[dict]:
    """Part 3 rows: one process per variant."""
    results = {v: run_worker(__file__, "memory", json.dumps(dict(
        model=model, size=size, batch=batch, precision=precision, variant=v)))
        for v in MEMORY_VARIANTS}
    floor = results["floor"]["step MB"]
    return [{"size": size, "precision": precision, "variant": v, "step MB": r["step MB"],
             "vs floor": r["step MB"] / floor, "peak MB": r["peak MB"]}
            for v, r in results.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="swin_b")
    parser.add_argument("--sizes", nargs="+", type=int, default=[224, 512])
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"],
                        choices=["fp32", "bf16"])
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=0,
                        help="timed rounds after a warm-up (0: 6 below 384 px, else 2)")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes in Part 1")
    parser.add_argument("--memory-size", type=int, default=512, help="Part 3 image size")
    parser.add_argument("--skip", nargs="*", default=[], choices=["op", "time", "memory"])
    parser.add_argument("--compile", action="store_true", help="add Part 4")
    parser.add_argument("--worker", nargs=2, metavar=("KIND", "SPEC"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    if args.worker:
        print(json.dumps(_worker(args.worker[0], json.loads(args.worker[1]))))
        return
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU, {args.model}, "
          f"batch {args.batch}")
    if "op" not in args.skip:
        for size in args.sizes:
            print_table(f"Part 1: Mona op and adapter forward+backward, fused vs reference, "
                        f"Swin-B stage shapes at {size}x{size}", bench_op(size, args.repeats))
    if "time" not in args.skip:
        print_table("Part 2: training step time vs the floor (alternating rounds, one process "
                    "per size and precision)", bench_time(args.model, args.sizes,
                                                          args.precisions, args.batch,
                                                          args.rounds))
    if "memory" not in args.skip:
        rows = [r for p in args.precisions
                for r in bench_memory(args.model, args.memory_size, p, args.batch)]
        print_table("Part 3: step memory vs the floor (one process per variant)", rows)
    if args.compile:
        print_table("Part 4: train.compile (inductor), alternating rounds",
                    bench_time(args.model, args.sizes[:1], args.precisions[:1], args.batch,
                               args.rounds, compile_=True))


if __name__ == "__main__":
    main()
