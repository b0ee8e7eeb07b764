"""Distributed set-up from the environment: torchrun, SLURM, single process, failures."""
import os
import subprocess
import sys
import time

from mona_scale.launch import DistInfo, dist_info_from_env, find_free_port

import pytest

SLURM = {"SLURM_PROCID": "5", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1", "SLURM_NODEID": "1",
         "SLURM_NTASKS_PER_NODE": "4", "SLURM_JOB_ID": "123456",
         "SLURM_JOB_NODELIST": "gpu[01-02]"}


def first_node(nodelist):
    assert nodelist == "gpu[01-02]"
    return "10.1.2.3"


def test_single_process_by_default():
    assert dist_info_from_env({}) == DistInfo()


def test_torchrun_variables():
    info = dist_info_from_env({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1",
                               "LOCAL_WORLD_SIZE": "2", "MASTER_ADDR": "h", "MASTER_PORT": "7"})
    assert (info.rank, info.world_size, info.local_rank, info.node_rank, info.num_nodes,
            info.master_addr, info.master_port, info.source) == (3, 4, 1, 1, 2, "h", 7,
                                                                  "torchrun")


def test_slurm_variables_with_port_from_job_id():
    info = dist_info_from_env(SLURM, resolve_master=first_node)
    assert (info.rank, info.world_size, info.local_rank, info.local_world_size,
            info.node_rank, info.master_addr, info.master_port, info.source) == (
        5, 8, 1, 4, 1, "10.1.2.3", 10000 + 123456 % 20000, "slurm")


def test_slurm_explicit_master_and_tasks_per_node_forms():
    env = {k: v for k, v in SLURM.items() if k != "SLURM_NTASKS_PER_NODE"}
    env.update(SLURM_TASKS_PER_NODE="4(x2)", MASTER_ADDR="head", MASTER_PORT="2222")
    info = dist_info_from_env(env, resolve_master=first_node)
    assert (info.local_world_size, info.master_addr, info.master_port) == (4, "head", 2222)
    env["SLURM_TASKS_PER_NODE"] = "4,2"
    with pytest.raises(ValueError, match="--ntasks-per-node"):
        dist_info_from_env(env, resolve_master=first_node)


@pytest.mark.parametrize("change,message", [
    ({"SLURM_PROCID": "9"}, "SLURM_PROCID=9 is outside SLURM_NTASKS=8"),
    ({"SLURM_LOCALID": "2"}, "inconsistent SLURM tasks"),
    ({"SLURM_NTASKS": "x"}, "SLURM_NTASKS='x' is not an integer"),
])
def test_inconsistent_slurm_environment(change, message):
    with pytest.raises(ValueError, match=message):
        dist_info_from_env({**SLURM, **change}, resolve_master=first_node)


def test_torchrun_rank_outside_world():
    with pytest.raises(ValueError, match="RANK=4 is outside WORLD_SIZE=4"):
        dist_info_from_env({"RANK": "4", "WORLD_SIZE": "4"})


def test_unreachable_rendezvous_fails_within_the_timeout():
    env = dict(os.environ, RANK="1", WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
               MASTER_PORT=str(find_free_port()))  # nobody listens there
    code = "from mona_scale.launch import init_distributed; init_distributed(timeout_s=3)"
    start = time.time()
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode != 0
    assert time.time() - start < 60
    assert "127.0.0.1" in result.stderr or "timed out" in result.stderr.lower() or \
        "timeout" in result.stderr.lower()
