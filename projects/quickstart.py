#!/usr/bin/env python
"""The embedded default job (``make demo``): the real workflow on CPU in two stages.

1. Pretrain a tiny Swin by full fine-tuning on the synthetic shape-classification set and
   export its backbone as a Microsoft-format checkpoint (as if downloaded from the zoo).
2. Mona-tune a Cascade Mask R-CNN from that checkpoint on the synthetic instance set and
   evaluate COCO box / mask AP; optionally the same with ``tuning.method=fixed``.
Then draw the tuned model's predictions on a few held-out images and print the table.
Every stage is a plain ``projects/train_net.py`` run (the commands are printed) with its own
detectron2 output directory under ``--output``. ``--schedule`` shortens the stages with
overrides (same configs, same synthetic images, fewer of them): ``smoke`` runs a few
iterations that only check the pipeline.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from mona_scale.console import quiet_third_party, run_summary

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PRETRAIN = os.path.join(ROOT, "configs/quickstart/shapes_cls_pretrain.py")
CASCADE = os.path.join(ROOT, "configs/quickstart/shapes_cascade_mona.py")
SMOKE = ["train.max_iter=4", "dataloader.train.total_batch_size=2",
         "dataloader.train.num_workers=0", "dataloader.test.num_workers=0",
         "dataloader.train.dataset.num_images=8", "dataloader.test.dataset.num_images=4"]
# schedule -> (stage-1 overrides, stage-2 overrides); "demo" is the configs as they are
SCHEDULES = {
    "demo": ([], []),
    "smoke": (SMOKE, SMOKE),
}


def train_net(config: str, *overrides: str, threads: int = 0) -> subprocess.Popen:
    """Start projects/train_net.py (prints the command); ``threads`` > 0 sets its
    OMP_NUM_THREADS. The caller waits on the returned process."""
    cmd = [sys.executable, os.path.join(HERE, "train_net.py"), "--config-file", config,
           "train.overwrite=True", *overrides]  # the demo starts over in its directories
    print("\n$ " + " ".join(os.path.relpath(c, ROOT) if c.startswith(ROOT) else c
                            for c in cmd[1:]), flush=True)
    return subprocess.Popen(cmd, env=dict(os.environ, OMP_NUM_THREADS=str(threads))
                            if threads else None)


def wait_all(procs: list[subprocess.Popen]) -> None:
    """Wait for every process; raise for the first that failed."""
    codes = [p.wait() for p in procs]
    for p, code in zip(procs, codes, strict=True):
        if code:
            raise subprocess.CalledProcessError(code, p.args)


def final_metrics(output_dir: str) -> dict:
    """The last metrics.json record (it holds the final evaluation)."""
    with open(os.path.join(output_dir, "metrics.json")) as f:
        return [json.loads(line) for line in f][-1]


def export_backbone(config: str, output_dir: str) -> str:
    """Load the pretrained classifier and write its Swin as a Microsoft-format file."""
    from mona_scale.backbones.pretrained import save_microsoft_checkpoint
    from mona_scale.engine.checkpoint import WeightsOnlyCheckpointer
    from mona_scale.engine.config import load_config
    from mona_scale.engine.defaults import build_model
    from mona_scale.engine.model_protocol import find_backbone

    model = build_model(load_config(config, [f"train.output_dir={output_dir}"]))
    WeightsOnlyCheckpointer(model).load(os.path.join(output_dir, "model_final.pth"),
                                   checkpointables=[])
    path = os.path.join(output_dir, "swin_tiny_microsoft.pth")
    count = save_microsoft_checkpoint(find_backbone(model), path)
    print(f"exported {count} backbone tensors to {os.path.relpath(path, ROOT)}")
    return path


def draw_predictions(config: str, output_dir: str, count: int = 4) -> str:
    """Draw the tuned model's predictions on held-out images (projects/demo.py)."""
    from mona_scale.data import synthetic_dataset_dicts

    import demo

    images = [d["file_name"] for d in synthetic_dataset_dicts("shapes_instances_val",
                                                              num_images=80)[:count]]
    out_dir = os.path.join(output_dir, "predictions")
    demo.main(["--config-file", config, "--weights", os.path.join(output_dir, "model_final.pth"),
               "--input", *images, "--output", out_dir, "--scale", "3"])
    return out_dir


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default=os.path.join(ROOT, "output/demo"))
    parser.add_argument("--compare-fixed", action="store_true",
                        help="also train tuning.method=fixed from the same checkpoint")
    parser.add_argument("--schedule", choices=list(SCHEDULES), default="demo",
                        help="demo: the configs as they are (README); smoke: a few iterations "
                        "(pipeline only)")
    parser.add_argument("--parallel", action="store_true",
                        help="train the stage-2 runs at once, the CPU cores split between them")
    parser.add_argument("--seed", type=int, default=0, help="train.seed of every stage")
    parser.add_argument("opts", nargs="*", help="overrides for the detection stage")
    args = parser.parse_args(argv)
    args.output = os.path.abspath(args.output)
    quiet_third_party()  # here and in the train_net.py runs it starts
    start = time.time()
    pretrain_dir = os.path.join(args.output, "pretrain")
    stage1, stage2 = (overrides + [f"train.seed={args.seed}"]
                      for overrides in SCHEDULES[args.schedule])
    wait_all([train_net(PRETRAIN, f"train.output_dir={pretrain_dir}", *stage1)])
    checkpoint = export_backbone(PRETRAIN, pretrain_dir)
    runs = {"mona": os.path.join(args.output, "cascade_mona")}
    if args.compare_fixed:
        runs["fixed"] = os.path.join(args.output, "cascade_fixed")
    threads = max(1, len(os.sched_getaffinity(0)) // len(runs)) if args.parallel else 0
    procs = []
    for method, out in runs.items():
        procs.append(train_net(CASCADE, f"train.output_dir={out}",
                               f"train.init_checkpoint={checkpoint}", f"tuning.method={method}",
                               *stage2, *args.opts, threads=threads))
        if not args.parallel:
            wait_all(procs[-1:])
    wait_all(procs)
    pictures = draw_predictions(CASCADE, runs["mona"])
    pre = final_metrics(pretrain_dir)
    print(f"\nDemo finished in {(time.time() - start) / 60:.1f} min. Results (held-out splits):")
    print(f"  stage 1  tiny Swin pretrain, full   classification top-1 "
          f"{pre.get('classification/top1', float('nan')):6.2f}")
    for method, out in runs.items():
        m = final_metrics(out)
        print(f"  stage 2  cascade mask r-cnn, {method:5s}  box AP {m['bbox/AP']:6.2f}  "
              f"AP50 {m['bbox/AP50']:6.2f}  mask AP {m['segm/AP']:6.2f}")
    print(f"\npretrained tiny Swin (stage 1): {checkpoint}")
    for method, out in runs.items():
        print("\n".join(run_summary(out, pictures if method == "mona" else None)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
