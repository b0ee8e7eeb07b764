#!/usr/bin/env python
"""Train or evaluate a mona_scale LazyConfig (detectron2 project style).

    python projects/train_net.py --config-file configs/quickstart/shapes_cascade_mona.py
    python projects/train_net.py --config-file configs/coco/cascade_mask_rcnn_swin_b_mona_3x.py \
        --num-gpus 8 train.init_checkpoint=swin_base_patch4_window7_224_22k.pth
    python projects/train_net.py --config-file ... --eval-only --resume
    python projects/train_net.py --config-file ... tuning.method=lora train.max_iter=100

Under torchrun (or srun) the process group comes from the environment; no launch flag is
needed. A single process (no launcher, ``--num-gpus 1``) runs in a process group of one, so
every ``train.strategy`` starts the same way as under torchrun. ``key=value`` overrides any
config node; an unknown key is an error naming it.
"""
from __future__ import annotations

import os
import sys

from mona_scale.console import quiet_third_party

quiet_third_party()  # at import: spawned ranks import this file too

from mona_scale.engine.config import load_config  # noqa: E402
from mona_scale.engine.defaults import check_device, run  # noqa: E402
from mona_scale.launch import dist_info_from_env, launch, run_distributed  # noqa: E402

from detectron2.engine import default_argument_parser  # noqa: E402
from detectron2.utils import comm  # noqa: E402


def main(args) -> None:
    cfg = load_config(args.config_file, args.opts)
    run(cfg, eval_only=args.eval_only, resume=args.resume)
    if comm.get_rank() == 0:
        from mona_scale.console import run_summary

        print("\n".join(run_summary(os.path.abspath(cfg.train.output_dir))), flush=True)


def cli(argv=None) -> int:
    args = default_argument_parser().parse_args(argv)
    cfg = load_config(args.config_file, args.opts)  # fail fast, before spawning workers
    check_device(cfg.train.get("device", "cpu"))  # no CUDA context in the launcher
    timeout_s = 60.0 * float(cfg.train.get("dist_timeout_minutes", 30))
    if dist_info_from_env().world_size > 1:  # torchrun / srun: one process per rank
        run_distributed(main, (args,), timeout_s)
    else:
        launch(main, args.num_gpus, args.num_machines, args.machine_rank, args.dist_url,
               args=(args,), timeout_s=timeout_s)
    return 0


if __name__ == "__main__":
    sys.exit(cli())
