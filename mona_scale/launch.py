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
import os
import re
import socket
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass

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


def _from_slurm(env: Mapping[str, str], resolve_master: Callable[[str], str]) -> DistInfo:
    rank, world = _int(env, "SLURM_PROCID"), _int(env, "SLURM_NTASKS")
    local_rank, per_node = _int(env, "SLURM_LOCALID"), _tasks_per_node(env)
    node = _int(env, "SLURM_NODEID") if "SLURM_NODEID" in env else rank // per_node
    if not 0 <= rank < world:
        raise ValueError(f"SLURM_PROCID={rank} is outside SLURM_NTASKS={world}")
    if world % per_node or not 0 <= local_rank < per_node or rank != node * per_node + local_rank:
        raise ValueError(f"inconsistent SLURM tasks: SLURM_PROCID={rank}, SLURM_LOCALID="
                         f"{local_rank}, SLURM_NODEID={node}, {per_node} tasks per node, "
                         f"SLURM_NTASKS={world}")
    addr = env.get("MASTER_ADDR") or resolve_master(env.get("SLURM_JOB_NODELIST", "localhost"))
    port = (_int(env, "MASTER_PORT") if "MASTER_PORT" in env
            else 10000 + _int(env, "SLURM_JOB_ID") % 20000 if "SLURM_JOB_ID" in env else 29500)
    return DistInfo(rank, world, local_rank, per_node, addr, port, "slurm")


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
        return _from_torchrun(env)
    if "SLURM_PROCID" in env and _int(env, "SLURM_NTASKS") > 1:
        return _from_slurm(env, resolve_master)
    return DistInfo()


def _from_torchrun(env: Mapping[str, str]) -> DistInfo:
    rank, world = _int(env, "RANK"), _int(env, "WORLD_SIZE")
    local_rank = _int(env, "LOCAL_RANK") if "LOCAL_RANK" in env else rank
    local_world = _int(env, "LOCAL_WORLD_SIZE") if "LOCAL_WORLD_SIZE" in env else world
    if not 0 <= rank < world:
        raise ValueError(f"RANK={rank} is outside WORLD_SIZE={world}")
    if not 0 <= local_rank < local_world or world % local_world:
        raise ValueError(f"LOCAL_RANK={local_rank} / LOCAL_WORLD_SIZE={local_world} do not fit "
                         f"WORLD_SIZE={world}")
    return DistInfo(rank, world, local_rank, local_world, env.get("MASTER_ADDR", "127.0.0.1"),
                    _int(env, "MASTER_PORT") if "MASTER_PORT" in env else 29500, "torchrun")


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


def _single_process_port(env: Mapping[str, str] | None) -> int:
    """A one-process job's rendezvous port. With ``env=None`` the torchrun variables
    DeepSpeed reads (RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT...) are written
    into ``os.environ`` where missing."""
    if env is not None:
        return _int(env, "MASTER_PORT") if "MASTER_PORT" in env else find_free_port()
    defaults = {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "LOCAL_WORLD_SIZE": "1",
                "MASTER_ADDR": "127.0.0.1"}
    for key, value in defaults.items():
        os.environ.setdefault(key, value)
    os.environ.setdefault("MASTER_PORT", str(find_free_port()))
    return _int(os.environ, "MASTER_PORT")


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
    if info.source == "single":
        info = dataclasses.replace(info, master_port=_single_process_port(env))
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
    """``fn(*args)`` inside :func:`init_distributed`'s group, destroyed afterwards (if this
    call created it).

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
        return fn(*args)
    finally:
        if created:
            shutdown_distributed()


def _release_detectron2_groups() -> None:
    """Drop detectron2's module-level references to process groups: the cached result of
    ``comm._get_global_gloo_group`` (the default group itself under gloo; a side gloo
    group under NCCL) and the local group. A gloo group that outlives
    ``destroy_process_group`` is destroyed at interpreter shutdown, which aborts the process
    about one run in two (torch 2.14: "terminate called without an active exception")."""
    from detectron2.utils import comm
    for name in ("_get_global_gloo_group", "create_local_process_group"):
        cache_clear = getattr(getattr(comm, name, None), "cache_clear", None)
        if cache_clear is not None:
            cache_clear()
    comm._LOCAL_PROCESS_GROUP = None


def _release_deepspeed_groups() -> None:
    """Drop DeepSpeed's module-level references to process groups (``deepspeed.utils.groups``
    keeps the world group in ``_WORLD_GROUP``, and expert / tensor-parallel groups in
    dicts; ``deepspeed.comm``'s backend keeps a list), for the same reason as
    :func:`_release_detectron2_groups`. A no-op when DeepSpeed was not imported."""
    groups = sys.modules.get("deepspeed.utils.groups")
    for name, value in list(vars(groups).items()) if groups is not None else []:
        if isinstance(value, dist.ProcessGroup):
            setattr(groups, name, None)
        elif isinstance(value, dict) and any(isinstance(v, dist.ProcessGroup)
                                             for v in value.values()):
            value.clear()
    backend = getattr(sys.modules.get("deepspeed.comm.comm"), "cdb", None)
    if backend is not None:
        if isinstance(getattr(backend, "process_groups", None), list):
            backend.process_groups.clear()
        if isinstance(getattr(backend, "world_group", None), dist.ProcessGroup):
            backend.world_group = None


def shutdown_distributed() -> None:
    """Destroy the default process group after releasing every module-level reference to a
    group (ours and detectron2's), so that no group is left for interpreter shutdown to
    destroy. A no-op without a process group. Use it instead of
    ``torch.distributed.destroy_process_group``."""
    if not dist.is_initialized():
        return
    collectives.release_gloo_group()
    _release_detectron2_groups()
    _release_deepspeed_groups()
    dist.destroy_process_group()


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
