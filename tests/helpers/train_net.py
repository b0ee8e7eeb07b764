"""``projects/train_net.py`` as a subprocess on the tiny quickstart configs (CPU, seconds),
and readers for what a run writes (``metrics.json``, detectron2's ``copypaste`` lines)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from mona_scale.launch import find_free_port

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG = os.path.join(ROOT, "configs/quickstart/shapes_cascade_mona.py")
# the tiny Cascade Mask R-CNN run: 8 training images of 64 pixels, batch 2, no workers
TINY = ["dataloader.train.total_batch_size=2", "dataloader.train.num_workers=0",
        "dataloader.test.num_workers=0", "dataloader.train.dataset.num_images=8",
        "dataloader.test.dataset.num_images=4",
        "dataloader.train.mapper.augmentations.0.short_edge_length=[64]",
        "dataloader.test.mapper.augmentations.0.short_edge_length=64",
        "train.log_period=1", "train.checkpointer.period=3", "optimizer.lr=1e-3"]

CLS_CONFIG = os.path.join(ROOT, "configs/quickstart/shapes_cls_mona.py")
# the tiny shape classifier run
CLS_TINY = ["dataloader.train.total_batch_size=2", "dataloader.train.num_workers=0",
            "dataloader.test.num_workers=0", "dataloader.train.dataset.num_images=8",
            "dataloader.test.dataset.num_images=4", "train.wandb.enabled=False",
            "train.log_period=1"]


def train_net(tmp_path, *args: str, nproc: int = 1, check: bool = True,
              config: str = CONFIG) -> subprocess.CompletedProcess:
    """Run ``projects/train_net.py`` in ``tmp_path`` (synthetic data under
    ``tmp_path/data``, one thread per process).

    Args:
        tmp_path: working directory of the run.
        args: flags (``--resume``, ``--eval-only``, ...) and ``key=value`` overrides, in any
            order (the flags are passed first).
        nproc: processes; above 1 through ``torch.distributed.run`` (gloo on CPU).
        check: raise ``AssertionError`` with the end of stderr when the run fails.
        config: the LazyConfig file.

    Returns:
        The finished process (stdout and stderr captured as text).
    """
    env = dict(os.environ, MONA_DATASETS=str(tmp_path / "data"), OMP_NUM_THREADS="1")
    if nproc > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}",
               f"--master_port={find_free_port()}", os.path.join(ROOT, "projects/train_net.py")]
    else:
        cmd = [sys.executable, os.path.join(ROOT, "projects/train_net.py")]
    flags = [a for a in args if "=" not in a]  # before the key=value overrides
    overrides = [a for a in args if "=" in a]
    result = subprocess.run(cmd + ["--config-file", config, *flags, *overrides], env=env,
                            cwd=tmp_path, capture_output=True, text=True, timeout=600)
    if check and result.returncode != 0:
        raise AssertionError(f"train_net failed:\n{result.stderr[-4000:]}")
    return result


def read_metrics(out) -> list[dict]:
    """The records of ``<out>/metrics.json``, in order."""
    with open(os.path.join(out, "metrics.json")) as f:
        return [json.loads(line) for line in f]


def copypaste(log: str, task: str) -> str:
    """The metric values detectron2 prints for ``task`` (last evaluation in the log)."""
    lines = [line.split("copypaste: ")[1] for line in log.splitlines() if "copypaste: " in line]
    start = len(lines) - 1 - lines[::-1].index(f"Task: {task}")
    return lines[start + 2]


def run_two_rank_worker(worker: str, out, timeout: int = 600) -> None:
    """Launch ``tests/helpers/<worker>`` on 2 gloo ranks under ``torch.distributed.run``,
    with ``out`` as working directory and argument (synthetic data under ``out/data``).

    Args:
        worker: the worker script's file name in ``tests/helpers/``.
        out: the directory the worker writes its results to.
        timeout: seconds before the launch is killed.

    Raises:
        AssertionError: with the end of stderr when the launch fails.
    """
    env = dict(os.environ, MONA_DATASETS=str(out / "data"), OMP_NUM_THREADS="1")
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
         f"--master_port={find_free_port()}", os.path.join(ROOT, "tests/helpers", worker),
         str(out)], env=env, cwd=out, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr[-5000:]
