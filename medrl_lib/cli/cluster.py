"""The cluster commands of ``medrl``: ``runs`` (the study's run list and each run's state), ``run`` (train and
evaluate runs of it, each under its lock) and ``submit`` (every run not stored as SLURM job arrays, then the book
job), and the check ``medrl book --no-train`` makes before its first notebook."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from medrl_lib.cli.args import hub_environment, parse_overrides, positive, store_arguments, store_overrides


def resolve_as_run_nodes(profile_name: str, overrides: dict, log=print) -> str | None:
    """Where the runs of a profile that trains on GPU nodes (hub models downloaded there: the paper profile) are
    listed on a machine without GPUs (a login node, the book job), resolve the engines as on those nodes
    (:data:`medrl_lib.training.engines.MACHINE_ENV`, ``gpus=<num_processes>``), so that the keys match theirs. Returns the
    setting in force for such a profile (None for profiles that train where they are listed: cpu, smoke, rehearsal)."""
    from medrl_lib.config import load_profile
    from medrl_lib.training.engines import MACHINE_ENV, gpu_count
    from medrl_lib.ops.preflight import needs_hub

    p = load_profile(profile_name, overrides)
    if p.model.kind != "hub" or not needs_hub(p):
        return None
    if os.environ.get(MACHINE_ENV) or gpu_count() > 0:
        return os.environ.get(MACHINE_ENV)
    os.environ[MACHINE_ENV] = f"gpus={p.num_processes}"
    log(f"(no GPU here: run keys resolved as on the GPU nodes that train them, {MACHINE_ENV}=gpus={p.num_processes})")
    return os.environ[MACHINE_ENV]


def worker_orders(run_ids: list[str], jobs: int) -> list[list[str]]:
    """The run ids each of ``jobs`` workers goes through: all of them, worker k starting k/jobs of the way in (so
    that they start on different runs and meet late; a run another worker holds is passed over, ``--no-wait``).

    >>> worker_orders(["a", "b", "c", "d"], 2)
    [['a', 'b', 'c', 'd'], ['c', 'd', 'a', 'b']]
    """
    starts = [k * len(run_ids) // jobs for k in range(jobs)]
    return [run_ids[s:] + run_ids[:s] for s in starts]


def train_side_by_side(profile_name: str, overrides: dict, jobs: int, log_dir: Path, log=print) -> int:
    """Train the study's runs the store lacks in ``jobs`` processes side by side (``medrl run --no-wait``, each run
    under its lock, :func:`worker_orders`), each with ``cores // jobs`` threads, before the notebooks load them (the
    shared start models are built first, here, with every core):
    on a CPU the tiny models keep one thread busy more than two. A run's threads are stored with it
    (provenance). Returns 1 when a run failed (its error on stderr, its log named), else 0."""
    import json
    import re
    import subprocess
    import threading

    from medrl_lib.ops.runlist import study_runs, with_states

    todo = [r.run_id for r in with_states(study_runs(profile_name, overrides)) if r.state["state"] != "stored"]
    if not todo:
        return 0
    from medrl_lib.config import load_profile
    from medrl_lib.training.standins import ensure_start_model

    # the shared start models first, with every core (a stand-in is trained once, one step after another)
    ensure_start_model(load_profile(profile_name, overrides), "instruct")
    threads = max(1, (os.cpu_count() or 1) // jobs)
    log(f"training {len(todo)} run(s) in {jobs} processes side by side, {threads} thread(s) each "
        f"(logs: {log_dir}/runs-<k>.log) ...")
    log_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    done: list[str] = []
    failed: list[str] = []
    lock = threading.Lock()

    def follow(k: int, proc) -> None:
        with open(log_dir / f"runs-{k}.log", "w", encoding="utf-8") as out:
            for line in proc.stdout:
                out.write(line)
                out.flush()
                m = re.match(r"(\S+/\S+/seed\d+): (trained and evaluated|evaluated) in (\d+) s", line)
                with lock:
                    if m:
                        done.append(m.group(1))
                        log(f"      {m.group(1)}: {m.group(2)} in {m.group(3)} s ({len(done)}/{len(todo)})")
                    elif line.startswith("medrl run: "):
                        failed.append(line.strip())
                        log(f"      {line.strip()}")

    procs, readers = [], []
    for k, order in enumerate(worker_orders(todo, jobs)):
        proc = subprocess.Popen([sys.executable, "-m", "medrl_lib.cli.main", "run", "--profile", profile_name,
                                 "--overrides", json.dumps(overrides), "--no-wait", *order], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
        procs.append(proc)
        readers.append(threading.Thread(target=follow, args=(k, proc), daemon=True))
        readers[-1].start()
    for proc, reader in zip(procs, readers):
        proc.wait()
        reader.join()
    return 1 if failed or any(p.returncode for p in procs) else 0


def not_stored(profile_name: str, overrides: dict) -> str:
    """The study's runs the store does not hold, as the lines ``medrl book --no-train`` stops with ('' if none)."""
    from medrl_lib.ops.runlist import study_runs, with_states

    runs = [r for r in with_states(study_runs(profile_name, overrides)) if r.state["state"] != "stored"]
    if not runs:
        return ""
    lines = [f"medrl book --no-train: {len(runs)} run(s) of the {profile_name} study are not in the results store; "
             "nothing was rendered:"]
    lines += [f"  {r.run_id}  {r.state['state']}" + (f": {r.state.get('error')} (log: {r.state.get('log')})"
                                                    if r.state["state"] == "failed" else "") for r in runs]
    lines.append(f"  train them here: medrl run --profile {profile_name} " + " ".join(r.run_id for r in runs[:3])
                 + (" ..." if len(runs) > 3 else ""))
    lines.append(f"  or on a cluster: medrl submit --profile {profile_name} --scheduler slurm")
    return "\n".join(lines)


def cmd_runs(args) -> int:
    """Print the study's run list with each run's state in the results store."""
    import json

    from medrl_lib.ops.runlist import format_runs, skipped_runs, study_runs, with_states

    overrides = store_overrides(args)
    resolve_as_run_nodes(args.profile, overrides, log=lambda m: print(m, file=sys.stderr))
    runs = with_states(study_runs(args.profile, overrides))
    if args.json:
        for r in runs:
            print(json.dumps(r.row()))
        return 0
    print(format_runs(runs))
    for row, why in skipped_runs(args.profile, overrides):
        print(f"not applicable: {row} ({why})")
    return 0


def cmd_run(args) -> int:
    """Train and evaluate the named runs (or load them), one after another, each under its lock."""
    from medrl_lib.common.locks import FolderHeld, describe
    from medrl_lib.ops.runlist import execute, select, skipped_runs, study_runs

    overrides = store_overrides(args)
    os.environ.update(hub_environment(args.profile, overrides))
    runs = select(study_runs(args.profile, overrides), args.run_ids, skipped_runs(args.profile, overrides))
    failed = 0
    for run in runs:
        t0 = time.time()
        try:
            result = execute(args.profile, run, overrides, wait=not args.no_wait)
        except FolderHeld as exc:
            print(f"{run.run_id}: held by {describe(exc.who)}; not waiting (--no-wait)", flush=True)
            continue
        except Exception as exc:  # the run's failed.json and train.log hold the rest
            failed += 1
            print(f"medrl run: {run.run_id} failed: {type(exc).__name__}: {exc}".splitlines()[0]
                  + f" (log: {run.path / 'train.log'})", file=sys.stderr, flush=True)
            continue
        done = "evaluated" if run.method == "zero-shot" else "trained and evaluated"
        how = "loaded from the store" if result.reused else f"{done} in {time.time() - t0:.0f} s"
        print(f"{run.run_id}: {how}, accuracy {result.metrics['eval/accuracy/all']:.1f}% ({result.path})",
              flush=True)
    return 1 if failed else 0


def cmd_submit(args) -> int:
    """Write the study's batch scripts and submit them (or, with ``--dry-run``, print them)."""
    from medrl_lib.ops import scheduler
    from medrl_lib.ops.runlist import select, skipped_runs, study_runs, with_states

    overrides = store_overrides(args)
    machine = resolve_as_run_nodes(args.profile, overrides)
    runs = with_states(study_runs(args.profile, overrides))
    if args.run_ids:
        runs = select(runs, args.run_ids, skipped_runs(args.profile, overrides))
    todo = [r for r in runs if r.state["state"] != "stored"]
    from medrl_lib.config import load_profile

    profile = load_profile(args.profile, overrides)
    results_dir = Path(profile.results_dir).resolve()
    setup = list(args.setup or [])
    if args.setup_file:
        setup += Path(args.setup_file).read_text().splitlines()
    opts = scheduler.SlurmOptions(max_parallel=args.max_parallel, partition=args.partition, account=args.account,
                                  time=args.time, book_time=args.book_time, cpus_per_gpu=args.cpus_per_gpu,
                                  cpus=args.cpus, setup=setup, extra=list(args.sbatch or []))
    scripts = scheduler.run_scripts(args.profile, todo, results_dir, opts, parse_overrides(args.overrides),
                                    args.cache_dir and str(Path(args.cache_dir).resolve()))
    if not args.no_book:
        scripts.append(scheduler.book_script(args.profile, results_dir, Path(args.book_dir).resolve()
                                             if args.book_dir else None, opts, len(todo), machine,
                                             parse_overrides(args.overrides),
                                             args.cache_dir and str(Path(args.cache_dir).resolve())))
    folder = results_dir / args.profile / "slurm"
    paths = scheduler.write_scripts(folder, scripts)
    print(f"{len(runs) - len(todo)} of {len(runs)} runs stored; {len(todo)} to run, in "
          f"{sum(bool(s.runs) for s in scripts)} job array(s); scripts in {folder}", flush=True)
    if args.dry_run:
        for path, script in zip(paths, scripts):
            print(f"\n===== {path} =====\n{script.text}")
        print("submit them by hand (the book job after every array):")
        for line in scheduler.submit_commands(folder, scripts):
            print(f"  {line}")
        return 0
    ids = []
    try:
        for path, script in zip(paths, scripts):
            if script.runs:
                ids.append(scheduler.sbatch(path))
                print(f"submitted {path.name}: job {ids[-1]} ({len(script.runs)} runs)", flush=True)
            else:
                extra = [f"--dependency=afterany:{':'.join(ids)}"] if ids else []
                job = scheduler.sbatch(path, *extra)
                print(f"submitted {path.name}: job {job} (after {', '.join(ids) or 'nothing'})", flush=True)
    except RuntimeError as exc:  # sbatch refused a script: say which, and what was submitted before it
        print(f"medrl submit: {exc}" + (f" (already submitted: jobs {', '.join(ids)})" if ids else ""),
              file=sys.stderr)
        return 1
    return 0


def add_cluster_commands(sub) -> None:
    """Add ``runs``, ``run`` and ``submit`` to the ``medrl`` parser's subcommands."""
    rs = sub.add_parser("runs", help="the study's runs and their state in the results store")
    store_arguments(rs)
    rs.add_argument("--json", action="store_true", help="one JSON object per run")
    rs.set_defaults(func=cmd_runs)
    ru = sub.add_parser("run", help="train and evaluate runs of the study (ids from medrl runs), each under its lock")
    store_arguments(ru)
    ru.add_argument("run_ids", nargs="+", metavar="RUN_ID", help="group/arm/seedK, as medrl runs lists them")
    ru.add_argument("--no-wait", action="store_true", help="where another process holds a run, say who and go on")
    ru.set_defaults(func=cmd_run)
    su = sub.add_parser("submit", help="submit every run not stored to a scheduler, then the book")
    store_arguments(su)
    su.add_argument("run_ids", nargs="*", metavar="RUN_ID", help="only these runs (default: every run not stored)")
    su.add_argument("--scheduler", choices=["slurm"], default="slurm")
    su.add_argument("--book-dir", help="book sources the book job executes into and builds (default: book/)")
    su.add_argument("--no-book", action="store_true", help="submit the runs only, no book job")
    su.add_argument("--max-parallel", type=positive, help="tasks of one array running at once (--array=...%%K)")
    su.add_argument("--partition")
    su.add_argument("--account")
    su.add_argument("--time", help="time limit of a run's job, e.g. 24:00:00 (default: the partition's)")
    su.add_argument("--book-time", help="time limit of the book job")
    su.add_argument("--cpus-per-gpu", type=positive, default=8, help="CPU cores per GPU of a GPU run (default 8)")
    su.add_argument("--cpus", type=positive, help="CPU cores of a run of a tiny profile (default: its processes)")
    su.add_argument("--setup", action="append", metavar="LINE", help="a site line run first in every job, e.g. "
                    "'module load cuda/12.4' (repeatable)")
    su.add_argument("--setup-file", help="a file of such lines")
    su.add_argument("--sbatch", action="append", metavar="OPTION", help="a further #SBATCH option, e.g. "
                    "--sbatch=--qos=normal (repeatable)")
    su.add_argument("--dry-run", action="store_true", help="write and print the scripts and the sbatch commands; "
                    "submit nothing")
    su.set_defaults(func=cmd_submit)
