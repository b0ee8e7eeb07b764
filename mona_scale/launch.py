"""Process-group set-up: one entry for torchrun, SLURM (srun), spawned workers and single
processes.

``init_distributed()`` reads the environment torchrun (or our own spawner) sets, sets the
device to the local rank's GPU, creates the default process group and detectron2's
per-machine group so that ``detectron2.utils.comm`` works under both detectron2 v0.6 and
upstream. With CUDA the default group is ``cuda:nccl,cpu:gloo``: GPU tensors go through
NCCL and CPU tensors (flags, counts, python objects) through gloo, so a CPU tensor in a
collective never meets NCCL's "No backend type associated with device type cpu"; without
CUDA it is plain gloo. A single process gets a group of one on a free local port (and the
RANK / LOCAL_RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT variables DeepSpeed reads), so
that ddp, fsdp and deepspeed start the same way at world size 1 as under torchrun.
``launch()`` spawns ``--num-gpus`` local workers the way detectron2's launcher does, but
also on CPU (detectron2 v0.6's launcher requires CUDA).
"""
from __future__ import annotations

import dataclasses
import datetime
import gc
import os
import re
import socket
import subprocess
import sys
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from . import collectives

__all__ = ["DistInfo", "dist_info_from_env", "init_distributed", "launch", "find_free_port",
           "slurm_master_addr", "process_group_backend", "run_distributed",
           "shutdown_distributed",
           "DEFAULT_TIMEOUT_S"]

#: collectives and the rendezvous wait this long before failing (detectron2's default,
#: ``train.dist_timeout_minutes``): rank 0's COCO evaluation can keep the others waiting
DEFAULT_TIMEOUT_S = 30 * 60.0


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    master_addr: str = "127.0.0.1"
    master_port: int = 29500
    source: str = "single"

    @property
    def node_rank(self) -> int:
        return self.rank // self.local_world_size

    @property
    def num_nodes(self) -> int:
        return self.world_size // self.local_world_size


def _int(env: Mapping[str, str], key: str) -> int:
    try:
        return int(env[key])
    except ValueError as e:
        raise ValueError(f"environment variable {key}={env[key]!r} is not an integer") from e


def _tasks_per_node(env: Mapping[str, str]) -> int:
    if "SLURM_NTASKS_PER_NODE" in env:
        return _int(env, "SLURM_NTASKS_PER_NODE")
    counts = env.get("SLURM_TASKS_PER_NODE", "")  # e.g. "8(x2)" or "8,8" or "8,4"
    values = {part.split("(")[0] for part in counts.split(",") if part}
    if len(values) != 1:
        raise ValueError(
            f"SLURM job without --ntasks-per-node (SLURM_TASKS_PER_NODE={counts!r}): launch "
            f"the same number of tasks on every node, e.g. sbatch --ntasks-per-node=8")
    return int(values.pop())


def slurm_master_addr(nodelist: str) -> str:
    """Address of the first node of ``nodelist`` (its NodeAddr: node names may not resolve).

    Args:
        nodelist: ``SLURM_JOB_NODELIST``, e.g. ``gpu[01-04]``.
    """
    first = subprocess.run(["scontrol", "show", "hostnames", nodelist], check=True,
                           capture_output=True, text=True).stdout.split()[0]
    info = subprocess.run(["scontrol", "show", "node", first], capture_output=True, text=True)
    match = re.search(r"NodeAddr=(\S+)", info.stdout)
    return match.group(1) if match else first


def dist_info_from_env(env: Mapping[str, str] | None = None,
                       resolve_master: Callable[[str], str] = slurm_master_addr) -> DistInfo:
    """Where this process sits: torchrun variables (RANK, WORLD_SIZE, LOCAL_RANK,
    LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT) first, then SLURM's (SLURM_PROCID,
    SLURM_NTASKS, SLURM_LOCALID, SLURM_NODEID, tasks per node; MASTER_ADDR from the first
    node's address and MASTER_PORT from the job id unless set), else a single process.

    Args:
        env: the environment (default ``os.environ``).
        resolve_master: maps SLURM_JOB_NODELIST to the first node's address.

    Returns:
        A :class:`DistInfo`; raises ``ValueError`` for an inconsistent environment.
    """
    env = os.environ if env is None else env
    if "RANK" in env and "WORLD_SIZE" in env:
        source, names = "torchrun", ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE")
        rank, world = _int(env, "RANK"), _int(env, "WORLD_SIZE")
        local_rank = _int(env, "LOCAL_RANK") if "LOCAL_RANK" in env else rank
        per_node = _int(env, "LOCAL_WORLD_SIZE") if "LOCAL_WORLD_SIZE" in env else world
        node, addr = None, env.get("MASTER_ADDR", "127.0.0.1")  # torchrun numbers nodes
        port = _int(env, "MASTER_PORT") if "MASTER_PORT" in env else 29500
    elif "SLURM_PROCID" in env and _int(env, "SLURM_NTASKS") > 1:
        source, names = "slurm", ("SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", "tasks per node")
        rank, world = _int(env, "SLURM_PROCID"), _int(env, "SLURM_NTASKS")
        local_rank, per_node = _int(env, "SLURM_LOCALID"), _tasks_per_node(env)
        node = _int(env, "SLURM_NODEID") if "SLURM_NODEID" in env else rank // per_node
        addr = env.get("MASTER_ADDR") or resolve_master(env.get("SLURM_JOB_NODELIST",
                                                                "localhost"))
        port = (_int(env, "MASTER_PORT") if "MASTER_PORT" in env
                else 10000 + _int(env, "SLURM_JOB_ID") % 20000 if "SLURM_JOB_ID" in env
                else 29500)
    else:
        return DistInfo()
    if not 0 <= rank < world:
        raise ValueError(f"{names[0]}={rank} is outside {names[1]}={world}")
    if not 0 <= local_rank < per_node or world % per_node or (
            node is not None and rank != node * per_node + local_rank):
        raise ValueError(f"inconsistent {source.upper()} tasks: {names[0]}={rank}, {names[2]}="
                         f"{local_rank}, {names[3]}={per_node}, {names[1]}={world}"
                         + ("" if node is None else f", node {node}"))
    return DistInfo(rank, world, local_rank, per_node, addr, port, source)


def _create_local_group(info: DistInfo) -> None:
    from detectron2.utils import comm
    if hasattr(comm, "create_local_process_group"):  # upstream detectron2
        comm.create_local_process_group(info.local_world_size)
        return
    for node in range(info.num_nodes):  # detectron2 v0.6: what its launcher does
        ranks = list(range(node * info.local_world_size, (node + 1) * info.local_world_size))
        group = dist.new_group(ranks)
        if node == info.node_rank:
            comm._LOCAL_PROCESS_GROUP = group


def process_group_backend(cuda: bool | None = None) -> str:
    """The default group's backend: ``cuda:nccl,cpu:gloo`` with CUDA, ``gloo`` without.

    Args:
        cuda: whether this process trains on CUDA (default ``torch.cuda.is_available()``).
    """
    cuda = torch.cuda.is_available() if cuda is None else cuda
    return "cuda:nccl,cpu:gloo" if cuda else "gloo"


def _detectron2_object_group(timeout: datetime.timedelta) -> None:
    """detectron2's ``comm.all_gather`` / ``gather`` run over ``_get_global_gloo_group()``,
    which is the default group unless that is plain NCCL, and assert that its backend is
    exactly gloo or nccl: a ``cuda:nccl,cpu:gloo`` default group fails that assertion. Point
    it at a gloo group over all ranks."""
    from detectron2.utils import comm
    if not hasattr(comm, "_get_global_gloo_group") or dist.get_backend() in ("gloo", "nccl"):
        return
    collectives.gloo_group(timeout)
    comm._get_global_gloo_group = collectives.gloo_group


def init_distributed(timeout_s: float = DEFAULT_TIMEOUT_S, env: Mapping[str, str] | None = None,
                     backend: str | None = None) -> DistInfo:
    """Set the device and create the default process group (also for a single process)
    and detectron2's local group; a no-op for the group when one exists.

    Args:
        timeout_s: how long the rendezvous and collectives may wait before failing
            (``train.dist_timeout_minutes``).
        env: the environment (default ``os.environ``, which a single process gets its
            torchrun variables written into).
        backend: the default group's backend (default :func:`process_group_backend`).

    Returns:
        The :class:`DistInfo` of this process.
    """
    info = dist_info_from_env(env)
    if info.source == "single":  # with the torchrun variables DeepSpeed reads
        target = os.environ if env is None else dict(env)
        for key, value in {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1",
                           "LOCAL_WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1",
                           "MASTER_PORT": str(find_free_port())}.items():
            target.setdefault(key, value)
        info = dataclasses.replace(info, master_port=_int(target, "MASTER_PORT"))
    if torch.cuda.is_available():
        torch.cuda.set_device(info.local_rank)
    if dist.is_initialized():
        return info
    timeout = datetime.timedelta(seconds=timeout_s)
    dist.init_process_group(
        backend or process_group_backend(), init_method=f"tcp://{info.master_addr}:"
        f"{info.master_port}", rank=info.rank, world_size=info.world_size, timeout=timeout)
    _create_local_group(info)
    _detectron2_object_group(timeout)
    collectives.barrier()
    return info


def find_free_port() -> int:
    """A free TCP port on localhost."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(local_rank: int, fn: Callable, args: tuple, env: dict, timeout_s: float) -> None:
    os.environ.update(env)
    os.environ["LOCAL_RANK"] = str(local_rank)
    os.environ["RANK"] = str(int(env["NODE_RANK"]) * int(env["LOCAL_WORLD_SIZE"]) + local_rank)
    if "OMP_NUM_THREADS" in env:  # torch read the variable at import, before this call
        torch.set_num_threads(int(env["OMP_NUM_THREADS"]))
    run_distributed(fn, args, timeout_s)


def run_distributed(fn: Callable, args: tuple = (), timeout_s: float = DEFAULT_TIMEOUT_S):
    """``fn(*args)`` inside :func:`init_distributed`'s group, destroyed afterwards if this
    call created it: when ``fn`` returns, when it exits (``SystemExit``: a signalled stop is
    agreed by every rank first), and in a process group of one. When ``fn`` raised anything
    else in a group of several, the group is left to the process exit, as torchtitan does:
    a peer may still wait in a collective, and destroying the group could hang. Before a
    destruction after an exception, the local variables of its traceback's frames are
    cleared (they hold the model, which holds the group); the traceback itself is kept.

    Args:
        fn: the per-process main function.
        args: its arguments.
        timeout_s: the process group's timeout.

    Returns:
        What ``fn`` returns.
    """
    created = not dist.is_initialized()
    init_distributed(timeout_s)
    try:
        result = fn(*args)
    except BaseException as error:
        if created and (isinstance(error, SystemExit) or dist.get_world_size() == 1):
            traceback.clear_frames(error.__traceback__)  # its frames' locals hold the model
            shutdown_distributed()
        raise
    if created:
        shutdown_distributed()
    return result


def shutdown_distributed() -> None:
    """Destroy the default process group after dropping every reference that would keep a
    group alive past ``destroy_process_group``: ours, detectron2's (``comm._LOCAL_PROCESS_GROUP``
    and the lru-cached ``_get_global_gloo_group`` / ``create_local_process_group``),
    DeepSpeed's (the world, expert and tensor-parallel groups of ``deepspeed.utils.groups``,
    the lists of its comm backend, the default argument of its barriers) and torch's DTensor
    caches (see
    :func:`_clear_dtensor_caches`). A gloo group that outlives ``destroy_process_group`` keeps
    its worker threads until interpreter shutdown, where a thread still releasing a finished
    collective's tensors aborts the process (torch 2.14: "terminate called without an active
    exception", SIGABRT) after training succeeded. Call it once the wrapped model is
    released (a live FSDP or DDP model holds its group). A no-op without a process group.
    Use it instead of ``torch.distributed.destroy_process_group``."""
    if not dist.is_initialized():
        return
    from detectron2.utils import comm

    collectives.release_gloo_group()
    holders = [comm, sys.modules.get("deepspeed.utils.groups"),
               getattr(sys.modules.get("deepspeed.comm.comm"), "cdb", None)]
    for holder in (h for h in holders if h is not None):
        for name, value in list(vars(holder).items()):
            if isinstance(value, dist.ProcessGroup):
                setattr(holder, name, None)
            elif isinstance(value, (dict, list)) and any(isinstance(v, dist.ProcessGroup) for v in (
                    value.values() if isinstance(value, dict) else value)):
                value.clear()
            elif callable(getattr(value, "cache_clear", None)):  # lru-cached group getters
                value.cache_clear()
    # DeepSpeed's TorchBackend.barrier / monitored_barrier take group=GroupMember.WORLD as a
    # default argument, bound when deepspeed is first imported: after init_process_group
    # that is the default group, for good. None is what an import before it binds.
    backend = getattr(sys.modules.get("deepspeed.comm.torch"), "TorchBackend", None)
    for function in vars(backend).values() if backend is not None else ():
        defaults = getattr(function, "__defaults__", None) or ()
        if any(isinstance(d, dist.ProcessGroup) for d in defaults):
            function.__defaults__ = tuple(
                None if isinstance(d, dist.ProcessGroup) else d for d in defaults)
    _clear_dtensor_caches()
    gc.collect()  # models and meshes in reference cycles hold groups too
    dist.destroy_process_group()


def _clear_dtensor_caches() -> None:
    """Empty the caches through which torch keeps every ``DeviceMesh`` (and so its process
    group) alive once DTensor ran (FSDP2's parameters are DTensors): the lru caches of
    ``torch.distributed`` (sharding propagation, mesh topology, redistribution plans), the
    C++ fast-path sharding cache and the redistribute-planner dict. torch offers no public
    call for this; the private ones are looked up and skipped where a torch version lacks
    them. Costs a walk over the live objects, once per process."""
    if "torch.distributed.tensor" not in sys.modules:
        return
    from torch.distributed.tensor import _redistribute, debug

    lru_type = type(lru_cache(None)(len))
    for obj in gc.get_objects():
        if type(obj) is lru_type and str(getattr(obj, "__module__", "")).startswith(
                "torch.distributed"):
            obj.cache_clear()
    for clear in (getattr(debug, "_clear_sharding_prop_cache", None),
                  getattr(_redistribute, "clear_redistribute_planner_cache", None)):
        if clear is not None:
            clear()


def launch(fn: Callable, num_processes: int = 1, num_machines: int = 1, machine_rank: int = 0,
           dist_url: str | None = None, args: tuple = (), timeout_s: float = DEFAULT_TIMEOUT_S
           ) -> None:
    """Run ``fn(*args)`` in ``num_processes`` local workers (detectron2 CLI semantics).

    Args:
        fn: the per-process main function.
        num_processes: workers on this machine (``--num-gpus``).
        num_machines: machines in the job.
        machine_rank: this machine's rank.
        dist_url: ``tcp://host:port`` of machine 0, or ``auto`` / None for a free local port.
        args: ``fn``'s arguments.
        timeout_s: the process group's timeout (``train.dist_timeout_minutes``).

    Several local workers get ``OMP_NUM_THREADS=1`` (and ``torch.set_num_threads(1)``)
    unless ``OMP_NUM_THREADS`` is set, as under torchrun.
    """
    world = num_processes * num_machines
    if world == 1:
        run_distributed(fn, args, timeout_s)
        return
    if dist_url in (None, "auto"):
        if num_machines > 1:
            raise ValueError("--dist-url auto is only for single-machine jobs; pass "
                             "tcp://<machine 0 address>:<port>")
        dist_url = f"tcp://127.0.0.1:{find_free_port()}"
    if not dist_url.startswith("tcp://"):
        raise ValueError(f"--dist-url must look like tcp://host:port, got {dist_url!r}")
    host, port = dist_url[len("tcp://"):].rsplit(":", 1)
    env = {"MASTER_ADDR": host, "MASTER_PORT": port, "WORLD_SIZE": str(world),
           "LOCAL_WORLD_SIZE": str(num_processes), "NODE_RANK": str(machine_rank)}
    if num_processes > 1 and "OMP_NUM_THREADS" not in os.environ:
        # as torchrun does: one intra-op thread per process unless the user chose a number
        # (N processes with a thread per core each oversubscribe the cores N times)
        env["OMP_NUM_THREADS"] = "1"
    mp.start_processes(_worker, nprocs=num_processes, args=(fn, args, env, timeout_s),
                       daemon=False,
                       start_method="spawn")
