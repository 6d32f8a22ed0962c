"""Results store: one folder per run, keyed by the hash of its resolved config, written atomically.

Layout: ``<results_dir>/<profile>/<group>/<arm>/seed<k>/`` (group: ``zhu`` for E1-E5, ``ood`` for E6) holding ``config.json`` (the resolved config
and its hash), ``provenance.json`` (git commit, package versions, host), ``train_ids.json`` / ``test_ids.json``,
``records.jsonl`` (one line per test item), ``training_log.jsonl``, ``train.log`` (everything the run printed) and,
last, ``metrics.json``. A run is
complete only when ``metrics.json`` exists and names the same config hash as ``config.json``; anything else
(an interrupted run, a changed config) is trained again. Every file is written to a temporary name in the same
folder and renamed, so a reader never sees half a file.

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> write_json(d / "x.json", {"a": 1}); read_json(d / "x.json")
{'a': 1}
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from medrl_lib.common.console import captured
from medrl_lib.common.files import config_key, read_json, read_jsonl, write_json, write_jsonl


#: The vector extensions that change floating-point results of CPU kernels (x86 and Arm names, as /proc/cpuinfo
#: spells them): two machines that differ here may train different start models from the same seeds.
VECTOR_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512_bf16", "avx512_fp16", "avx512_vnni",
                "avx_vnni", "amx_tile", "amx_bf16", "neon", "asimd", "sve", "sve2")


def cpu_info(cpuinfo: str | None = None) -> dict:
    r"""The CPU's model name and vector extensions (from ``/proc/cpuinfo``, or ``platform`` where it is missing)
    and the threads torch computes with.

    >>> info = cpu_info("model name\t: Example CPU\nflags\t\t: fpu sse4_2 avx avx2 fma\n")
    >>> info["cpu_model"], info["vector_extensions"]
    ('Example CPU', ['sse4_2', 'avx', 'avx2', 'fma'])
    """
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            cpuinfo = ""
    model, flags = None, set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "hardware", "cpu model") and model is None:
            model = value.strip()
        elif key in ("flags", "features") and not flags:
            flags = set(value.split())
    import torch

    return {"cpu_model": model or platform.processor() or platform.machine(),
            "vector_extensions": [f for f in VECTOR_FLAGS if f in flags],
            "torch_threads": torch.get_num_threads()}


def provenance() -> dict:
    """Git commit, package versions and host of the current process (CPU model, vector extensions, threads)."""
    import importlib.metadata as md

    def version(pkg: str) -> str | None:
        try:
            return md.version(pkg)
        except md.PackageNotFoundError:
            return None

    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                timeout=10).stdout.strip() or None
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                                    capture_output=True, text=True, timeout=10).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        commit, dirty = None, None
    import torch

    return {
        "git_commit": commit,
        "git_dirty": dirty,
        "versions": {p: version(p) for p in ["medrl_lib", "torch", "transformers", "trl", "datasets", "peft",
                                             "accelerate", "deepspeed"]},
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        **cpu_info(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


@dataclass
class Run:
    """A completed run loaded from its folder."""

    path: Path
    """the run folder"""
    config: dict
    """the resolved config"""
    metrics: dict
    """the metrics (``eval/accuracy/<modality>``, timings, ...)"""
    log_history: list[dict] = field(default_factory=list)
    """training log, one dict per logging step"""
    records: list[dict] = field(default_factory=list)
    """per-item evaluation records"""
    reused: bool = False
    """loaded from the store instead of being computed in this call"""


def run_dir(results_dir: str | Path, profile: str, group: str, arm: str, seed: int) -> Path:
    """``<results_dir>/<profile>/<group>/<arm>/seed<seed>``."""
    return Path(results_dir) / profile / group / arm / f"seed{seed}"


def load_run(path: str | Path, key: str | None = None) -> Run | None:
    """The run at ``path`` if complete (and, when ``key`` is given, made from that config), else None."""
    path = Path(path)
    try:
        cfg = read_json(path / "config.json")
        metrics = read_json(path / "metrics.json")
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    if metrics.get("config_key") != cfg.get("key") or (key is not None and cfg.get("key") != key):
        return None
    log = read_jsonl(path / "training_log.jsonl") if (path / "training_log.jsonl").exists() else []
    records = read_jsonl(path / "records.jsonl") if (path / "records.jsonl").exists() else []
    return Run(path=path, config=cfg["config"], metrics=metrics, log_history=log, records=records)


#: Set (to anything) in a process that must render from the store and never train (``medrl book --no-train``):
#: :func:`cached_run` then raises :class:`RunNotStored` where it would train.
NO_TRAIN_ENV = "MEDRL_NO_TRAIN"


class RunNotStored(RuntimeError):
    """A run the results store does not hold, asked for where nothing may train (:data:`NO_TRAIN_ENV`)."""


def failure_path(path: str | Path) -> Path:
    """``<run>/failed.json``: the error of the last attempt at a run that raised (removed when it starts again)."""
    return Path(path) / "failed.json"


def cached_run(path: str | Path, config: dict, work: Callable[[Path], dict], *, force: bool = False,
               wait: bool = True) -> Run:
    """Load the run at ``path`` made from ``config``, or call ``work(path)`` and store what it returns.

    The work happens under the run's lock (:func:`medrl_lib.common.locks.folder_lock`): a second process asking for the
    same run, on this machine or another that shares the store, waits for the first and then loads what it stored
    (with ``wait=False`` it raises :class:`medrl_lib.common.locks.FolderHeld` instead). A folder left by an interrupted run
    of the same config is kept, so that ``work`` can resume from its checkpoints (a lock whose holder died is free:
    the next process takes it over); a folder of another config, or any folder with ``force``, is cleared first.
    A ``work`` that raises leaves ``failed.json`` (its error and the log's path) for ``medrl runs`` to show.

    ``work`` returns a dict with ``metrics`` (dict) and optionally ``log_history``, ``records``,
    ``train_ids`` and ``test_ids``; they are written here, ``metrics.json`` last.
    """
    from medrl_lib.common.console import progress
    from medrl_lib.common.locks import describe, folder_lock

    path = Path(path)
    key = config_key(config)
    if not force:
        run = load_run(path, key)
        if run is not None:
            run.reused = True
            return run
    if os.environ.get(NO_TRAIN_ENV):
        raise RunNotStored(f"the results store holds no complete run at {path} for this config (key {key}), and "
                           "nothing trains here (--no-train): run it with `medrl run` or `medrl submit`")

    def waiting(who):
        progress(f"{path}: waiting for {describe(who)}, who is training this run")

    with folder_lock(path, wait=wait, on_wait=waiting) as died:
        if not force:
            run = load_run(path, key)  # stored by the process we waited for
            if run is not None:
                run.reused = True
                return run
        try:
            previous_key = read_json(path / "config.json").get("key")
        except (FileNotFoundError, json.JSONDecodeError):
            previous_key = None
        if path.exists() and (force or previous_key != key):
            shutil.rmtree(path)  # another config's (or a forced) run: nothing in it may be resumed
        elif died:
            progress(f"{path}: taking over from {describe(died)}, who no longer holds the lock: resuming")
        path.mkdir(parents=True, exist_ok=True)
        for stale in (path / "metrics.json", failure_path(path)):
            if stale.exists():
                stale.unlink()  # an interrupted run of this config must not read as complete (or failed)
        write_json(path / "config.json", {"key": key, "config": config})
        write_json(path / "provenance.json", provenance())
        t0 = time.time()
        try:
            with captured(path / "train.log"):  # step logs, library warnings and bars: the run's file, not the book
                out = work(path)
        except Exception as exc:
            from medrl_lib.common.locks import this_process

            write_json(failure_path(path), {"error": f"{type(exc).__name__}: {exc}".splitlines()[0][:500],
                                            "log": str(path / "train.log"), **this_process()})
            raise
        wall = time.time() - t0
        for name in ("train_ids", "test_ids"):
            if name in out:
                write_json(path / f"{name}.json", list(out[name]))
        write_jsonl(path / "training_log.jsonl", out.get("log_history", []))
        write_jsonl(path / "records.jsonl", out.get("records", []))
        metrics = dict(out["metrics"])
        metrics.update({"config_key": key, "time/wall_s": wall})
        write_json(path / "metrics.json", metrics)
    return Run(path=path, config=config, metrics=metrics, log_history=out.get("log_history", []),
               records=out.get("records", []), reused=False)


def run_state(path: str | Path, key: str) -> dict:
    """What the store holds of the run at ``path`` with ``key``: ``state`` is 'stored' (complete), 'running' (its
    lock is held; ``holder``), 'failed' (its last attempt raised; ``error``, ``log``), 'partial' (started with this
    config, interrupted: the next attempt resumes) or 'missing' (nothing, or a run of another config)."""
    from medrl_lib.common.locks import holder

    path = Path(path)
    if load_run(path, key) is not None:
        return {"state": "stored"}
    who = holder(path)
    if who is not None:
        return {"state": "running", "holder": who}
    try:
        started = read_json(path / "config.json").get("key") == key
    except (FileNotFoundError, json.JSONDecodeError):
        started = False
    if not started:
        return {"state": "missing"}
    try:
        return {"state": "failed", **read_json(failure_path(path))}
    except (FileNotFoundError, json.JSONDecodeError):
        return {"state": "partial"}


def runs_frame(results_dir: str | Path, profile: str, group: str | None = None):
    """All complete runs under ``results_dir/profile[/group]`` as a tidy DataFrame of their metrics."""
    import pandas as pd

    root = Path(results_dir) / profile
    rows = []
    pattern = f"{group}/*/seed*" if group else "*/*/seed*"
    for p in sorted(root.glob(pattern)):
        run = load_run(p)
        if run is None:
            continue
        grp, arm, seed = p.parts[-3], p.parts[-2], int(p.parts[-1][4:])
        rows.append({"group": grp, "arm": arm, "seed": seed, **run.metrics})
    return pd.DataFrame(rows)


def reproducibility_table(profile):
    """One row per stored run of the profile (a DataFrame): commit, versions, seed, wall times, item counts."""
    import pandas as pd

    from medrl_lib.config import resolve_path

    root = resolve_path(profile.results_dir) / profile.name
    rows = []
    for path in sorted(root.glob("*/*/seed*")):
        run = load_run(path)
        if run is None:
            continue
        try:
            prov = json.loads((path / "provenance.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            prov = {}
        versions = prov.get("versions", {})
        rows.append({"group": path.parts[-3], "arm": path.parts[-2], "seed": int(path.name[4:]),
                     "config key": run.metrics.get("config_key"),
                     "train s": round(run.metrics.get("time/train_s", 0.0), 1),
                     "eval s": round(run.metrics.get("time/eval_s", 0.0), 1),
                     "test items": len(run.records), "commit": (prov.get("git_commit") or "")[:10],
                     "torch": versions.get("torch"), "trl": versions.get("trl"),
                     "transformers": versions.get("transformers"), "host": prov.get("platform", "")[:30],
                     "cpus": prov.get("cpu_count"), "threads": prov.get("torch_threads")})
    return pd.DataFrame(rows)


def machines_table(profile):
    """A DataFrame of the machines that made the profile's stored runs: CPU model, vector extensions and torch
    threads (which change floating-point results, hence the start models and every run), GPU, and how many runs
    each made."""
    import pandas as pd

    from medrl_lib.config import resolve_path

    seen: dict[tuple, int] = {}
    for path in sorted((resolve_path(profile.results_dir) / profile.name).glob("*/*/seed*/provenance.json")):
        try:
            prov = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        key = (prov.get("cpu_model") or "not recorded", " ".join(prov.get("vector_extensions") or []) or "not recorded",
               prov.get("torch_threads"), prov.get("cpu_count"), prov.get("cuda") or "none")
        seen[key] = seen.get(key, 0) + 1
    cols = ["CPU", "vector extensions", "torch threads", "cores", "GPU", "runs"]
    return pd.DataFrame([[*k, n] for k, n in seen.items()], columns=cols)
