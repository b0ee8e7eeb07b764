"""Data-loading throughput: the streaming (webdataset shards) and the file-based training
loaders side by side, read + decode + mapper, at 1 and 2 DataLoader workers.

Each variant runs in its own process on the quickstart configs' training loaders
(configs/quickstart/shapes_cascade_mona[_stream].py: 128-pixel PNGs, instance masks,
resize + flip; shapes_cls_mona[_stream].py: 64-pixel PNGs, random resized crop + flip),
with the same mapper and batch size; images/s over ``--batches`` batches after
``--warmup`` batches, the median of ``--repeats`` runs that alternate files and stream (so
background load on a shared machine hits both alike). A last table times a resumed
stream: seconds until the first batch after ``resume_from(n)`` (samples are read but not
decoded), against drawing n batches.

Usage: python benchmarks/bench_loader.py [--batches 40] [--warmup 5] [--repeats 3] [--root DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time

from mona_scale.engine.config import load_config

from common import print_table, run_worker
from detectron2.config import instantiate

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TASKS = {  # task -> (file-based config, streaming config)
    "detection": ("configs/quickstart/shapes_cascade_mona.py",
                  "configs/quickstart/shapes_cascade_mona_stream.py"),
    "classification": ("configs/quickstart/shapes_cls_mona.py",
                       "configs/quickstart/shapes_cls_mona_stream.py"),
}


def make_loader(task: str, kind: str, workers: int):
    config = TASKS[task][kind == "stream"]
    cfg = load_config(os.path.join(ROOT, config), [f"dataloader.train.num_workers={workers}"])
    return instantiate(cfg.dataloader.train), cfg.dataloader.train.total_batch_size


def run_variant(task: str, kind: str, workers: int, batches: int, warmup: int) -> dict:
    """Inside a fresh process: images/s of one loader."""
    loader, batch_size = make_loader(task, kind, workers)
    iterator = iter(loader)
    for _ in range(warmup):
        next(iterator)
    start = time.perf_counter()
    images = sum(len(next(iterator)) for _ in range(batches))
    seconds = time.perf_counter() - start
    return {"images_per_s": images / seconds, "batch": batch_size}


def run_resume(task: str, skip: int) -> dict:
    """Inside a fresh process: first batch after resume_from(skip) vs drawing skip batches."""
    loader, _ = make_loader(task, "stream", 1)
    start = time.perf_counter()
    iterator = iter(loader)
    for _ in range(skip + 1):
        next(iterator)
    drawn = time.perf_counter() - start
    loader, _ = make_loader(task, "stream", 1)
    loader.resume_from(skip)
    start = time.perf_counter()
    next(iter(loader))
    return {"drawn_s": drawn, "resumed_s": time.perf_counter() - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--resume-skip", type=int, default=100)
    parser.add_argument("--root", default=os.path.join(ROOT, "output/bench_loader/data"))
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ["MONA_DATASETS"] = os.path.abspath(args.root)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if args.worker:
        if args.worker[0] == "resume":
            record = run_resume(args.worker[1], int(args.worker[2]))
        else:
            task, kind, workers = args.worker
            record = run_variant(task, kind, int(workers), args.batches, args.warmup)
        print(json.dumps(record))
        return
    script, common = os.path.abspath(__file__), [f"--batches={args.batches}",
                                                f"--warmup={args.warmup}",
                                                f"--root={args.root}"]
    for task in TASKS:  # generate files and shards once, outside the timings
        for kind in ("files", "stream"):
            run_worker(script, task, kind, "0", *common[2:], "--batches=1", "--warmup=0")
    rows = []
    for task in TASKS:
        for workers in (1, 2):
            runs = {"files": [], "stream": []}
            for _ in range(args.repeats):
                for kind in runs:
                    runs[kind].append(run_worker(script, task, kind, str(workers), *common))
            files, stream = (statistics.median(r["images_per_s"] for r in runs[kind])
                             for kind in ("files", "stream"))
            rows.append({"task": task, "workers": workers, "batch": runs["files"][0]["batch"],
                         "files img/s": files, "stream img/s": stream,
                         "stream / files": stream / files})
    print_table(f"Training loader throughput (read + decode + mapper), images/s, median of "
                f"{args.repeats}", rows)
    resume = []
    for task in TASKS:
        record = run_worker(script, "resume", task, str(args.resume_skip), *common[2:])
        resume.append({"task": task, "batches skipped": args.resume_skip,
                       "draw them (s)": record["drawn_s"],
                       "resume_from (s)": record["resumed_s"],
                       "ratio": record["resumed_s"] / record["drawn_s"]})
    print_table("Resuming a stream (1 worker): time to the first batch after n batches", resume)


if __name__ == "__main__":
    main()
