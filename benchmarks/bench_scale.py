"""Sharding strategies side by side: per-rank bytes of parameters, gradients and optimizer
state, peak RSS and seconds per iteration, for ddp / fsdp / ZeRO-1/2/3 at world size 1
and 2 (gloo, CPU), on a tiny Swin and a Swin-B classifier tuned with Mona; then the same
bytes projected by formula to 8 and 64 GPUs for Swin-B and Swin-L, Mona vs full tuning.

    python benchmarks/bench_scale.py [--models tiny swin_b] [--iters 4] [--size 224]

Each (model, strategy, world size) runs in its own torchrun launch so peak RSS is its own.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import peak_rss_mb, print_table  # noqa: E402

STRATEGIES = {"ddp": {}, "fsdp": {}, "fsdp_model": {"per_block": False},
              "zero1": {"stage": 1}, "zero2": {"stage": 2}, "zero3": {"stage": 3}}
TINY = dict(embed_dim=32, depths=[2, 2, 2, 2], num_heads=[1, 2, 4, 8])


def build_classifier(model: str, tuning: str):
    """A Swin classifier (backbone + global pooling + linear head) as the bench subject."""
    from mona_scale.modeling import ImageClassifier, build_swin

    kwargs = TINY if model == "tiny" else {}
    name = "swin_t" if model == "tiny" else model
    backbone = build_swin(name, tuning=tuning, out_features=["res5"], **kwargs)
    return ImageClassifier(backbone=backbone, num_classes=100, in_feature="res5")


def worker(args) -> None:
    """One (model, strategy) at the world size torchrun gives: JSON on rank 0's stdout."""
    from mona_scale.engine.precision import Precision
    from mona_scale.engine.strategies import build_strategy
    from mona_scale.launch import init_distributed

    import torch
    from detectron2.utils import comm

    info = init_distributed()
    torch.manual_seed(0)
    model = build_classifier(args.model, args.tuning)
    name = "deepspeed" if args.strategy.startswith("zero") else args.strategy.split("_")[0]
    strategy = build_strategy(name, Precision(), **STRATEGIES[args.strategy])
    model, optimizer = strategy.setup(model, lambda m: torch.optim.AdamW(
        [p for p in m.parameters() if p.requires_grad], lr=1e-4, foreach=True))
    size = 64 if args.model == "tiny" else args.size
    batch = [{"image": torch.randint(0, 255, (3, size, size), dtype=torch.uint8), "label": i}
             for i in range(args.batch)]
    times, state = [], None
    for step in range(args.iters + 1):
        start = time.perf_counter()
        loss = sum(model(batch).values())
        strategy.backward(loss)
        if step == 0:
            state = strategy.state_bytes(model, optimizer)  # grads alive, before the step
        strategy.step(model, optimizer)
        if step > 0:  # the first step allocates optimizer state
            times.append(time.perf_counter() - start)
    state["optimizer"] = strategy.state_bytes(model, optimizer)["optimizer"]
    peak = comm.all_gather(peak_rss_mb())
    if info.rank == 0:
        print(json.dumps({**{k: v / 2**20 for k, v in state.items()},
                          "peak_rss_mb": max(peak), "s_per_iter": sum(times) / len(times)}))


def run(model: str, strategy: str, world: int, args) -> dict:
    from mona_scale.launch import find_free_port

    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={world}",
           f"--master_port={find_free_port()}", os.path.abspath(__file__), "--worker",
           "--model", model, "--strategy", strategy, "--iters", str(args.iters),
           "--size", str(args.size), "--batch", str(args.batch), "--tuning", args.tuning]
    env = dict(os.environ, OMP_NUM_THREADS=str(max(1, (os.cpu_count() or 2) // world)))
    result = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"{model} {strategy} x{world} failed:\n{result.stderr[-3000:]}")
    record = json.loads(result.stdout.strip().splitlines()[-1])
    print(f"  {model} {strategy} x{world}: {record}", file=sys.stderr, flush=True)
    return record


def projected_bytes(frozen: int, trainable: int, strategy: str, world: int) -> dict:
    """Per-rank MiB by formula (fp32 weights and grads, AdamW: two fp32 moments; ZeRO adds
    an fp32 master partition; gradients of trainable weights sharded except under ddp):
    frozen weights replicated except under ZeRO-3, and never with gradients or moments."""
    mib = 2 ** 20
    shard_all = strategy == "zero3"
    params = (frozen + trainable) * 4 / (world if shard_all else 1)
    if strategy.startswith("fsdp"):
        params = frozen * 4 + trainable * 4 / world
    # DeepSpeed's stage 1 also reduces gradients into per-rank partitions (measured)
    grads = trainable * 4 / (1 if strategy == "ddp" else world)
    optimizer = trainable * 8 / (1 if strategy == "ddp" else world)
    if strategy.startswith("zero"):
        optimizer += trainable * 4 / world
    return {"params": params / mib, "grads": grads / mib, "optimizer": optimizer / mib}


def projection_rows() -> list[dict]:
    rows = []
    for name in ("swin_b", "swin_l"):
        for tuning in ("mona", "full"):
            model = build_classifier(name, tuning).backbone
            trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
            frozen = sum(p.numel() for p in model.parameters()) - trainable
            for world in (8, 64):
                for strategy in ("ddp", "fsdp", "zero1", "zero2", "zero3"):
                    mib = projected_bytes(frozen, trainable, strategy, world)
                    rows.append({"backbone": name, "tuning": tuning, "gpus": world,
                                 "strategy": strategy, **{f"{k}_MiB": v for k, v in mib.items()},
                                 "total_MiB": sum(mib.values())})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--models", nargs="+", default=["tiny", "swin_b"])
    parser.add_argument("--strategy", default="ddp")
    parser.add_argument("--tuning", default="mona")
    parser.add_argument("--iters", type=int, default=4)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=2, help="images per rank")
    parser.add_argument("--projection-only", action="store_true",
                        help="only the formula table (seconds)")
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    if args.projection_only:
        args.models = []
    for model in args.models:
        rows = []
        for world in (1, 2):
            base = None
            for strategy in STRATEGIES:
                record = run(model, strategy, world, args)
                base = base or record
                rows.append({"world": world, "strategy": strategy,
                             "params_MiB": record["params"], "grads_MiB": record["grads"],
                             "optim_MiB": record["optimizer"],
                             "peak_rss_MiB": record["peak_rss_mb"],
                             "s/iter": record["s_per_iter"],
                             "time_vs_ddp": record["s_per_iter"] / base["s_per_iter"]})
        print_table(f"{model} + {args.tuning}, measured per rank (gloo, CPU)", rows)
    print_table("projected per-rank bytes (fp32, AdamW; backbone only)", projection_rows())


if __name__ == "__main__":
    main()
