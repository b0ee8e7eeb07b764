"""Evaluation throughput of Mona vs fixed vs full fine-tuning, side by side (CPU).

Two models, random weights, eval mode under ``torch.inference_mode``:

* the quickstart detector (``configs/quickstart/shapes_cascade_mona.py``: Cascade Mask
  R-CNN on a tiny Swin) on the images of its own test loader;
* a Swin-B classifier (``ImageClassifier``, 1000 classes) on 224x224 images.

The three variants share every weight but the adapters (the fixed and full models load the
Mona model's state dict), so they see the same proposals and differ only by the adapters'
compute; fixed and full are the same network at inference (a reference that shows the
noise). All variants live in one process and run in alternating rounds; images per second
is the batch over the median round time after one warm-up round; ratios are time vs fixed.

Usage (the quiet-machine rerun, about 3 minutes on 2 free cores):
    python benchmarks/bench_infer.py
Quicker: ``--rounds 2``.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

from mona_scale.engine.config import load_config
from mona_scale.engine.defaults import build_model
from mona_scale.modeling import ImageClassifier, build_swin

import torch
from common import print_table
from detectron2.config import instantiate

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DETECTOR_CONFIG = os.path.join(ROOT, "configs/quickstart/shapes_cascade_mona.py")
METHODS = ("mona", "fixed", "full")


def detector_models(batch: int) -> tuple[dict, list[dict]]:
    """The quickstart detector per tuning method (shared weights) and a test batch."""
    models = {}
    for method in METHODS:
        cfg = load_config(DETECTOR_CONFIG, [f"tuning.method={method}",
                                            "dataloader.test.num_workers=0",
                                            "train.output_dir=/tmp/bench_infer"])
        models[method] = build_model(cfg).eval()
    loader = instantiate(cfg.dataloader.test)
    inputs = []
    for sample in loader:
        inputs.extend(sample)
        if len(inputs) >= batch:
            break
    return _share_weights(models), inputs[:batch]


def classifier_models(batch: int, size: int) -> tuple[dict, list[dict]]:
    """A Swin-B classifier per tuning method (shared weights) and a batch of images."""
    models = {}
    for method in METHODS:
        torch.manual_seed(0)
        models[method] = ImageClassifier(build_swin("swin_b", method, drop_path_rate=0.0),
                                         1000).eval()
    generator = torch.Generator().manual_seed(0)
    inputs = [{"image": torch.randint(0, 256, (3, size, size), dtype=torch.uint8,
                                      generator=generator)} for _ in range(batch)]
    return _share_weights(models), inputs


def _share_weights(models: dict) -> dict:
    """Load the Mona model's weights into the others (every key they have)."""
    state = models["mona"].state_dict()
    for method, model in models.items():
        if method != "mona":
            own = model.state_dict()
            model.load_state_dict({k: v for k, v in state.items() if k in own})
    return models


def throughput(models: dict, inputs: list[dict], rounds: int) -> dict[str, float]:
    """Median seconds per batch of each model, alternating rounds after one warm-up."""
    times: dict[str, list[float]] = {name: [] for name in models}
    with torch.inference_mode():
        for i in range(rounds + 1):
            for name, model in models.items():
                start = time.perf_counter()
                model(inputs)
                if i:
                    times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def rows_for(title: str, seconds: dict[str, float], batch: int) -> list[dict]:
    """Table rows: images/s and time vs fixed."""
    return [{"model": title, "tuning": name, "images/s": batch / s, "s/batch": s,
             "time vs fixed": s / seconds["fixed"]} for name, s in seconds.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds after a warm-up")
    parser.add_argument("--det-batch", type=int, default=8)
    parser.add_argument("--cls-batch", type=int, default=8)
    parser.add_argument("--cls-size", type=int, default=224)
    parser.add_argument("--skip", nargs="*", default=[], choices=["detector", "classifier"])
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    rows = []
    if "detector" not in args.skip:
        models, inputs = detector_models(args.det_batch)
        sides = sorted({side for x in inputs for side in x["image"].shape[1:]})
        title = f"quickstart detector ({sides[0]}-{sides[-1]} px)"
        rows += rows_for(title, throughput(models, inputs, args.rounds), len(inputs))
    if "classifier" not in args.skip:
        models, inputs = classifier_models(args.cls_batch, args.cls_size)
        rows += rows_for(f"Swin-B classifier ({args.cls_size} px)",
                         throughput(models, inputs, args.rounds), len(inputs))
    print_table(f"Evaluation throughput, CPU {torch.get_num_threads()} threads, "
                f"{args.rounds} alternating rounds", rows)


if __name__ == "__main__":
    main()
