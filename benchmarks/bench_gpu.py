"""Training-step cost of tuning methods on one GPU: the COCO paper model, side by side.

Part 1: Swin-B Cascade Mask R-CNN (configs/coco/cascade_mask_rcnn_swin_b_mona_3x.py, 80
classes) at 1024x1024, batch 2, bf16 autocast, AdamW: seconds per iteration (median of the
timed iterations after warm-up, each ended by torch.cuda.synchronize) and peak memory
(torch.cuda.max_memory_allocated, reset between variants: weights, gradients, optimizer
state and activations) for full fine-tuning, fixed (frozen backbone), Mona, and Mona with
activation checkpointing, with ratios against Mona. The batch is synthetic (random images,
12 box/mask instances per image) so no data set is needed.
Part 2: the Mona adapter alone, fused vs reference path, on Swin-B's first-stage activation
at 1024x1024 (batch 2, 256x256 tokens of width 128, fp32 residual stream, bf16 autocast),
forward and forward+backward, against a memory-bandwidth floor: the bytes the op must move
at the token width (forward: read x, write out; backward also: read x and the output
gradient, write the input gradient; fp32) divided by the device-to-device copy bandwidth
measured in the same run (bytes read + written per second).

Without CUDA, ``--cpu-smoke`` runs the same code on the quickstart's tiny Swin detector at
64x64 and a small adapter shape (a code-path check for CI, not a measurement).

Usage: python benchmarks/bench_gpu.py [--iters 10] [--warmup 3] [--output DIR]
       python benchmarks/bench_gpu.py --cpu-smoke
"""
from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import statistics
import time
from collections.abc import Callable

from mona_scale.adapters import Mona
from mona_scale.engine.config import load_config
from mona_scale.engine.defaults import build_model, optimizer_factory
from mona_scale.engine.precision import Precision

import torch
from common import print_table
from detectron2.structures import BitMasks, Boxes, Instances
from detectron2.utils.events import EventStorage

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COCO_CONFIG = os.path.join(ROOT, "configs/coco/cascade_mask_rcnn_swin_b_mona_3x.py")
SMOKE_CONFIG = os.path.join(ROOT, "configs/quickstart/shapes_cascade_mona.py")
VARIANTS = {  # name -> overrides
    "full": ["tuning.method=full"],
    "fixed": ["tuning.method=fixed"],
    "mona": ["tuning.method=mona"],
    "mona+ckpt": ["tuning.method=mona", "train.activation_checkpointing=True"],
}
INSTANCES_PER_IMAGE = 12


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(fn: Callable[[], None], iters: int, warmup: int,
                   device: torch.device) -> float:
    """Median wall time of ``fn`` over ``iters`` calls after ``warmup`` calls, each call
    ended by a device synchronisation."""
    times = []
    for i in range(warmup + iters):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def synthetic_batch(batch: int, size: int, num_classes: int, seed: int = 0) -> list[dict]:
    """Detectron2 training inputs: random images with random box-shaped instance masks."""
    g = torch.Generator().manual_seed(seed)
    inputs = []
    for _ in range(batch):
        xy = torch.rand(INSTANCES_PER_IMAGE, 2, generator=g) * size * 0.7
        wh = (torch.rand(INSTANCES_PER_IMAGE, 2, generator=g) * 0.3 + 0.05) * size
        boxes = torch.cat([xy, (xy + wh).clamp(max=size)], dim=1).round()
        masks = torch.zeros(INSTANCES_PER_IMAGE, size, size, dtype=torch.bool)
        for m, (x0, y0, x1, y1) in zip(masks, boxes.long().tolist(), strict=True):
            m[y0:y1, x0:x1] = True
        instances = Instances((size, size))
        instances.gt_boxes = Boxes(boxes)
        instances.gt_classes = torch.randint(num_classes, (INSTANCES_PER_IMAGE,), generator=g)
        instances.gt_masks = BitMasks(masks)
        image = torch.randint(0, 256, (3, size, size), dtype=torch.uint8, generator=g)
        inputs.append({"image": image, "height": size, "width": size, "instances": instances})
    return inputs


def reset_memory(device: torch.device) -> None:
    """Free what the previous variant left and restart the peak-memory counter."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device: torch.device) -> float | None:
    """Peak allocated device memory since the last reset, GiB (None on CPU)."""
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def bench_variant(config: str, overrides: list[str], device: torch.device, precision: str,
                  batch: int, size: int, iters: int, warmup: int) -> dict:
    """One training-step variant: s/iter, peak memory and trainable parameters."""
    reset_memory(device)
    torch.manual_seed(0)
    cfg = load_config(config, [*overrides, f"train.device={device.type}",
                               "train.output_dir=/tmp/bench_gpu"])
    model = build_model(cfg).train()
    optimizer = optimizer_factory(cfg)(model)
    amp = Precision(precision, device.type)
    inputs = synthetic_batch(batch, size, int(cfg.model.roi_heads.num_classes))

    def step() -> None:
        with amp.autocast():
            loss = sum(model(inputs).values())
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    with EventStorage(0):
        seconds = median_seconds(step, iters, warmup, device)
    record = {"s/iter": seconds, "peak GiB": peak_gib(device),
              "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad)}
    return record  # the model and optimizer go with this frame; the next reset frees them


def copy_bandwidth(device: torch.device, nbytes: int, iters: int = 10) -> float:
    """Device-to-device copy bandwidth, bytes read + written per second."""
    src = torch.empty(nbytes, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    seconds = median_seconds(lambda: dst.copy_(src), iters, 3, device)
    return 2 * nbytes / seconds


def bench_adapter(device: torch.device, precision: str, batch: int, side: int, dim: int,
                  iters: int, warmup: int, bandwidth: float) -> list[dict]:
    """Fused vs reference Mona, forward and forward+backward, against the bandwidth floor."""
    torch.manual_seed(0)
    fused = Mona(dim, dropout=0.0, fused=True).to(device)
    reference = Mona(dim, dropout=0.0, fused=False).to(device)
    reference.load_state_dict(fused.state_dict())
    x = torch.randn(batch, side * side, dim, device=device)
    grad = torch.randn_like(x)
    amp = Precision(precision, device.type)
    tensor_bytes = x.numel() * x.element_size()
    rows, times = [], {}
    for path, mona in (("reference", reference), ("fused", fused)):
        def forward(mona=mona) -> None:
            with torch.no_grad(), amp.autocast():
                mona(x, (side, side))

        def forward_backward(mona=mona) -> None:
            inp = x.detach().requires_grad_()
            with amp.autocast():
                out = mona(inp, (side, side))
            out.backward(grad)

        for part, fn, moved in (("forward", forward, 2), ("forward+backward",
                                                          forward_backward, 5)):
            seconds = median_seconds(fn, iters, warmup, device)
            floor = moved * tensor_bytes / bandwidth
            times[path, part] = seconds
            rows.append({"path": path, "pass": part, "ms": seconds * 1e3,
                         "vs reference": seconds / times["reference", part],
                         "floor ms": floor * 1e3, "x floor": seconds / floor})
    return rows


def markdown_table(rows: list[dict]) -> str:
    """Rows as a GitHub markdown table (floats with 3 significant decimals)."""
    def cell(v) -> str:
        if v is None:
            return "n/a"
        return f"{v:.3f}" if isinstance(v, float) else str(v)
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    lines += ["| " + " | ".join(cell(v) for v in r.values()) + " |" for r in rows]
    return "\n".join(lines)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({torch.get_num_threads()} threads)"


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=10, help="timed iterations")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--size", type=int, default=1024, help="image side")
    parser.add_argument("--precision", choices=["fp32", "bf16", "fp16"],
                        help="autocast precision (default: bf16; fp32 with --cpu-smoke)")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--cpu-smoke", action="store_true",
                        help="tiny Swin at 64x64 on CPU: exercises the code, measures nothing")
    parser.add_argument("--output", default=os.path.join(ROOT, "output/bench_gpu"),
                        help="directory for bench_gpu.json and bench_gpu.md")
    args = parser.parse_args(argv)
    if args.cpu_smoke:
        device, config = torch.device("cpu"), SMOKE_CONFIG
        args.size, args.iters, args.warmup = 64, 1, 0
        args.precision = args.precision or "fp32"  # CPU bf16 kernels are slow
        adapter_shape, copy_bytes = (16, 32), 2**24  # side, width
    else:
        if not torch.cuda.is_available():
            parser.error("no CUDA device: run on a GPU, or pass --cpu-smoke")
        device, config = torch.device("cuda", torch.cuda.current_device()), COCO_CONFIG
        adapter_shape, copy_bytes = (args.size // 4, 128), 2**30  # Swin-B stage 1
        args.precision = args.precision or "bf16"
    title = (f"{'Quickstart tiny Swin' if args.cpu_smoke else 'Swin-B'} Cascade Mask R-CNN, "
             f"{args.size}x{args.size}, batch {args.batch}, {args.precision}, "
             f"{device_name(device)}")
    print(f"{title}; torch {torch.__version__}", flush=True)

    results = {}
    for variant in args.variants:
        results[variant] = bench_variant(config, VARIANTS[variant], device, args.precision,
                                         args.batch, args.size, args.iters, args.warmup)
        print(f"  {variant}: {results[variant]}", flush=True)
    base = results.get("mona")
    step_rows = []
    for variant, r in results.items():
        row = {"variant": variant, "trainable": r["trainable"], "s/iter": r["s/iter"],
               "time vs mona": r["s/iter"] / base["s/iter"] if base else None,
               "peak GiB": r["peak GiB"],
               "memory vs mona": (r["peak GiB"] / base["peak GiB"]
                                  if base and r["peak GiB"] else None)}
        step_rows.append(row)

    bandwidth = copy_bandwidth(device, copy_bytes)
    side, dim = adapter_shape
    adapter_rows = bench_adapter(device, args.precision, args.batch, side, dim,
                                 max(args.iters, 5) * (1 if args.cpu_smoke else 5),
                                 max(args.warmup, 1), bandwidth)
    adapter_title = (f"Mona adapter alone: batch {args.batch}, {side}x{side} tokens of width "
                     f"{dim}, {args.precision} autocast; copy bandwidth "
                     f"{bandwidth / 1e12:.3f} TB/s (read + write)")
    print_table(title, step_rows)
    print_table(adapter_title, adapter_rows)

    report = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device": device_name(device), "torch": torch.__version__,
        "cuda": torch.version.cuda, "smoke": bool(args.cpu_smoke),
        "settings": {"config": os.path.relpath(config, ROOT), "size": args.size,
                     "batch": args.batch, "precision": args.precision, "iters": args.iters,
                     "warmup": args.warmup},
        "copy_bandwidth_bytes_per_s": bandwidth,
        "training_step": step_rows, "adapter": adapter_rows,
    }
    os.makedirs(args.output, exist_ok=True)
    with open(os.path.join(args.output, "bench_gpu.json"), "w") as f:
        json.dump(report, f, indent=2)
    with open(os.path.join(args.output, "bench_gpu.md"), "w") as f:
        note = " (CPU smoke run: a code-path check, not a measurement)" if args.cpu_smoke else ""
        f.write(f"### {title}{note}\n\n{report['date']}, torch {torch.__version__}\n\n"
                f"{markdown_table(step_rows)}\n\n### {adapter_title}\n\n"
                f"{markdown_table(adapter_rows)}\n")
    print(f"\nwrote {args.output}/bench_gpu.json and bench_gpu.md")
    return report


if __name__ == "__main__":
    main()
