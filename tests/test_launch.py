"""Distributed set-up from the environment: torchrun, SLURM, single process, failures."""
import json
import os
import subprocess
import sys
import textwrap
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_single_process_runs_in_a_group_of_one_with_torchrun_variables():
    code = textwrap.dedent("""
        import json, os
        import torch, torch.distributed as dist
        from mona_scale.launch import launch

        def report():
            group = dist.distributed_c10d._get_default_group()
            timeout = group._get_backend(torch.device("cpu")).options._timeout
            print(json.dumps({"world": dist.get_world_size(), "backend": dist.get_backend(),
                              "timeout_s": timeout.total_seconds(),
                              **{k: os.environ.get(k) for k in ("RANK", "LOCAL_RANK",
                                 "WORLD_SIZE", "MASTER_ADDR")},
                              "port": os.environ.get("MASTER_PORT", "").isdigit()}))

        launch(report, 1, timeout_s=123)
        print(json.dumps({"destroyed": not dist.is_initialized()}))
    """)
    env = {k: v for k, v in os.environ.items() if k not in (
        "RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    inside, after = [json.loads(line) for line in result.stdout.splitlines()[-2:]]
    assert inside == {"world": 1, "backend": "gloo", "timeout_s": 123.0, "RANK": "0",
                      "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1",
                      "port": True}
    assert after == {"destroyed": True}


SHUTDOWN = textwrap.dedent("""
    import json, os
    import torch
    from detectron2.utils import comm
    from mona_scale.engine.precision import Precision
    from mona_scale.engine.strategies import build_strategy
    from mona_scale.launch import run_distributed

    def gloo_workers():  # the worker threads of live gloo groups, named by torch
        return sum(open(f"/proc/self/task/{t}/comm").read().strip() == "pt_gloo_runloop"
                   for t in os.listdir("/proc/self/task"))

    CASE, RAISES = os.environ["CASE"], os.environ["RAISES"] == "1"
    report = {}

    def main():  # as train_net's: run_distributed destroys the group it created
        report["gathered"] = comm.all_gather(comm.get_rank())  # caches a group in comm
        if CASE != "detectron2_comm":  # a trained, wrapped model, left to the caller
            name, options = {"fsdp": ("fsdp", {}), "zero2": ("deepspeed", {"stage": 2}),
                             "zero3": ("deepspeed", {"stage": 3})}[CASE]
            strategy = build_strategy(name, Precision(), **options)
            model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 1))
            model, optimizer = strategy.setup(
                model, lambda m: torch.optim.SGD(m.parameters(), 0.1))
            strategy.backward(model(torch.randn(3, 4)).sum())
            strategy.step(model, optimizer)
            strategy.full_state_dict(model)
            strategy.close()
        report["running"] = gloo_workers() > 0
        if RAISES:  # a signalled stop: the traceback's frames hold the model
            raise SystemExit(138)

    try:
        run_distributed(main)
    except SystemExit as stop:
        report["exit"] = stop.code
    print(json.dumps({**report, "left": gloo_workers(),
                      "cache": comm._get_global_gloo_group.cache_info().currsize,
                      "local": comm._LOCAL_PROCESS_GROUP is None}))
""")



@pytest.mark.slow
@pytest.mark.parametrize("case,raises", [
    ("detectron2_comm", False), ("fsdp", False), ("fsdp", True), ("zero2", True),
    pytest.param("zero3", False, marks=pytest.mark.xfail(
        strict=True, reason="DeepSpeed 0.19.8 keeps a ZeRO-3 engine alive after "
                            "engine.destroy(), and its groups with it"))])
def test_two_ranks_destroy_their_gloo_groups_before_exit(tmp_path, case, raises):
    """A gloo group that outlives ``destroy_process_group`` keeps its worker threads until
    interpreter shutdown, where one still releasing a collective's tensors aborts the
    process ("terminate called without an active exception", SIGABRT) about one run in
    eight to two. The check is the cause, not the intermittent abort: after
    ``run_distributed`` (train_net's path) no gloo worker thread is left, also after a
    signalled stop (``SystemExit``, whose traceback holds the model).
    Holders found so far: detectron2's lru-cached ``_get_global_gloo_group``, torch's DTensor
    caches of FSDP2's ``DeviceMesh``, DeepSpeed's barrier default argument (bound to the
    default group when deepspeed is imported after ``init_process_group``), and a ZeRO-3
    engine, which outlives ``engine.destroy()`` (the known gap, xfail)."""
    script = tmp_path / "shutdown.py"
    script.write_text(SHUTDOWN)
    env = dict(os.environ, OMP_NUM_THREADS="1", CASE=case, RAISES=str(int(raises)))
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
         f"--master_port={find_free_port()}", "--log-dir", str(tmp_path / "logs"),
         "--redirects=1", str(script)], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    reports = [json.loads(p.read_text().splitlines()[-1])
               for p in sorted((tmp_path / "logs").rglob("stdout.log"))]
    expected = {"gathered": [0, 1], "running": True, "left": 0, "cache": 0, "local": True}
    assert reports == [{**expected, **({"exit": 138} if raises else {})}] * 2
