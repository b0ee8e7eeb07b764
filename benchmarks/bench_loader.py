"""Data-loading throughput on real-size images: the streaming loader (webdataset shards)
against the file loader, side by side, and both against what a training step consumes.

The benchmark writes its own data (under ``--root``, once): a COCO-like set (640x480
JPEGs of textured scenes, 2-8 polygon objects each, a COCO instances JSON) and an
ADE-like set (683x512 JPEGs with 150-class PNG label maps in the ``ADEChallengeData2016``
layout), and shards of both written by ``mona-shards``' writer. Each loader runs the
training mapper of the paper configs (``configs/common/data/coco_detr.py``: flip, DETR
multi-scale resize / crop, polygon instances; ``configs/common/data/ade20k.py``: ratio
resize into 2048x512, category-constrained 512 crop, flip) at batch 2 per rank: images/s
over ``--batches`` batches after ``--warmup``, file and stream loaders alternating
within each of ``--repeats`` rounds in one process (background load hits both alike); the
median is reported with the ratio stream / files. With 0 workers the CPU milliseconds per
image of the process are reported too: on a shared machine they show the work each loader
does, which wall-clock rates do not. A last line times a resumed stream: the first batch
after ``load_state_dict`` at batch ``--resume-skip``, against drawing those batches.

The training step's rate is not measured here (a Swin-B detector step on a CPU takes
seconds): ``--step-seconds`` (default 5.90, a Swin-B Mona step at batch 2 on 2 CPU threads,
``bench_mona.py``) and ``--gpu-step-seconds`` (default 0.45: an assumed Cascade Mask R-CNN
Swin-B step at batch 2 on one A100/H200-class GPU) become the images/s a rank needs.

Usage (under 3 minutes on 2 quiet cores):

    python benchmarks/bench_loader.py [--images 48] [--batches 30] [--warmup 4]
        [--repeats 3] [--workers 0 1 2] [--root output/bench_loader/real]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time

from mona_scale.data.loader import build_train_loader
from mona_scale.data.shards import ShardSet, build_stream_train_loader, write_shards
from mona_scale.data.shards.sources import ade20k_source, coco_source

import numpy as np
from common import print_table
from detectron2.config import LazyConfig, instantiate
from PIL import Image, ImageDraw

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = {"coco": "configs/common/data/coco_detr.py", "ade20k": "configs/common/data/ade20k.py"}
BATCH = 2  # images per rank and step, as the step rates below


def _scene(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A photo-like image: smooth colour gradients plus noise texture (JPEGs of a
    realistic size, ~100 KB at 640x480)."""
    y, x = np.mgrid[0:height, 0:width] / max(width, height)
    base = np.stack([np.sin(x * rng.uniform(2, 9) + rng.uniform(0, 6)) *
                     np.cos(y * rng.uniform(2, 9)) for _ in range(3)], -1)
    noise = rng.normal(0, 0.25, (-(-height // 4), -(-width // 4), 3)).repeat(4, 0).repeat(4, 1)
    noise = noise[:height, :width]
    return np.clip((base + noise + 1) * 110, 0, 255).astype(np.uint8)


def _polygon(rng: np.random.Generator, width: int, height: int) -> list[float]:
    cx, cy = rng.uniform(0.15, 0.85) * width, rng.uniform(0.15, 0.85) * height
    radius = rng.uniform(20, 120, rng.integers(5, 13))
    angles = np.sort(rng.uniform(0, 2 * np.pi, len(radius)))
    xs = np.clip(cx + radius * np.cos(angles), 0, width - 1)
    ys = np.clip(cy + radius * np.sin(angles), 0, height - 1)
    return [round(float(v), 1) for p in zip(xs, ys, strict=True) for v in p]


def make_coco(root: str, count: int) -> tuple[str, str]:
    """``count`` 640x480 JPEGs with polygon instances and their COCO JSON."""
    images_dir, json_file = os.path.join(root, "coco", "images"), os.path.join(root, "coco.json")
    if os.path.exists(json_file):
        return json_file, images_dir
    os.makedirs(images_dir, exist_ok=True)
    rng, images, annotations = np.random.default_rng(0), [], []
    for i in range(count):
        width, height = (640, 480) if i % 4 else (480, 640)  # some portrait images
        pixels = Image.fromarray(_scene(rng, width, height))
        draw = ImageDraw.Draw(pixels)
        for _ in range(rng.integers(2, 9)):
            polygon = _polygon(rng, width, height)
            draw.polygon(polygon, fill=tuple(int(c) for c in rng.integers(0, 255, 3)))
            xs, ys = polygon[0::2], polygon[1::2]
            annotations.append({"id": len(annotations) + 1, "image_id": i + 1,
                                "category_id": int(rng.integers(1, 6)), "iscrowd": 0,
                                "segmentation": [polygon], "area": 1.0,
                                "bbox": [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]})
        pixels.save(os.path.join(images_dir, f"{i:06d}.jpg"), quality=90)
        images.append({"id": i + 1, "file_name": f"{i:06d}.jpg", "width": width, "height": height})
    categories = [{"id": c, "name": f"class{c}"} for c in range(1, 6)]
    with open(json_file, "w") as f:
        json.dump({"images": images, "annotations": annotations, "categories": categories}, f)
    return json_file, images_dir


def make_ade20k(root: str, count: int) -> str:
    """``count`` 683x512 JPEGs and label PNGs (150 classes, 255 = ignore) in the
    ``ADEChallengeData2016`` layout."""
    base = os.path.join(root, "ADEChallengeData2016")
    images_dir = os.path.join(base, "images", "training")
    labels_dir = os.path.join(base, "annotations_detectron2", "training")
    if os.path.isdir(labels_dir) and len(os.listdir(labels_dir)) == count:
        return base
    os.makedirs(images_dir, exist_ok=True)
    os.makedirs(labels_dir, exist_ok=True)
    rng = np.random.default_rng(1)
    for i in range(count):
        image = Image.fromarray(_scene(rng, 683, 512))
        label = Image.new("L", (683, 512), int(rng.integers(0, 150)))
        for _ in range(rng.integers(4, 12)):
            polygon, value = _polygon(rng, 683, 512), int(rng.integers(0, 150))
            ImageDraw.Draw(label).polygon(polygon, fill=value)
            ImageDraw.Draw(image).polygon(polygon, fill=tuple(int(c) for c in
                                                                rng.integers(0, 255, 3)))
        image.save(os.path.join(images_dir, f"ADE_train_{i:08d}.jpg"), quality=90)
        label.save(os.path.join(labels_dir, f"ADE_train_{i:08d}.png"))
    return base


def sources(root: str, count: int) -> dict:
    """task -> (dataset dicts for the file loader, shard set for the streaming loader)."""
    out = {}
    for task, source in (("coco", coco_source(*make_coco(root, count), name="coco_like")),
                         ("ade20k", ade20k_source(make_ade20k(root, count), "training",
                                                  name="ade_like"))):
        directory = os.path.join(root, "shards", task)
        if not os.path.exists(os.path.join(directory, "manifest.json")):
            write_shards(source, directory, shard_size=8, progress=False)
        out[task] = (source.dicts, ShardSet.from_manifests(directory))
    return out


def mapper(task: str):
    """The training mapper of the task's paper config."""
    cfg = LazyConfig.load(os.path.join(ROOT, CONFIGS[task]))
    return instantiate(cfg.dataloader.train.mapper), task == "coco"


def loader(kind: str, task: str, data: tuple, workers: int):
    """A file or streaming training loader at batch BATCH on one rank."""
    map_fn, grouping = mapper(task)
    if kind == "files":
        return build_train_loader(data[0], mapper=map_fn, total_batch_size=BATCH,
                                  num_workers=workers, seed=0, aspect_ratio_grouping=grouping)
    return build_stream_train_loader(data[1], map_fn, BATCH, num_workers=workers, seed=0,
                                     aspect_ratio_grouping=grouping, rank=0, world_size=1)


def throughput(made, batches: int, warmup: int) -> tuple[float, float]:
    """Images/s (wall clock) of a fresh loader over ``batches`` batches after ``warmup``,
    and this process's CPU milliseconds per image (all the work when it has no workers)."""
    iterator = iter(made)
    for _ in range(warmup):
        next(iterator)
    start, cpu = time.perf_counter(), time.process_time()
    images = sum(len(next(iterator)) for _ in range(batches))
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    del iterator  # stops the DataLoader workers
    return images / seconds, 1000 * cpu / images


def resume_seconds(task: str, data: tuple, skip: int) -> tuple[float, float]:
    """Seconds to the first batch of a stream after ``load_state_dict`` at batch ``skip``
    (the skipped samples are read, not decoded), and to draw ``skip + 1`` batches."""
    start = time.perf_counter()
    iterator = iter(loader("stream", task, data, 0))
    for _ in range(skip + 1):
        next(iterator)
    drawn = time.perf_counter() - start
    resumed = loader("stream", task, data, 0)
    resumed.load_state_dict({"batches": skip})
    start = time.perf_counter()
    next(iter(resumed))
    return time.perf_counter() - start, drawn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=48, help="images per generated set")
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--resume-skip", type=int, default=100)
    parser.add_argument("--step-seconds", type=float, default=5.90)
    parser.add_argument("--gpu-step-seconds", type=float, default=0.45)
    parser.add_argument("--root", default=os.path.join(ROOT, "output/bench_loader/real"))
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    began = time.perf_counter()
    data = sources(os.path.abspath(args.root), args.images)
    print(f"data ready in {time.perf_counter() - began:.1f} s", flush=True)
    cpu_need, gpu_need = BATCH / args.step_seconds, BATCH / args.gpu_step_seconds
    rows = []
    for task in data:
        for workers in args.workers:
            runs = {"files": [], "stream": []}
            for _ in range(args.repeats):
                for kind in runs:
                    made = loader(kind, task, data[task], workers)
                    runs[kind].append(throughput(made, args.batches, args.warmup))
            print(f"  {task} workers={workers}: {runs}", flush=True)
            (files, files_cpu), (stream, stream_cpu) = (
                [statistics.median(r[i] for r in runs[k]) for i in (0, 1)]
                for k in ("files", "stream"))
            rows.append({"set": task, "workers": workers, "files img/s": files,
                         "stream img/s": stream, "stream / files": stream / files,
                         "CPU ms/img files": files_cpu if not workers else "-",
                         "CPU ms/img stream": stream_cpu if not workers else "-",
                         "stream / CPU step": stream / cpu_need,
                         "stream / GPU step": stream / gpu_need})
    print_table(f"Training loader throughput on real-size JPEGs (read + decode + paper mapper, "
                f"batch {BATCH}), images/s, median of {args.repeats}", rows)
    print(f"\nA step consumes {cpu_need:.2f} img/s on a CPU ({args.step_seconds} s per batch-"
          f"{BATCH} Swin-B Mona step, bench_mona) and {gpu_need:.2f} img/s per GPU (assumed "
          f"{args.gpu_step_seconds} s per batch-{BATCH} Cascade Mask R-CNN Swin-B step); a "
          f"ratio >= 1 in the step columns means the loader keeps up.")
    resumed, drawn = resume_seconds("coco", data["coco"], args.resume_skip)
    print(f"Resuming the COCO-like stream at batch {args.resume_skip} (0 workers): first "
          f"batch after {resumed:.2f} s, against {drawn:.2f} s to draw the batches "
          f"({resumed / drawn:.3f}x)")
    print(f"total {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
