"""A real one-node SLURM cluster for the tests: Debian's ``slurm-wlm`` and ``munge`` (``make slurm`` installs them),
``slurmctld`` and ``slurmd`` started with a configuration written to a temporary folder, stopped after.

:func:`start` returns a :class:`Cluster` whose ``env`` (``SLURM_CONF``) the client commands (``sbatch``, ``squeue``,
``scontrol``) and ``medrl submit`` need; :func:`unavailable` says why no cluster can run here (no binaries, not root),
for ``pytest.skip``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol")
#: The configuration's file name: it marks the test cluster's daemons (``pkill -f``), and no other.
CONF_NAME = "medrl-test-slurm.conf"


def unavailable() -> str | None:
    """Why a one-node cluster cannot start here, or None."""
    missing = [d for d in DAEMONS if not shutil.which(d) and not Path(f"/usr/sbin/{d}").exists()]
    if missing:
        return f"SLURM is not installed ({', '.join(missing)} missing): make slurm installs slurm-wlm and munge (root)"
    if os.geteuid() != 0:
        return "the one-node SLURM cluster runs its daemons as root (SlurmUser=root): not root here"
    return None


def _exe(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


@dataclass
class Cluster:
    """A running one-node cluster."""

    root: Path
    env: dict
    pids: list

    def run(self, *cmd: str, check: bool = True) -> str:
        return subprocess.run(cmd, env=self.env, capture_output=True, text=True, check=check, timeout=60).stdout

    def queue(self) -> list[str]:
        """Lines ``<jobid> <state> <name>`` of the jobs in the queue (array tasks one per line)."""
        out = self.run("squeue", "--noheader", "--array", "--format=%i %T %j")
        return [line.strip() for line in out.splitlines() if line.strip()]

    def wait_drained(self, timeout: float = 900.0, poll: float = 2.0, on_poll=None) -> float:
        """Seconds until the queue is empty (a TimeoutError with the queue after ``timeout``)."""
        t0 = time.time()
        while True:
            lines = self.queue()
            if on_poll is not None:
                on_poll(lines)
            if not lines:
                return time.time() - t0
            if time.time() - t0 > timeout:
                raise TimeoutError(f"the SLURM queue did not drain in {timeout:.0f} s: {lines}")
            time.sleep(poll)

    def stop(self) -> None:
        for name in ("slurmd", "slurmctld"):
            pidfile = self.root / f"{name}.pid"
            if pidfile.exists():
                try:
                    os.kill(int(pidfile.read_text().strip()), 15)
                except (ProcessLookupError, ValueError):
                    pass
        time.sleep(1)


def _memory_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024 - 1024
    return 4096


def start(root: Path, cpus: int | None = None) -> Cluster:
    """Write ``slurm.conf`` into ``root``, start munged (if not running), slurmctld and slurmd; wait until the node
    is idle."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for sub in ("spool", "state", "log"):
        (root / sub).mkdir(exist_ok=True)
    host = socket.gethostname().split(".")[0]
    cpus = cpus or os.cpu_count() or 1
    conf = root / CONF_NAME
    # daemons of an earlier test session that did not stop (it crashed): they would hold the ports
    subprocess.run(["pkill", "-f", CONF_NAME], capture_output=True)
    time.sleep(0.5)
    conf.write_text("\n".join([
        "ClusterName=medrltest", f"SlurmctldHost={host}", "SlurmUser=root", "SlurmdUser=root",
        "AuthType=auth/munge", "CryptoType=crypto/munge", "MpiDefault=none",
        "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none", "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core", "SchedulerType=sched/backfill", "SchedulerParameters=sched_interval=1",
        "JobRequeue=1", "ReturnToService=2", "MaxArraySize=1001", "KillWait=5", "MinJobAge=30",
        "SlurmctldTimeout=30", "SlurmdTimeout=30", "InactiveLimit=0",
        f"StateSaveLocation={root / 'state'}", f"SlurmdSpoolDir={root / 'spool'}",
        f"SlurmctldPidFile={root / 'slurmctld.pid'}", f"SlurmdPidFile={root / 'slurmd.pid'}",
        f"SlurmctldLogFile={root / 'log' / 'slurmctld.log'}", f"SlurmdLogFile={root / 'log' / 'slurmd.log'}",
        "SlurmctldPort=16817", "SlurmdPort=16818",
        "AccountingStorageType=accounting_storage/none", "JobAcctGatherType=jobacct_gather/none",
        f"NodeName={host} CPUs={cpus} RealMemory={_memory_mb()} State=UNKNOWN",
        f"PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP", ""]))
    env = {**os.environ, "SLURM_CONF": str(conf)}
    if subprocess.run(["pgrep", "-x", "munged"], capture_output=True).returncode != 0:
        if not Path("/etc/munge/munge.key").exists():
            subprocess.run([_exe("mungekey"), "-c"], check=True, capture_output=True)
            shutil.chown("/etc/munge/munge.key", "munge", "munge")
        Path("/run/munge").mkdir(parents=True, exist_ok=True)
        shutil.chown("/run/munge", "munge", "munge")
        subprocess.run(["runuser", "-u", "munge", "--", _exe("munged")], check=True, capture_output=True)
    subprocess.run([_exe("slurmctld"), "-f", str(conf)], env=env, check=True, capture_output=True)
    subprocess.run([_exe("slurmd"), "-f", str(conf)], env=env, check=True, capture_output=True)
    cluster = Cluster(root, env, [])
    t0 = time.time()
    while time.time() - t0 < 60:
        state = subprocess.run(["sinfo", "--noheader", "--format=%T"], env=env, capture_output=True, text=True)
        if state.returncode == 0 and state.stdout.strip() in ("idle", "mixed", "allocated"):
            return cluster
        time.sleep(1)
    cluster.stop()
    log = (root / "log" / "slurmctld.log").read_text()[-2000:] if (root / "log" / "slurmctld.log").exists() else ""
    raise RuntimeError(f"the one-node SLURM cluster did not come up in 60 s: {log}")
