"""Each strategy option once on 2 gloo ranks, for ``tests/test_strategy_options.py`` (one
torchrun launch for all):

    torchrun --nproc_per_node 2 tests/helpers/strategy_options_worker.py <out_dir>

For every job of :data:`JOBS` (``train.*`` overrides of the tiny shape classifier) the worker

1. sets the strategy up as ``train_net`` does and takes one step, recording what the option
   must change: the number of FSDP units, the dtype the head's weight has inside its forward,
   how many trainable parameters are sharded again between forward and backward, whether
   ZeRO keeps the optimizer on the CPU;
2. runs the job for :data:`ITERS` iterations exactly as ``projects/train_net.py`` would
   (``<out_dir>/<job>/metrics.json``, checkpoints, ``model_final.pth``).

Rank 0 writes what it recorded to ``<out_dir>/<job>/inspect.json``.
"""
from __future__ import annotations

import json
import os
import sys

from mona_scale.engine.config import load_config
from mona_scale.engine.defaults import build_model, build_run_strategy, optimizer_factory, run
from mona_scale.launch import init_distributed, shutdown_distributed

import torch.distributed as dist
from detectron2.config import instantiate
from detectron2.utils.events import EventStorage
from torch.distributed.fsdp import FSDPModule
from torch.distributed.tensor import DTensor

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from helpers.train_net import CLS_CONFIG, CLS_TINY  # noqa: E402

ITERS = 3
BASE = [*CLS_TINY, "dataloader.train.total_batch_size=4", f"train.max_iter={ITERS}",
        "train.checkpointer.period=100", "train.eval_period=0", "dataloader.evaluator=null",
        "model.backbone.drop_path_rate=0.0", "tuning.dropout=0.0", "train.device=cpu"]
FSDP = ["train.strategy=fsdp"]
ZERO2 = ["train.strategy=deepspeed", "train.deepspeed.stage=2"]
JOBS = {
    "fsdp": FSDP,
    "fsdp_one_unit": FSDP + ["train.fsdp.per_block=False"],
    "fsdp_per_block": FSDP + ["train.fsdp.per_block=True"],
    "fsdp_no_reshard": FSDP + ["train.fsdp.reshard_after_forward=False"],
    # bf16 parameters in FSDP's units; the replicated frozen backbone needs bf16 autocast
    "fsdp_bf16": FSDP + ["train.fsdp.param_dtype=bf16", "train.precision=bf16"],
    "zero2": ZERO2,
    "zero2_offload": ZERO2 + ["train.deepspeed.offload_optimizer=True"],
}


def inspect(cfg) -> dict:
    """Set up ``cfg``'s strategy, take one step and record what its options changed."""
    strategy = build_run_strategy(cfg)
    model, optimizer = strategy.setup(build_model(cfg), optimizer_factory(cfg))
    module = getattr(model, "module", model)  # DeepSpeed's engine holds the model
    seen = {}

    def head_hook(head, args):  # runs after FSDP's pre-forward hook gathered the weight
        seen["head_weight_dtype"] = str(head.weight.dtype).replace("torch.", "")

    module.head.register_forward_pre_hook(head_hook)
    batch = next(iter(instantiate(cfg.dataloader.train)))
    with EventStorage(0), strategy.autocast():
        loss = sum(model(batch).values())
    trainable = [p for p in module.parameters() if p.requires_grad]
    record = dict(
        seen,
        fsdp_units=sum(isinstance(m, FSDPModule) for m in module.modules()),
        trainable=len(trainable),
        sharded_after_forward=sum(isinstance(p, DTensor) for p in trainable),
        zero_cpu_offload=getattr(getattr(model, "optimizer", None), "cpu_offload", None),
        loss=float(loss))
    strategy.backward(loss)
    strategy.step(model, optimizer)
    return record


def main(out: str) -> None:
    os.environ.setdefault("MONA_DATASETS", os.path.join(out, "data"))
    init_distributed()
    for name, overrides in JOBS.items():
        job_dir = os.path.join(out, name)
        cfg = load_config(CLS_CONFIG, BASE + overrides + [f"train.output_dir={job_dir}"])
        run(cfg)
        record = inspect(cfg)
        if dist.get_rank() == 0:
            with open(os.path.join(job_dir, "inspect.json"), "w") as f:
                json.dump(record, f)
        dist.barrier()
    shutdown_distributed()


if __name__ == "__main__":
    main(sys.argv[1])
