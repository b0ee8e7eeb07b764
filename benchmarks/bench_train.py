"""Training-step cost of tuning methods on the quickstart detector, side by side.

Cascade Mask R-CNN with the quickstart's tiny Swin (configs/quickstart/
shapes_cascade_mona.py) on the synthetic shapes, a fixed batch, CPU. For each variant (its
own process): median seconds per iteration (forward, backward, AdamW step) after warm-up,
the peak RSS above the RSS before the first step, and trainable parameters.

Usage: python benchmarks/bench_train.py [--iters 8] [--batch 8]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time

from mona_scale.engine.config import load_config
from mona_scale.engine.defaults import build_model, optimizer_factory

import torch
from common import peak_rss_mb, print_table, rss_mb, run_worker
from detectron2.config import instantiate
from detectron2.utils.events import EventStorage

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "configs/quickstart/shapes_cascade_mona.py")
VARIANTS = {  # name -> overrides
    "full": ["tuning.method=full"],
    "mona": ["tuning.method=mona"],
    "mona+recompute": ["tuning.method=mona", "tuning.recompute=True"],
    "mona+ckpt": ["tuning.method=mona", "train.activation_checkpointing=True"],
    "fixed": ["tuning.method=fixed"],
}


def run_variant(variant: str, iters: int, batch: int) -> dict:
    """Inside a fresh process: time and memory of one variant."""
    torch.manual_seed(0)
    cfg = load_config(CONFIG, [*VARIANTS[variant], f"dataloader.train.total_batch_size={batch}",
                               "dataloader.train.num_workers=0", "train.output_dir=/tmp/bench"])
    model = build_model(cfg).train()
    optimizer = optimizer_factory(cfg)(model)
    batches = iter(instantiate(cfg.dataloader.train))
    data = [next(batches) for _ in range(iters + 1)]  # read outside the timed region
    rss_before, times = rss_mb(), []
    with EventStorage(0):
        for i, inputs in enumerate(data):
            start = time.perf_counter()
            sum(model(inputs).values()).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if i:
                times.append(time.perf_counter() - start)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"seconds": statistics.median(times), "step MB": peak_rss_mb() - rss_before,
            "trainable": trainable}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=8, help="timed iterations")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--worker", nargs=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(run_variant(args.worker[0], args.iters, args.batch)))
        return
    results = {v: run_worker(__file__, v, "--iters", str(args.iters), "--batch",
                             str(args.batch)) for v in VARIANTS}
    full = results["full"]
    rows = [{"variant": v, "trainable": r["trainable"], "s/iter": r["seconds"],
             "time vs full": r["seconds"] / full["seconds"], "step MB": r["step MB"],
             "memory vs full": r["step MB"] / full["step MB"]} for v, r in results.items()]
    print_table(f"Quickstart Cascade Mask R-CNN (tiny Swin), batch {args.batch}, CPU "
                f"{torch.get_num_threads()} threads", rows)


if __name__ == "__main__":
    main()
