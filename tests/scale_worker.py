"""Runs several training jobs in one process or one torchrun launch (one process group, so
the slow part, starting processes and importing detectron2 / DeepSpeed, is paid once).

    torchrun --nproc_per_node 2 tests/scale_worker.py <jobs.json>   # test_scale
    python tests/scale_worker.py <jobs.json>                        # test_paper_configs

``jobs.json``: a list of {"config": path, "overrides": [...], "resume": bool}. Each job is
exactly what ``projects/train_net.py --config-file <config> [--resume] <overrides>`` runs.
A job with ``"gradients": path`` instead runs one forward and backward of the first batch
through the strategy and rank 0 saves every trainable parameter's whole gradient there.
Rank 0 prints each job's output directory and seconds to stderr.
"""
import gc
import json
import sys
import time

from mona_scale.engine.config import load_config
from mona_scale.engine.defaults import (
    build_model,
    build_run_strategy,
    optimizer_factory,
    run,
    setup_run,
)
from mona_scale.launch import init_distributed, shutdown_distributed

import torch
import torch.distributed as dist
from detectron2.config import instantiate
from detectron2.utils.events import EventStorage


def gradients(cfg, path: str) -> None:
    """One micro-step's gradients, gathered whole (FSDP's are DTensor shards)."""
    setup_run(cfg)
    strategy = build_run_strategy(cfg)
    model, _ = strategy.setup(build_model(cfg), optimizer_factory(cfg))
    batch = next(iter(instantiate(cfg.dataloader.train)))
    with EventStorage(0), strategy.autocast():  # detectron2's heads log into the storage
        loss = sum(model(batch).values())
    strategy.backward(loss)
    grads = {}
    for name, p in getattr(model, "module", model).named_parameters():
        if p.requires_grad:
            grad = p.grad.full_tensor() if hasattr(p.grad, "full_tensor") else p.grad
            grads[name] = None if grad is None else grad.detach().cpu().clone()
    if dist.get_rank() == 0:
        torch.save(grads, path)


def main(jobs_file: str) -> None:
    init_distributed()
    with open(jobs_file) as f:
        jobs = json.load(f)
    for job in jobs:
        start = time.perf_counter()
        cfg = load_config(job["config"], job["overrides"])
        if job.get("gradients"):
            gradients(cfg, job["gradients"])
        else:
            run(cfg, resume=job.get("resume", False))
        gc.collect()  # the previous job's model and optimizer, before the next one's
        if dist.get_rank() == 0:
            print(f"[scale_worker] {cfg.train.output_dir} resume={job.get('resume', False)} "
                  f"{time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)
    shutdown_distributed()


if __name__ == "__main__":
    main(sys.argv[1])
