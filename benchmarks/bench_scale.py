"""Sharding strategies side by side at world size 2 (gloo, CPU): collectives and bytes per
step, per-rank bytes of parameters, gradients and optimizer state, and seconds per step as
a ratio to ddp; for a Swin-B classifier and the quickstart Cascade Mask R-CNN detector, both
tuned with Mona. Then the per-rank bytes projected by formula to 8 and 64 GPUs for Swin-B and
Swin-L, Mona vs full tuning.

    # the full run (about 5 minutes on 2 quiet cores)
    python benchmarks/bench_scale.py --models swin_b detector --iters 3
    # quick look
    python benchmarks/bench_scale.py --models tiny detector --iters 2 --no-projection

Strategies: ddp; fsdp with units grouped by ``unit_mb`` (the default), one unit per block
(``per_block=True``) and one unit for the whole model (``per_block=False``); DeepSpeed ZeRO
stages 1, 2, 3. One torchrun launch per model builds every strategy's copy of the model on
each rank (sharing the frozen weights, except ZeRO-3's copy), and the timed steps alternate
between strategies (strategy A step, B step, ..., then again), so a noisy machine slows all
of them alike; a strategy's time is the median of its steps. Collectives are counted by
``torch.profiler`` over one step after the warm-up steps (DDP rebuilds its buckets in the
second step): every top-level ``c10d::`` operator the process group ran, whoever issued it
(FSDP, DDP's reducer, DeepSpeed, the gradient-norm reduction); bytes are the larger tensor
argument of each (the unsharded size for all-gathers and reduce-scatters).
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import time
from collections import Counter

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import print_table  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DETECTOR = os.path.join(ROOT, "configs/quickstart/shapes_cascade_mona.py")
# name -> (train.strategy, options)
STRATEGIES = {"ddp": ("ddp", {}),
              "fsdp": ("fsdp", {}),
              "fsdp_block": ("fsdp", {"per_block": True}),
              "fsdp_model": ("fsdp", {"per_block": False}),
              "zero1": ("deepspeed", {"stage": 1}),
              "zero2": ("deepspeed", {"stage": 2}),
              "zero3": ("deepspeed", {"stage": 3}),
              # not in the default run: fsdp sharding the frozen backbone too (vs ZeRO-3)
              "fsdp_shard_frozen": ("fsdp", {"shard_frozen": True})}
DEFAULT = ["ddp", "fsdp", "fsdp_block", "fsdp_model", "zero1", "zero2", "zero3"]
TINY = dict(embed_dim=32, depths=[2, 2, 2, 2], num_heads=[1, 2, 4, 8])
# bytes per element of the dtypes the profiler names
ELEMENT_BYTES = {"float": 4, "c10::BFloat16": 2, "c10::Half": 2, "double": 8, "long int": 8,
                 "int": 4, "bool": 1, "unsigned char": 1, "signed char": 1}
KINDS = {"allgather": "all_gather", "reduce_scatter": "reduce_scatter",
         "allreduce": "all_reduce", "broadcast": "broadcast"}


def local_bytes(tensors) -> int:
    """Bytes of memory these tensors hold on this rank: a DTensor counts its local shard,
    and views of one buffer (e.g. flat gradient partitions) count the buffer once."""
    import torch

    storages = {}
    for t in tensors:
        if t is None or not torch.is_tensor(t):
            continue
        t = t.to_local() if hasattr(t, "to_local") else t
        storage = t.untyped_storage()
        storages[storage.data_ptr()] = max(storages.get(storage.data_ptr(), 0), storage.nbytes())
    return sum(storages.values())


def state_bytes(strategy, model, optimizer) -> dict[str, int]:
    """This rank's bytes of parameters, gradients and optimizer state (call between backward
    and step to see the gradients). DeepSpeed: module weights (ZeRO-3: this rank's
    partitions), gradient partitions, fp32 master partitions plus Adam moments."""
    moments = [v for state in optimizer.state.values() for v in state.values()]
    if strategy.name != "deepspeed":
        return {"params": local_bytes(model.parameters()),
                "grads": local_bytes(p.grad for p in model.parameters()),
                "optimizer": local_bytes(moments)}
    zero, module = strategy.engine.optimizer, strategy.engine.module
    params = [getattr(p, "ds_tensor", p) for p in module.parameters()]
    averaged = getattr(zero, "averaged_gradients", {}) or {}
    grads = [g for group in averaged.values() for g in (group or [])]
    grads.append(getattr(zero, "grad_partitions_flat_buffer", None))  # ZeRO-3
    grads += [p.grad for p in module.parameters()]
    masters = list(getattr(zero, "single_partition_of_fp32_groups", None) or
                   getattr(zero, "fp32_partitioned_groups_flat", None) or [])
    return {"params": local_bytes(params), "grads": local_bytes(grads),
            "optimizer": local_bytes(masters) + local_bytes(moments)}

def build_classifier(model: str, tuning: str):
    """A Swin classifier (backbone + global pooling + linear head) as the bench subject."""
    from mona_scale.modeling import ImageClassifier, build_swin

    kwargs = TINY if model == "tiny" else {}
    name = "swin_t" if model == "tiny" else model
    backbone = build_swin(name, tuning=tuning, out_features=["res5"], **kwargs)
    return ImageClassifier(backbone=backbone, num_classes=100, in_feature="res5")


def build_subject(model: str, args, rank: int):
    """(model, batch) for one bench subject; every rank gets the same weights, its own batch.

    ``detector``: the quickstart Cascade Mask R-CNN (tiny Swin + Mona) on 128-pixel images
    with three random boxes and box masks each; otherwise a classifier."""
    import torch

    generator = torch.Generator().manual_seed(100 + rank)
    torch.manual_seed(0)
    if model != "detector":
        size = 64 if model == "tiny" else args.size
        batch = [{"image": torch.randint(0, 255, (3, size, size), dtype=torch.uint8,
                                         generator=generator), "label": i}
                 for i in range(args.batch)]
        return build_classifier(model, args.tuning), batch
    from mona_scale.engine.config import load_config
    from mona_scale.engine.defaults import build_model

    from detectron2.structures import BitMasks, Boxes, Instances

    cfg = load_config(DETECTOR, [f"tuning.method={args.tuning}", "train.device=cpu"])
    batch = []
    for _ in range(args.batch):
        size = 128
        xy = torch.rand(3, 2, generator=generator) * size * 0.6
        wh = 16 + torch.rand(3, 2, generator=generator) * size * 0.3
        boxes = torch.cat([xy, (xy + wh).clamp(max=size - 1)], dim=1)
        masks = torch.zeros(3, size, size, dtype=torch.bool)
        for i, (x0, y0, x1, y1) in enumerate(boxes.round().long().tolist()):
            masks[i, y0:y1, x0:x1] = True
        instances = Instances((size, size), gt_boxes=Boxes(boxes),
                              gt_classes=torch.randint(0, 3, (3,), generator=generator),
                              gt_masks=BitMasks(masks))
        batch.append({"image": torch.randint(0, 255, (3, size, size), dtype=torch.uint8,
                                             generator=generator),
                      "instances": instances, "height": size, "width": size})
    return build_model(cfg), batch


def count_collectives(events) -> dict:
    """Collectives among profiler events: calls per kind and bytes in all.

    Args:
        events: ``torch.profiler.profile(...).events()`` of one step.

    Returns:
        ``{kind: count, ..., "MiB": bytes / 2**20}``; kinds: all_gather, reduce_scatter,
        all_reduce, broadcast, other.
    """
    counts, nbytes = Counter(), 0
    for event in events:
        if not event.name.startswith("c10d::") or event.name in ("c10d::wait", "c10d::barrier"):
            continue
        parent, nested = event.cpu_parent, False
        while parent is not None:  # count the outermost c10d operator only
            nested |= parent.name.startswith("c10d::")
            parent = parent.cpu_parent
        if nested:
            continue
        op = event.name[len("c10d::"):].strip("_")
        kind = next((v for k, v in KINDS.items() if k in op), "other")
        counts[kind] += 1
        shapes = getattr(event, "structured_input_shapes", None) or event.input_shapes
        # a tensor list's dtype is not recorded: taken as fp32, the dtype these runs use
        sizes = [_numel(shape) * ELEMENT_BYTES.get(dtype, 4)
                 for shape, dtype in zip(shapes, event.input_dtypes, strict=False) if shape]
        nbytes += max(sizes, default=0)
    return {**{k: counts[k] for k in (*KINDS.values(), "other")}, "MiB": nbytes / 2 ** 20}


def _numel(shape) -> int:
    """Elements of a recorded shape, or of every shape in a recorded tensor list."""
    if shape and isinstance(shape[0], list | tuple):
        return sum(_numel(s) for s in shape)
    n = 1
    for d in shape:
        n *= d
    return n


def strategy_of(name: str) -> tuple[str, dict]:
    """(train.strategy, options) of a bench name; ``fsdp_<N>mb``: fsdp with unit_mb=N."""
    if name.startswith("fsdp_") and name.endswith("mb"):
        return "fsdp", {"unit_mb": float(name[5:-2])}
    return STRATEGIES[name]


def worker(args) -> None:
    """Every strategy on one model at the world size torchrun gives: JSON on rank 0."""
    from mona_scale.engine.precision import Precision
    from mona_scale.engine.strategies import build_strategy
    from mona_scale.launch import init_distributed

    import torch
    from detectron2.utils.events import EventStorage
    from torch.profiler import ProfilerActivity, profile

    info = init_distributed()
    subjects = {}
    original, batch = build_subject(args.model, args, info.rank)
    frozen = {id(p): p for p in original.parameters() if not p.requires_grad}
    for name in args.strategies:
        kind, options = strategy_of(name)
        # the copies share the frozen weights, which ddp, fsdp and ZeRO-1/2 only read;
        # ZeRO-3 and shard_frozen shard every weight in place: their copies own theirs
        owns = options.get("stage") == 3 or options.get("shard_frozen")
        model = copy.deepcopy(original, memo={} if owns else dict(frozen))
        strategy = build_strategy(kind, Precision(), **options)
        model, optimizer = strategy.setup(model, lambda m: torch.optim.AdamW(
            [p for p in m.parameters() if p.requires_grad], lr=1e-4, foreach=True))
        subjects[name] = (strategy, model, optimizer, batch)

    def step(name: str) -> None:
        strategy, model, optimizer, batch = subjects[name]
        loss = sum(model(batch).values())
        strategy.backward(loss)
        strategy.step(model, optimizer)

    records = {}
    with EventStorage(0):  # detectron2's heads log into a storage
        for name, (strategy, model, optimizer, batch) in subjects.items():
            loss = sum(model(batch).values())
            strategy.backward(loss)
            state = state_bytes(strategy, model, optimizer)  # gradients alive
            strategy.step(model, optimizer)
            step(name)  # DDP rebuilds its buckets in its second step
            state["optimizer"] = state_bytes(strategy, model, optimizer)["optimizer"]
            with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
                step(name)
            records[name] = {**count_collectives(prof.events()),
                             **{f"{k}_MiB": v / 2 ** 20 for k, v in state.items()}}
        times = {name: [] for name in subjects}
        for _ in range(args.iters):
            for name in subjects:  # alternate: noise hits every strategy alike
                torch.distributed.barrier()
                start = time.perf_counter()
                step(name)
                times[name].append(time.perf_counter() - start)
    for name, record in records.items():
        record["s/step"] = sorted(times[name])[len(times[name]) // 2]  # median
    if info.rank == 0:
        print(json.dumps(records))


def run(model: str, args) -> dict:
    """One torchrun launch of :func:`worker` at world size 2."""
    from mona_scale.launch import find_free_port

    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
           f"--master_port={find_free_port()}", os.path.abspath(__file__), "--worker",
           "--model", model, "--iters", str(args.iters), "--size", str(args.size),
           "--batch", str(args.batch), "--tuning", args.tuning,
           "--strategies", *args.strategies]
    env = dict(os.environ, OMP_NUM_THREADS=str(max(1, (os.cpu_count() or 2) // 2)))
    result = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"{model} failed:\n{result.stderr[-3000:]}")
    records = json.loads(result.stdout.strip().splitlines()[-1])
    print(f"  {model}: {records}", file=sys.stderr, flush=True)
    return records


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
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model", default="tiny", help=argparse.SUPPRESS)
    parser.add_argument("--models", nargs="+", default=["swin_b", "detector"],
                        help="tiny | swin_b | swin_l (classifiers) | detector (quickstart)")
    parser.add_argument("--strategies", nargs="+", default=DEFAULT,
                        help=f"of {list(STRATEGIES)}, or fsdp_<N>mb (fsdp, unit_mb=N)")
    parser.add_argument("--tuning", default="mona")
    parser.add_argument("--iters", type=int, default=3, help="timed steps per strategy")
    parser.add_argument("--size", type=int, default=224, help="classifier image size")
    parser.add_argument("--batch", type=int, default=2, help="images per rank")
    parser.add_argument("--no-projection", action="store_true",
                        help="leave out the formula table")
    parser.add_argument("--projection-only", action="store_true",
                        help="only the formula table (seconds)")
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    if args.projection_only:
        args.models = []
    for model in args.models:
        records = run(model, args)
        base = records.get("ddp", next(iter(records.values())))["s/step"]
        rows = [{"strategy": name, **record, "time_vs_ddp": record["s/step"] / base}
                for name, record in records.items()]
        print_table(f"{model} + {args.tuning}, world size 2 (gloo, CPU), per rank and step",
                    rows)
    if not args.no_projection:
        print_table("projected per-rank bytes (fp32, AdamW; backbone only)", projection_rows())


if __name__ == "__main__":
    main()
