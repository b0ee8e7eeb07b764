"""Control-plane collectives under NCCL's rule, emulated on CPU.

A process group created as ``cuda:gloo`` has a backend for the CUDA device type only, so a
CPU tensor reaching one of its collectives fails with "No backend type associated with
device type cpu", exactly as under an NCCL-only group. Two processes run, under such a
group, every control collective the trainer, evaluation, checkpointing and preemption use
(through the library's own classes), and, under ``cpu:gloo,cuda:gloo`` (the shape of the
``cuda:nccl,cpu:gloo`` group the launcher creates on GPUs), a checkpointed stop and
detectron2's object gathers.
"""
import datetime
import json
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

NO_CPU_BACKEND = "No backend type associated with device type cpu"


def test_launcher_backend_gives_cpu_tensors_a_backend():
    from mona_scale.launch import process_group_backend
    assert process_group_backend(cuda=True) == "cuda:nccl,cpu:gloo"
    assert process_group_backend(cuda=False) == "gloo"


class _Losses(nn.Module):
    """loss_a = (rank + 1) * w (w = 1, not trained), non-finite on ``nan_rank`` from
    iteration ``nan_at``; loss_b = 0.5."""

    def __init__(self, rank, nan_rank=-1, nan_at=0):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(1))
        self.rank, self.nan_rank, self.nan_at, self.calls = rank, nan_rank, nan_at, 0

    def forward(self, batch):
        loss_a = self.weight.sum() * (self.rank + 1)
        if self.rank == self.nan_rank and self.calls >= self.nan_at:
            loss_a = loss_a * float("inf")
        self.calls += 1
        return {"loss_a": loss_a, "loss_b": torch.tensor(0.5)}


def _trainer(model, strategy=None):
    from mona_scale.engine.precision import Precision
    from mona_scale.engine.strategies import build_strategy
    from mona_scale.engine.trainer import StrategyTrainer
    strategy = strategy or build_strategy("ddp", Precision("fp32"))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    return StrategyTrainer(model, iter(lambda: torch.ones(1), None), optimizer, strategy)


def _attempt(results, name, fn):
    try:
        results[name] = fn()
    except Exception as error:  # the report names every call site that failed, and how
        results[name] = f"{type(error).__name__}: {(str(error).splitlines() or [''])[0][:200]}"


def _trainer_metrics(rank):
    trainer = _trainer(_Losses(rank))
    trainer.train(0, 2)
    if rank != 0:
        return None
    return {k: [v for v, _ in trainer.storage.history(k).values()]
            for k in ("loss_a", "loss_b", "total_loss")}


def _non_finite_stop(rank):
    trainer = _trainer(_Losses(rank, nan_rank=1, nan_at=1))
    try:
        trainer.train(0, 3)
    except FloatingPointError as error:
        return str(error).split(";")[0]
    return "no error"


def _equal_length(rank):
    from mona_scale.engine.evaluation import EqualLengthLoader
    loader = EqualLengthLoader([[{"i": i}] for i in range(rank + 1)])  # 1 and 2 batches
    return [len(loader), sum(1 for b in loader if b[0].get("_mona_padding"))]


def _checkpoint_hook_no_stop(rank, out):
    from mona_scale.engine.checkpoint import PeriodicCheckpointHook, TrainingCheckpointer
    trainer = _trainer(_Losses(rank))
    hook = PeriodicCheckpointHook(TrainingCheckpointer(out, trainer.strategy, trainer.model), 50)
    trainer.register_hooks([hook])
    trainer.iter, trainer.max_iter = 0, 100
    hook.after_step()  # collective stop decision: nobody asked, nothing is saved
    return [trainer.stop_requested, os.listdir(out)]


def _preemption(rank):
    """SIGUSR1 reached rank 0 only, no SLURM job: both ranks agree on exit status 138."""
    from mona_scale.engine.stopping import StopControl
    os.environ.pop("SLURM_JOB_ID", None)
    control = StopControl(requeue=True)
    control.received = [10] if rank == 0 else []
    return control.conclude(3, 10)  # collective: "was any rank signalled?"


def _helpers(rank):
    from mona_scale import collectives as c
    c.barrier()
    return {"sum": c.all_reduce_scalar(rank + 1), "max": c.all_reduce_scalar(rank + 5, "max"),
            "min": c.all_reduce_scalar(rank + 5, "min"), "each": c.count_each([rank == 1, False]),
            "count": c.count_each([True])[0], "gather": c.gather_objects({"r": rank}),
            "distinct_seeds": len(set(c.gather_objects(c.shared_random_seed())))}


def _checkpointed_stop(rank, out):
    """ddp at world size 2: rank 1 alone asks to stop during iteration 1; both save and stop
    after iteration 2 (the request is decided in the next step's collective)."""
    from mona_scale.engine.checkpoint import PeriodicCheckpointHook, TrainingCheckpointer
    from mona_scale.engine.precision import Precision
    from mona_scale.engine.strategies import build_strategy
    from mona_scale.engine.trainer import StrategyTrainer

    from detectron2.engine import HookBase
    strategy = build_strategy("ddp", Precision("fp32"))
    model, optimizer = strategy.setup(_Losses(rank), lambda m: torch.optim.SGD(
        m.parameters(), lr=0.0))
    trainer = StrategyTrainer(model, iter(lambda: torch.ones(1), None), optimizer, strategy)

    class StopOnRank1(HookBase):
        def after_step(self):
            if rank == 1 and self.trainer.iter == 1:
                self.trainer.request_stop()  # decided in iteration 2's collective

    checkpointer = TrainingCheckpointer(out, strategy, model, optimizer, trainer)
    trainer.register_hooks([StopOnRank1(), PeriodicCheckpointHook(checkpointer, 100)])
    trainer.train(0, 10)
    return [trainer.iter, sorted(d for d in os.listdir(out) if d.startswith("model_"))]


def _detectron2_comm(rank):
    from detectron2.utils import comm
    return {"all_gather": comm.all_gather(rank), "gather": comm.gather(rank),
            "seed_shared": len(set(comm.all_gather(comm.shared_random_seed()))) == 1}


def _worker(rank, backend, port, out, via_launcher):
    torch.set_num_threads(1)
    env = {"RANK": str(rank), "WORLD_SIZE": "2", "LOCAL_RANK": str(rank),
           "LOCAL_WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
    if via_launcher:
        from mona_scale.launch import init_distributed
        init_distributed(timeout_s=60, env=env, backend=backend)
    else:  # a default group created outside the library (a user's script, another library)
        dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                                world_size=2, timeout=datetime.timedelta(seconds=60))
    results = {}
    _attempt(results, "cpu_tensor_on_default_group",
             lambda: dist.all_reduce(torch.zeros(1)) or "ok")
    _attempt(results, "trainer_metrics", lambda: _trainer_metrics(rank))
    _attempt(results, "non_finite_stop", lambda: _non_finite_stop(rank))
    _attempt(results, "equal_length_loader", lambda: _equal_length(rank))
    ckpt = os.path.join(out, f"ckpt{rank}")
    os.makedirs(ckpt)
    _attempt(results, "checkpoint_stop_decision", lambda: _checkpoint_hook_no_stop(rank, ckpt))
    _attempt(results, "preemption", lambda: _preemption(rank))
    _attempt(results, "helpers", lambda: _helpers(rank))
    if via_launcher:
        shared = os.path.join(out, "shared")
        os.makedirs(shared, exist_ok=True)
        _attempt(results, "checkpointed_stop", lambda: _checkpointed_stop(rank, shared))
        _attempt(results, "detectron2_comm", lambda: _detectron2_comm(rank))
    with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
        json.dump(results, f)
    from mona_scale.launch import shutdown_distributed
    shutdown_distributed()


def _run(tmp_path, backend, via_launcher):
    from mona_scale.launch import find_free_port
    os.environ["OMP_NUM_THREADS"] = "1"
    mp.start_processes(_worker, args=(backend, find_free_port(), str(tmp_path), via_launcher),
                       nprocs=2, start_method="spawn")
    return [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]


def _expected(rank):
    return {
        "trainer_metrics": {"loss_a": [1.5, 1.5], "loss_b": [0.5, 0.5],
                            "total_loss": [2.0, 2.0]} if rank == 0 else None,
        "non_finite_stop": "loss became non-finite at iteration 1 (on 1 rank(s))",
        "equal_length_loader": [2, 1 - rank],
        "checkpoint_stop_decision": [False, []],
        "preemption": 138,
        "helpers": {"sum": 3.0, "max": 6.0, "min": 5.0, "each": [1, 0], "count": 2,
                    "gather": [{"r": 0}, {"r": 1}] if rank == 0 else [],
                    "distinct_seeds": 1 if rank == 0 else 0},  # rank 0 gathers
    }


@pytest.mark.slow
def test_control_plane_under_a_group_without_a_cpu_backend(tmp_path):
    results = _run(tmp_path, "cuda:gloo", via_launcher=False)
    for rank, result in enumerate(results):
        # the emulation is faithful: a CPU tensor on the default group fails as under NCCL
        assert NO_CPU_BACKEND in result.pop("cpu_tensor_on_default_group")
        assert result == _expected(rank), f"rank {rank}: {json.dumps(result, indent=1)}"


@pytest.mark.slow
def test_launcher_group_serves_cpu_tensors_checkpointed_stop_and_detectron2_gathers(tmp_path):
    results = _run(tmp_path, "cpu:gloo,cuda:gloo", via_launcher=True)
    for rank, result in enumerate(results):
        expected = {**_expected(rank), "cpu_tensor_on_default_group": "ok",
                    "checkpointed_stop": [2, ["model_0000002"]],
                    "detectron2_comm": {"all_gather": [0, 1],
                                        "gather": [0, 1] if rank == 0 else [],
                                        "seed_shared": True}}
        assert result == expected, f"rank {rank}: {json.dumps(result, indent=1)}"
