"""What each rank of a 2-rank gloo run sees and does, written to files for
``tests/test_data_parallel.py`` (one torchrun launch for all three checks):

    torchrun --nproc_per_node 2 tests/helpers/data_parallel_worker.py <out_dir>

1. ``ddp_rank<r>.pt``: one SGD step of the tiny shape classifier through ``train.strategy=ddp``
   on this rank's first batch of the real training loader: the batch itself, the trainable
   parameters before and after the step.
2. ``files_rank<r>.json``: the ``file_name`` of every sample of this rank's first epoch share
   of the file loader (``build_train_loader``, two workers).
3. ``syncbn_rank<r>.pt``: running statistics of every batch norm of the tiny UperNet (SyncBN
   heads) after one step on this rank's own batch.
"""
from __future__ import annotations

import json
import os
import sys

from mona_scale.engine.config import load_config
from mona_scale.engine.defaults import build_model, build_run_strategy
from mona_scale.launch import init_distributed, shutdown_distributed

import torch
import torch.distributed as dist
from detectron2.config import instantiate
from detectron2.utils.events import EventStorage

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from helpers.train_net import CLS_CONFIG, ROOT  # noqa: E402

SEG_CONFIG = os.path.join(ROOT, "configs/quickstart/shapes_upernet_mona.py")
# per rank 2 images; no dropout or drop-path, so one process can redo the step exactly
CLS_DDP = ["dataloader.train.total_batch_size=4", "dataloader.train.num_workers=0",
           "dataloader.train.dataset.num_images=8", "model.backbone.drop_path_rate=0.0",
           "tuning.dropout=0.0", "train.device=cpu", "train.strategy=ddp"]
FILES = ["dataloader.train.total_batch_size=4", "dataloader.train.num_workers=2",
         "dataloader.train.dataset.num_images=12", "train.device=cpu"]
FILES_PER_RANK = 6  # one epoch: 12 images over 2 ranks
SEG = ["dataloader.train.total_batch_size=4", "dataloader.train.num_workers=0",
       "dataloader.train.dataset.num_images=8",
       "dataloader.train.mapper.augmentations.1.crop_size=[64,64]",
       "model.backbone.drop_path_rate=0.0", "train.device=cpu", "train.strategy=ddp"]
LR = 0.5


def sgd(model: torch.nn.Module) -> torch.optim.Optimizer:
    """Plain SGD over the trainable parameters: the update is -LR x the gradient, so equal
    updates mean equal gradients (AdamW's first step would hide a scale error)."""
    return torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=LR)


def trainable(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Copies of the trainable parameters, by name without DDP's ``module.`` prefix."""
    model = getattr(model, "module", model)
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def one_step(cfg, batch: list[dict]) -> torch.nn.Module:
    """One training step of ``cfg.model`` through the run's strategy (as the trainer does:
    forward, ``strategy.backward``, ``strategy.step``)."""
    strategy = build_run_strategy(cfg)
    model, optimizer = strategy.setup(build_model(cfg).train(), sgd)
    with EventStorage(0), strategy.autocast():
        loss = sum(model(batch).values())
    strategy.backward(loss)
    strategy.step(model, optimizer)
    return model


def ddp_step(out: str, rank: int) -> None:
    cfg = load_config(CLS_CONFIG, CLS_DDP + [f"train.output_dir={out}"])
    batch = next(iter(instantiate(cfg.dataloader.train)))
    before = trainable(build_model(cfg))
    after = trainable(one_step(cfg, batch))
    torch.save({"batch": batch, "before": before, "after": after},
               os.path.join(out, f"ddp_rank{rank}.pt"))


def files(out: str, rank: int) -> None:
    cfg = load_config(CLS_CONFIG, FILES + [f"train.output_dir={out}"])
    names = []
    for batch in instantiate(cfg.dataloader.train):
        names += [sample["file_name"] for sample in batch]
        if len(names) >= FILES_PER_RANK:
            break
    with open(os.path.join(out, f"files_rank{rank}.json"), "w") as f:
        json.dump({"names": names, "dataset": [d["file_name"] for d in instantiate(
            cfg.dataloader.train.dataset)]}, f)


def syncbn(out: str, rank: int) -> None:
    cfg = load_config(SEG_CONFIG, SEG + [f"train.output_dir={out}"])
    batch = next(iter(instantiate(cfg.dataloader.train)))
    model = one_step(cfg, batch)
    model = getattr(model, "module", model)
    stats = {name: {"type": type(m).__name__, "mean": m.running_mean.clone(),
                    "var": m.running_var.clone()}
             for name, m in model.named_modules()
             if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)}
    torch.save({"stats": stats, "files": [s["file_name"] for s in batch]},
               os.path.join(out, f"syncbn_rank{rank}.pt"))


def main(out: str) -> None:
    os.environ.setdefault("MONA_DATASETS", os.path.join(out, "data"))
    init_distributed()
    rank = dist.get_rank()
    for job in (ddp_step, files, syncbn):
        job(out, rank)
        dist.barrier()
    shutdown_distributed()


if __name__ == "__main__":
    main(sys.argv[1])
