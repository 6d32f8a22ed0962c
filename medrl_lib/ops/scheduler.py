"""The study on a SLURM cluster: every run not stored as a job of a job array, then one job that builds the book.

``medrl submit --profile P --scheduler slurm`` writes plain ``sbatch`` scripts (one job array per resource shape:
Zhu's 4-GPU runs, MedVLM-R1's 2-GPU runs, the 1-GPU evaluations; on the tiny profiles the CPU cores a run trains
with) into ``<results_dir>/<profile>/slurm/`` and submits them, then the book job with ``--dependency=afterany`` on
every array, so that it runs when the last run has ended however it ended (a run that failed is then named by
``medrl book --no-train``, which stops before the first notebook). ``--dry-run`` writes and prints the scripts and the
``sbatch`` commands without submitting: a user can read, edit (site lines such as ``module load`` come from
``--setup``) and submit them by hand.

Each array task runs ``medrl run <run id>`` (:mod:`medrl_lib.ops.runlist`): the run's lock makes a task that finds its
run being trained elsewhere wait for it, and a requeued task resume it. Requeue: ``--requeue`` (preemption puts the
task back in the queue) and ``--signal=B:USR1@<s>``, on which the script requeues its own task before the time limit
kills it (``scontrol requeue``); either way the run resumes from its last checkpoint. Plain scripts were chosen over
submitit: its jobs are pickled callables behind generated scripts, which a user cannot read or edit.

>>> shape_name(4, 4), shape_name(4, 1), shape_name(0, 2)
('gpu4', 'gpu4-1proc', 'cpu2')
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from medrl_lib.config import ConfigError

ROOT = Path(__file__).resolve().parents[2]
#: Seconds before the time limit at which SLURM signals a task to requeue itself.
REQUEUE_SIGNAL_S = 300


@dataclass
class SlurmOptions:
    """What ``medrl submit`` puts in the scripts besides the runs."""

    max_parallel: int | None = None
    """tasks of one array running at once (``--array=...%K``); None: as many as the cluster allows"""
    partition: str | None = None
    """``--partition``"""
    account: str | None = None
    """``--account``"""
    time: str | None = None
    """``--time`` of a run's job (e.g. ``24:00:00``); None: the partition's default"""
    book_time: str | None = None
    """``--time`` of the book job"""
    cpus_per_gpu: int = 8
    """CPU cores per GPU of a GPU run"""
    cpus: int | None = None
    """CPU cores of a run of a tiny profile (default: its processes)"""
    setup: list[str] = field(default_factory=list)
    """site lines run before medrl in every job (``module load cuda``, ``source venv/bin/activate`` ...)"""
    extra: list[str] = field(default_factory=list)
    """further ``#SBATCH`` options, e.g. ``--qos=normal``"""


@dataclass
class Script:
    """One batch script: its name, its text, and the runs it holds (none for the book job)."""

    name: str
    text: str
    runs: list = field(default_factory=list)


def shape_name(gpus: int, processes: int) -> str:
    """The name of a resource shape: ``gpu<N>`` (``gpu<N>-<P>proc`` where its P processes are not one per GPU: an
    evaluation sharded over the GPUs by one process) or, on CPU, ``cpu<processes>``."""
    if not gpus:
        return f"cpu{processes}"
    return f"gpu{gpus}" if processes == gpus else f"gpu{gpus}-{processes}proc"


def _medrl(profile: str, results_dir: Path, overrides: dict | None,
           cache_dir: str | None) -> tuple[list[str], list[str]]:
    """The medrl command of this environment with the options every job shares."""
    import json

    cmd = [sys.executable, "-m", "medrl_lib.cli.main"]
    opts = ["--profile", profile, "--results-dir", str(results_dir)]
    if cache_dir:
        opts += ["--cache-dir", str(cache_dir)]
    if overrides:
        opts += ["--overrides", json.dumps(overrides, sort_keys=True)]
    return cmd, opts


def _header(name: str, comment: str, opts: SlurmOptions, output: str, time: str | None, cpus: int,
            gpus: int) -> list[str]:
    """The shebang, a comment saying what the script is, and the ``#SBATCH`` lines of one job."""
    lines = ["#!/bin/bash", comment, f"#SBATCH --job-name={name}", "#SBATCH --nodes=1", "#SBATCH --ntasks=1",
             f"#SBATCH --cpus-per-task={cpus}"]
    if gpus:
        lines.append(f"#SBATCH --gres=gpu:{gpus}")
    for flag, value in (("partition", opts.partition), ("account", opts.account), ("time", time)):
        if value:
            lines.append(f"#SBATCH --{flag}={value}")
    lines += [f"#SBATCH {e}" for e in opts.extra]
    lines.append(f"#SBATCH --output={output}")
    return lines


def run_scripts(profile: str, runs: list, results_dir: Path, opts: SlurmOptions, overrides: dict | None = None,
                cache_dir: str | None = None, logs: Path | None = None) -> list[Script]:
    """One job-array script per resource shape of ``runs`` (:class:`medrl_lib.ops.runlist.StudyRun`)."""
    if not runs:
        return []
    logs = Path(logs or results_dir / profile / "slurm" / "logs")
    cmd, common = _medrl(profile, results_dir, overrides, cache_dir)
    shapes: dict[tuple[int, int], list] = {}
    for run in runs:
        shapes.setdefault((run.gpus, run.processes), []).append(run)
    scripts = []
    for (gpus, processes), members in sorted(shapes.items(), reverse=True):
        shape = shape_name(gpus, processes)
        name = f"medrl-{profile}-{shape}"
        cpus = gpus * opts.cpus_per_gpu if gpus else (opts.cpus or processes)
        last = len(members) - 1
        throttle = f"%{opts.max_parallel}" if opts.max_parallel else ""
        what = f"{gpus} GPU(s)" if gpus else f"{cpus} CPU core(s)"
        comment = (f"# medrl submit: {len(members)} run(s) of the {profile} study, each on {what} in {processes} "
                   "process(es); each task trains one run (medrl run). Edit and submit with sbatch.")
        lines = [*_header(name, comment, opts, f"{logs}/%x-%A_%a.out", opts.time, cpus, gpus),
                 f"#SBATCH --array=0-{last}{throttle}",
                 "#SBATCH --requeue", f"#SBATCH --signal=B:USR1@{REQUEUE_SIGNAL_S}", "#SBATCH --open-mode=append",
                 "", *opts.setup, f"cd {shlex.quote(str(ROOT))}",
                 "# torch's threads: the task's cores, not the node's (tasks that share a node would oversubscribe it)",
                 'export OMP_NUM_THREADS="${SLURM_CPUS_PER_TASK:-1}"', "",
                 "RUNS=(", *(f"  {r.run_id}" for r in members), ")",
                 'RUN="${RUNS[$SLURM_ARRAY_TASK_ID]}"', 'TASK="${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}"', "",
                 "# near the time limit: put this task back in the queue; the run resumes from its checkpoints",
                 """trap 'echo "medrl: requeueing $TASK ($RUN)"; scontrol requeue "$TASK"' USR1""",
                 'echo "medrl: $RUN on $(hostname) (job $TASK, restart ${SLURM_RESTART_COUNT:-0})"',
                 f"{shlex.join(cmd)} run {shlex.join(common)} \"$RUN\" &",
                 "child=$!",
                 'wait "$child"; status=$?',
                 'while kill -0 "$child" 2>/dev/null; do wait "$child"; status=$?; done  # a signal woke the wait',
                 "exit $status", ""]
        scripts.append(Script(f"{shape}.sbatch", "\n".join(lines), members))
    return scripts


def book_script(profile: str, results_dir: Path, book_dir: Path | None, opts: SlurmOptions, n_runs: int,
                machine: str | None, overrides: dict | None = None, cache_dir: str | None = None,
                logs: Path | None = None) -> Script:
    """The job that builds the book from the store once every array has ended (``medrl book --no-train``)."""
    logs = Path(logs or results_dir / profile / "slurm" / "logs")
    cmd, common = _medrl(profile, results_dir, overrides, cache_dir)
    book = ["--book-dir", str(book_dir)] if book_dir else []
    comment = (f"# medrl submit: the {profile} book, rendered from the results store once its {n_runs} run(s) have "
               "ended (submitted with --dependency=afterany on their arrays); it trains nothing and names any run "
               "that is missing.")
    lines = [*_header(f"medrl-{profile}-book", comment, opts, f"{logs}/%x-%j.out", opts.book_time, 2, 0), "",
             *opts.setup, f"cd {shlex.quote(str(ROOT))}"]
    if machine:
        lines += ["# the runs' keys hold the engines of the GPU nodes that trained them",
                  f"export MEDRL_MACHINE={machine}"]
    lines += [shlex.join([*cmd, "book", *common, *book, "--no-train"]), ""]
    return Script("book.sbatch", "\n".join(lines))


def sbatch(script: Path, *extra: str, env: dict | None = None) -> str:
    """Submit ``script`` with ``sbatch --parsable``; returns the job id (a RuntimeError with sbatch's message)."""
    try:
        proc = subprocess.run(["sbatch", "--parsable", *extra, str(script)], capture_output=True, text=True,
                              env=env, timeout=120)
    except FileNotFoundError:
        raise ConfigError("sbatch is not on PATH: run medrl submit on a SLURM login node (or use --dry-run)") from None
    if proc.returncode != 0:
        raise RuntimeError(f"sbatch {script.name} failed: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout.strip().split(";")[0]


def write_scripts(folder: Path, scripts: list[Script]) -> list[Path]:
    """Write the scripts into ``folder`` (atomically, executable) and make its ``logs/``; returns their paths."""
    from medrl_lib.common.files import write_text

    (folder / "logs").mkdir(parents=True, exist_ok=True)  # sbatch fails a job whose --output folder is missing
    paths = []
    for s in scripts:
        write_text(folder / s.name, s.text)
        (folder / s.name).chmod(0o755)
        paths.append(folder / s.name)
    return paths


def submit_commands(folder: Path, scripts: list[Script]) -> list[str]:
    """The shell lines that submit ``scripts`` by hand, the book job depending on every array."""
    lines, names = [], []
    for i, s in enumerate(scripts):
        if s.runs:
            lines.append(f"j{i}=$(sbatch --parsable {shlex.quote(str(folder / s.name))})")
            names.append(f"$j{i}")
        else:
            dep = f"--dependency=afterany:{':'.join(names)} " if names else ""
            lines.append(f"sbatch {dep}{shlex.quote(str(folder / s.name))}")
    return lines
