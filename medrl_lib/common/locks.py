"""Locks on shared folders (a run of the results store, a start model of the cache), through ``filelock``.

A lock is an OS file lock (``flock``; on NFS, Linux turns it into a POSIX lock that every client of the server sees)
on ``<folder's parent>/.<folder's name>.lock``, beside the folder rather than in it, so that clearing the folder
never drops the lock. The OS releases it when its holder dies, however it dies (a crash, ``kill -9``, a node that
SLURM preempts or that loses its lease on the file server): a lock whose holder died is free, and the next
process takes it over and resumes from what the folder holds.

Who holds a lock is written beside it (``.<name>.holder.json``: host, process id, SLURM job, since when), for
``medrl runs`` to show and for a waiting process to name. That file is only a label: whether a lock is held is
always asked of the OS (:func:`is_held`).

>>> import tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp()) / "seed0"
>>> with folder_lock(folder) as lock:
...     is_held(folder), holder(folder)["pid"] == os.getpid()
(True, True)
>>> is_held(folder), holder(folder)
(False, None)
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from pathlib import Path
from typing import Callable, Iterator


class FolderHeld(RuntimeError):
    """Another process holds the lock of a folder (raised where the caller asked not to wait)."""

    def __init__(self, folder: Path, who: dict | None):
        self.folder, self.who = Path(folder), who
        super().__init__(f"{folder} is being worked on by {describe(who)}")


def lock_path(folder: str | Path) -> Path:
    """``<parent>/.<name>.lock``: the lock file of ``folder``."""
    folder = Path(folder)
    return folder.parent / f".{folder.name}.lock"


def holder_path(folder: str | Path) -> Path:
    """``<parent>/.<name>.holder.json``: who holds the lock of ``folder``."""
    folder = Path(folder)
    return folder.parent / f".{folder.name}.holder.json"


def this_process() -> dict:
    """Host, process id, SLURM job (``<array job>_<task>`` or the job id) and the time, as the holder file keeps them."""
    job = os.environ.get("SLURM_JOB_ID")
    if os.environ.get("SLURM_ARRAY_JOB_ID"):
        job = f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ.get('SLURM_ARRAY_TASK_ID', '')}"
    return {"host": socket.gethostname(), "pid": os.getpid(), "slurm_job": job, "since": time.time()}


def describe(who: dict | None) -> str:
    """``host pid N (SLURM job J) since HH:MM`` for a holder file's content.

    >>> describe({"host": "node3", "pid": 42, "slurm_job": "7_1", "since": 0})[:30]
    'node3 pid 42 (SLURM job 7_1) s'
    """
    if not who:
        return "another process"
    job = f" (SLURM job {who['slurm_job']})" if who.get("slurm_job") else ""
    since = time.strftime("%Y-%m-%d %H:%M", time.localtime(who.get("since", 0)))
    return f"{who.get('host', '?')} pid {who.get('pid', '?')}{job} since {since}"


def holder(folder: str | Path) -> dict | None:
    """Who holds the lock of ``folder`` (the holder file), or None when nobody does."""
    if not is_held(folder):
        return None
    try:
        return json.loads(holder_path(folder).read_text())
    except (OSError, ValueError):
        return {}


def is_held(folder: str | Path) -> bool:
    """Whether a process (this one included, through another lock object) holds the lock of ``folder`` now."""
    from filelock import FileLock, Timeout

    path = lock_path(folder)
    if not path.exists():
        return False
    probe = FileLock(str(path), timeout=0, thread_local=False)
    try:
        probe.acquire()
    except Timeout:
        return True
    probe.release()
    return False


@contextlib.contextmanager
def folder_lock(folder: str | Path, *, wait: bool = True, on_wait: Callable[[dict | None], None] | None = None,
                poll: float = 5.0) -> Iterator[dict | None]:
    """Hold the lock of ``folder`` for the block; yields the holder file left by a previous holder that died
    (None when the lock was released cleanly), so that the caller can say it takes over.

    Held by someone else: with ``wait``, ``on_wait(holder)`` is called once and the lock is awaited; without,
    :class:`FolderHeld` is raised."""
    from filelock import FileLock, Timeout

    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(lock_path(folder)), timeout=0, thread_local=False)
    try:
        lock.acquire()
    except Timeout:
        try:
            who = json.loads(holder_path(folder).read_text())
        except (OSError, ValueError):
            who = None
        if not wait:
            raise FolderHeld(folder, who) from None
        if on_wait is not None:
            on_wait(who)
        lock.acquire(timeout=-1, poll_interval=poll)
    try:
        try:
            previous = json.loads(holder_path(folder).read_text())  # left by a holder that died
        except (OSError, ValueError):
            previous = None
        tmp = holder_path(folder).with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(this_process()))
        os.replace(tmp, holder_path(folder))  # whole or absent, never half
        yield previous
    finally:
        with contextlib.suppress(OSError):
            holder_path(folder).unlink()
        lock.release()
