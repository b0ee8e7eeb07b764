"""Runs several training jobs in one torchrun launch (one process group, so the slow part,
starting processes and importing detectron2 / DeepSpeed, is paid once).

    torchrun --nproc_per_node 2 tests/scale_worker.py <jobs.json>

``jobs.json``: a list of {"config": path, "overrides": [...], "resume": bool}. Each job is
exactly what ``projects/train_net.py --config-file <config> [--resume] <overrides>`` runs.
"""
import json
import sys

from mona_scale.engine.config import load_config
from mona_scale.engine.defaults import run
from mona_scale.launch import init_distributed


def main(jobs_file: str) -> None:
    init_distributed()
    with open(jobs_file) as f:
        jobs = json.load(f)
    for job in jobs:
        cfg = load_config(job["config"], job["overrides"])
        run(cfg, resume=job.get("resume", False))


if __name__ == "__main__":
    main(sys.argv[1])
