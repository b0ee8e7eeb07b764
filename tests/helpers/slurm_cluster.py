"""A REAL two-node SLURM cluster on localhost, for tests of the sbatch scripts.

Debian's ``slurmctld slurmd slurm-client`` (22.05) are installed with apt when ``sbatch``
is missing. ``running_cluster(workdir)`` writes a private ``slurm.conf`` (two NodeNames on
this host with distinct ports, ``auth/none``, linuxproc process tracking, job completion
records in a text file so that ``sacct -c`` shows final states), starts ``slurmctld`` and
``slurmd -N n1`` / ``slurmd -N n2`` in the foreground as child processes, waits until both
nodes are idle and stops the daemons by PID afterwards. Start-up takes about a second.
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from mona_scale.launch import find_free_port

__all__ = ["SlurmCluster", "install_slurm", "running_cluster"]

NODES = ("n1", "n2")
PACKAGES = ["slurmctld", "slurmd", "slurm-client", "munge"]
FINAL_STATES = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY",
                "BOOT_FAIL", "DEADLINE", "PREEMPTED"}

CONF = """\
ClusterName=monatest
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/none
CredType=cred/none
# a requeued job may start again cred_expire + 1 s after it ended (default 120 s)
AuthInfo=cred_expire=5
StateSaveLocation={dir}/state
SlurmdSpoolDir={dir}/spool/%n
SlurmctldPidFile={dir}/slurmctld.pid
SlurmdPidFile={dir}/slurmd-%n.pid
SlurmctldLogFile={dir}/log/slurmctld.log
SlurmdLogFile={dir}/log/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc={dir}/jobcomp.txt
MpiDefault=none
MailProg=/bin/true
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1,bf_interval=1
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
JobRequeue=1
ReturnToService=2
KillWait=10
MinJobAge=600
{nodes}
PartitionName=debug Nodes={node_list} Default=YES MaxTime=INFINITE State=UP
"""
NODE = "NodeName={name} NodeHostname={host} NodeAddr=127.0.0.1 Port={port} CPUs=2 State=UNKNOWN"


def install_slurm() -> str | None:
    """Install Debian's SLURM packages when ``sbatch`` is missing.

    Returns:
        None when SLURM is usable, else why not (a reason to skip).
    """
    if shutil.which("sbatch") and shutil.which("slurmctld") and shutil.which("slurmd"):
        return None
    if not shutil.which("apt-get"):
        return "SLURM is not installed and there is no apt-get to install it"
    if os.geteuid() != 0:
        return "SLURM is not installed and installing it needs root"
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", *PACKAGES]):
        result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        if result.returncode != 0:
            return f"could not install SLURM ({' '.join(cmd)}): {result.stderr[-500:]}"
    return None


@dataclass
class SlurmCluster:
    """Clients for a running test cluster (every command gets its ``SLURM_CONF``)."""

    dir: Path
    env: dict

    def run(self, *cmd: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
        kwargs.setdefault("env", self.env)
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=60, **kwargs)
        if check and result.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed: {result.stderr}")
        return result

    def sbatch(self, *args: str, env: dict | None = None, cwd: str | None = None) -> str:
        """Submit; returns the job id."""
        out = self.run("sbatch", "--parsable", *args, env=dict(self.env, **(env or {})),
                       cwd=cwd).stdout
        return out.strip().split(";")[0]

    def job(self, job_id: str) -> dict[str, str]:
        """``scontrol show job`` as a dict (empty once the controller forgot the job)."""
        result = self.run("scontrol", "-o", "show", "job", job_id, check=False)
        return dict(re.findall(r"(\w+)=(\S*)", result.stdout)) if result.returncode == 0 else {}

    def records(self, job_id: str) -> list[str]:
        """The job's states in the job completion log, oldest first (``sacct -c``)."""
        out = self.run("sacct", "-c", "-n", "-P", "-o", "JobID,State", "-j", job_id,
                       check=False).stdout
        return [line.split("|")[1] for line in out.splitlines() if line.count("|") >= 1]

    def wait(self, job_id: str, timeout: float = 300, poll: float = 0.5) -> dict[str, str]:
        """Wait until the job reached a final state; returns its ``scontrol`` record."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            info = self.job(job_id)
            if info.get("JobState") in FINAL_STATES:
                return info
            time.sleep(poll)
        self.run("scancel", job_id, check=False)
        raise TimeoutError(f"job {job_id} did not finish within {timeout} s: {self.job(job_id)}")

    def nodes_idle(self) -> bool:
        out = self.run("sinfo", "-h", "-N", "-o", "%N %T", check=False).stdout.split()
        return out[1::2] == ["idle"] * len(NODES)


@contextlib.contextmanager
def running_cluster(workdir: Path, start_timeout: float = 30):
    """Start slurmctld and two slurmds with a private config; yields a :class:`SlurmCluster`.

    The daemons run in the foreground as children of this process and are terminated by
    PID when the context exits.
    """
    workdir = Path(workdir)
    for sub in ("state", "log", *(f"spool/{n}" for n in NODES)):
        (workdir / sub).mkdir(parents=True, exist_ok=True)
    host = os.uname().nodename
    nodes = "\n".join(NODE.format(name=n, host=host, port=find_free_port()) for n in NODES)
    conf = workdir / "slurm.conf"
    conf.write_text(CONF.format(dir=workdir, ctld_port=find_free_port(), nodes=nodes,
                                node_list=",".join(NODES)))
    env = dict(os.environ, SLURM_CONF=str(conf))
    for key in [k for k in env if k.startswith(("SLURM_", "SBATCH_", "SRUN_"))]:
        if key != "SLURM_CONF":  # a test run inside a SLURM job must not leak into ours
            del env[key]
    daemons = []
    cluster = SlurmCluster(workdir, env)

    def start(*cmd: str) -> None:
        log = open(workdir / "log" / f"{cmd[0]}{'-' + cmd[-1] if '-N' in cmd else ''}.out",
                   "w")
        daemons.append(subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL))
        log.close()

    try:
        start("slurmctld", "-D", "-i")
        for n in NODES:
            start("slurmd", "-D", "-N", n)
        deadline = time.monotonic() + start_timeout
        while not cluster.nodes_idle():
            dead = [d.args for d in daemons if d.poll() is not None]
            if dead or time.monotonic() > deadline:
                logs = "".join(p.read_text()[-2000:] for p in (workdir / "log").iterdir())
                raise RuntimeError(f"SLURM test cluster did not start (exited: {dead}):\n{logs}")
            time.sleep(0.1)
        yield cluster
    finally:
        if daemons and daemons[0].poll() is None:  # no training left running without us
            cluster.run("scancel", f"--user={os.getuid()}", check=False)
            deadline = time.monotonic() + 20
            while cluster.run("squeue", "-h", check=False).stdout.strip():
                if time.monotonic() > deadline:
                    break
                time.sleep(0.2)
        for daemon in daemons:
            daemon.terminate()
        for daemon in daemons:
            try:
                daemon.wait(timeout=10)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()
