"""The sbatch scripts (slurm/*.sh) on a REAL two-node SLURM cluster on localhost
(tests/helpers/slurm_cluster.py): a two-task training job, preemption by signal with requeue and
exact resume (metrics and wandb), a failing job, and the torchrun-per-node variant.

The scripts ask for GPUs (8 per node; voc.sh 2); the tests override that on the sbatch command line
with ``--gpus-per-node=0`` (Slurm 22.05 rejects ``--gres=`` and ``--gres=none``).
"""
import os
import re
import subprocess
import sys
import time

from mona_scale.engine.config import load_config

import pytest
from helpers.slurm_cluster import install_slurm, running_cluster
from helpers.train_net import CLS_CONFIG, CLS_TINY, CONFIG, ROOT, TINY, read_metrics
from helpers.wandb_records import read_run

QUICKSTART = os.path.relpath(CONFIG, ROOT)  # relative: the scripts resolve it in the repo
CPU_ONLY = ["--ntasks-per-node=1", "--cpus-per-task=1", "--gpus-per-node=0"]
SHORT = [*TINY, "dataloader.evaluator=null"]


SCRIPTS = ["coco.sh", "voc.sh", "ade20k.sh", "cls.sh", "torchrun.sh"]


@pytest.mark.parametrize("script", SCRIPTS)
def test_script_defaults(script):
    path = os.path.join(ROOT, "slurm", script)
    text = open(path).read()
    assert subprocess.run(["bash", "-n", path]).returncode == 0
    config = re.search(r"^CONFIG=(\S+)$", text, re.M).group(1)
    assert os.path.isfile(os.path.join(ROOT, config)), config
    options = " ".join(re.findall(r"^#SBATCH (.*)$", text, re.M)).split()
    for option in ("--signal=USR1@120", "--requeue", "--output=%x-%j.out",
                   "--open-mode=append"):
        assert option in options, option
    flags = dict(o[2:].split("=", 1) for o in options if "=" in o)
    gpus, nodes = int(flags["gpus-per-node"]), int(flags["nodes"])
    ranks_per_node = gpus if script == "torchrun.sh" else int(flags["ntasks-per-node"])
    assert gpus == ranks_per_node >= 1  # one rank per GPU
    # the default world size fits the config's total batch (the loader refuses otherwise)
    batch = load_config(os.path.join(ROOT, config)).dataloader.train.total_batch_size
    assert batch % (nodes * ranks_per_node) == 0, (script, batch, nodes, ranks_per_node)
    assert 'slurm/common.sh"' in text.splitlines()[-1]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    reason = install_slurm()
    if reason:
        pytest.skip(reason)
    with running_cluster(tmp_path_factory.mktemp("slurm")) as running:
        yield running


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    return tmp_path_factory.mktemp("datasets")  # synthetic data, made once by the first job


def submit(cluster, workdir, datasets, script, *args, sbatch=()):
    """``sbatch -N2 <CPU overrides> slurm/<script> --config-file <quickstart> args`` from
    the repository root, the job working in ``workdir``; returns the job id."""
    env = {"MONA_PYTHON": sys.executable, "MONA_DATASETS": str(datasets),
           "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline"}
    return cluster.sbatch("-N2", *CPU_ONLY, f"--chdir={workdir}", *sbatch,
                          os.path.join(ROOT, "slurm", script), "--config-file", QUICKSTART,
                          *args, env=env, cwd=ROOT)


def run_dir(workdir, name, job):
    return workdir / "output" / "slurm" / f"mona-{name}-{job}"  # the default output root


def job_output(workdir, name, job):
    return (workdir / f"mona-{name}-{job}.out").read_text()


def iterations(out):
    return [r["iteration"] for r in read_metrics(out) if "total_loss" in r]


@pytest.fixture(scope="module")
def failing_job(cluster, tmp_path_factory, datasets):
    """A job whose config override is unknown (submitted early: it runs next to another)."""
    workdir = tmp_path_factory.mktemp("failing")
    return workdir, submit(cluster, workdir, datasets, "voc.sh", "train.max_iters=3")


@pytest.mark.slurm
@pytest.mark.slow
def test_coco_script_trains_on_two_nodes(cluster, tmp_path, datasets, failing_job):
    job = submit(cluster, tmp_path, datasets, "coco.sh", *SHORT, "train.max_iter=4")
    info = cluster.wait(job)
    log = job_output(tmp_path, "coco", job)
    assert info["JobState"] == "COMPLETED", log[-3000:]
    assert cluster.records(job) == ["COMPLETED"]  # sacct -c: the job completion log
    assert info["NodeList"] == "n[1-2]" and info["NumTasks"] == "2"
    out = run_dir(tmp_path, "coco", job)
    assert iterations(out) == [0, 1, 2, 3]
    assert "process 0 of 2" in (out / "log.txt").read_text()
    assert "process 1 of 2" in (out / "log.txt.rank1").read_text()
    assert f"job {job} (restart 0) on n[1-2]: 2 tasks" in log


@pytest.mark.slurm
@pytest.mark.slow
def test_failing_config_fails_the_job_with_the_error(cluster, failing_job):
    workdir, job = failing_job
    info = cluster.wait(job)
    assert info["JobState"] == "FAILED" and info["ExitCode"] != "0:0"
    assert cluster.records(job) == ["FAILED"]
    assert "train.max_iters" in job_output(workdir, "voc", job)


def wait_for_iterations(cluster, job, out, count, timeout=240):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (out / "metrics.json").is_file() and len(iterations(out)) >= count:
            return
        assert cluster.job(job).get("JobState") in ("PENDING", "RUNNING"), cluster.job(job)
        time.sleep(0.2)
    raise TimeoutError(f"job {job} did not reach iteration {count}")


def preempt_and_finish(cluster, workdir, name, job, max_iter, after):
    """Signal the job once ``after`` iterations are logged, as SLURM does before the time
    limit (--signal=USR1@120) or on preemption; wait until it ran again and finished.
    Returns the run directory and the job's output (both runs: --open-mode=append)."""
    out = run_dir(workdir, name, job)
    wait_for_iterations(cluster, job, out, after)
    cluster.run("scancel", "--signal=USR1", job)
    info = cluster.wait(job)
    log = job_output(workdir, name, job)
    assert info["JobState"] == "COMPLETED", log[-3000:]
    assert int(info["Restarts"]) == 1
    assert cluster.records(job)[-1] == "COMPLETED" and len(cluster.records(job)) == 2
    # (rank 0's own "requeued" line may be lost: SLURM kills the job as it requeues it)
    assert re.search(r"stopping after iteration \d+ \(its checkpoint is written first\): "
                     r"SIGUSR1", log), log[-3000:]
    assert f"JOB {job} ON n1 CANCELLED" in log
    assert "DUE TO JOB REQUEUE" in log
    assert f"job {job} (restart 1)" in log
    stopped = int(log.split("resuming at iteration ")[1].split()[0])
    assert after <= stopped < max_iter
    assert (out / f"model_{stopped - 1:07d}").exists()  # the preemption checkpoint
    assert iterations(out) == list(range(max_iter))  # none lost, none repeated
    return out, log


@pytest.mark.slurm
@pytest.mark.slow
def test_preempted_job_requeues_and_resumes_exactly(cluster, tmp_path, datasets):
    max_iter = 8
    job = submit(cluster, tmp_path, datasets, "coco.sh", *SHORT, f"train.max_iter={max_iter}",
                 "train.checkpointer.period=100")  # only the preemption writes a checkpoint
    out, _ = preempt_and_finish(cluster, tmp_path, "coco", job, max_iter, after=2)
    history, _, ids = read_run(out)
    run_id = (out / "wandb_run_id").read_text()
    assert ids == [run_id, run_id]  # one wandb run across the requeue
    assert sorted(r["_step"] for r in history if "total_loss" in r) == list(range(max_iter))


@pytest.mark.slurm
@pytest.mark.slow
def test_torchrun_variant_runs_one_torchrun_per_node_and_survives_preemption(
        cluster, tmp_path, datasets):
    job = submit(cluster, tmp_path, datasets, "torchrun.sh", *SHORT, "train.max_iter=4",
                 "train.checkpointer.period=100")
    out, log = preempt_and_finish(cluster, tmp_path, "torchrun", job, 4, after=1)
    assert cluster.job(job)["NumTasks"] == "2"  # one torchrun per node
    assert "got signal: 10" not in log  # the signal reached the ranks, not torchrun
    assert "process 0 of 2" in (out / "log.txt").read_text()
    assert "process 1 of 2" in (out / "log.txt.rank1").read_text()
    assert "process 0 of 2" in (out / "log.txt").read_text()
    assert "process 1 of 2" in (out / "log.txt.rank1").read_text()


@pytest.mark.slurm
@pytest.mark.slow
def test_scancel_checkpoints_and_leaves_the_job_cancelled(cluster, tmp_path, datasets):
    """SIGTERM (scancel) checkpoints and stops without ``scontrol requeue``: the job stays
    CANCELLED, with no restart (it used to requeue itself and run again)."""
    env = {"MONA_PYTHON": sys.executable, "MONA_DATASETS": str(datasets),
           "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline"}
    job = cluster.sbatch("-N2", *CPU_ONLY, f"--chdir={tmp_path}",
                         os.path.join(ROOT, "slurm", "cls.sh"), "--config-file",
                         os.path.relpath(CLS_CONFIG, ROOT), *CLS_TINY, "train.max_iter=1000",
                         "train.checkpointer.period=1000", "train.eval_period=0",
                         env=env, cwd=ROOT)
    out = run_dir(tmp_path, "cls", job)
    wait_for_iterations(cluster, job, out, 2)
    cluster.run("scancel", job)
    cluster.wait(job)
    time.sleep(3)  # a requeue would have made it PENDING again by now
    info, log = cluster.job(job), job_output(tmp_path, "cls", job)
    assert info["JobState"] == "CANCELLED", log[-3000:]
    assert int(info["Restarts"]) == 0
    assert cluster.records(job) == ["CANCELLED"]
    assert "SIGTERM" in log and "requeueing SLURM job" not in log
    stopped = (out / "last_checkpoint").read_text()  # the SIGTERM checkpoint, within KillWait
    assert (out / stopped).is_dir() and int(stopped.split("_")[1]) >= 1
