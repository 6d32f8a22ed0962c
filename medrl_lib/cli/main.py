"""The ``medrl`` command: execute the notebooks with papermill and build the Jupyter Book.

    medrl book [--profile cpu|smoke|overnight|rehearsal|paper] [--only 06_ood_generalization] [--force] [...]
    medrl check [--profile paper]         preflight: models, data, GPUs, disk and packages, one verdict a line
    medrl launch [--profile paper]        dry run: every resolved setting, the launch command, the disk a run needs
    medrl estimate [--profile paper]      GPU-hours, wall time and disk of every arm before GPUs are booked
    medrl protocol [--profile P] [--json] what every arm really trains and is scored with, beside each paper's
    medrl models [--profile cpu]          build (or find) the start models of a profile (each seed's if per_seed)
    medrl tensorboard [--profile cpu]     TensorBoard over every run's event files (``<run>/tensorboard``)
    medrl runs [--profile cpu] [--json]   the study's runs: id, key, GPUs, estimated GPU-hours, state in the store
    medrl run [--profile cpu] RUN_ID...   train and evaluate those runs, each under its lock, outside any notebook
    medrl submit --scheduler slurm [...]  every run not stored as SLURM job arrays, then the book (--dry-run: scripts)

``medrl book`` runs the preflight first and stops with its table when a check fails; ``--no-train`` renders from the
results store and never trains (it stops before the first notebook, naming the runs the store lacks). A profile whose models and
data are all local (cpu, overnight, smoke, rehearsal) runs with ``HF_HUB_OFFLINE=1``; the paper profile may download.

The console shows progress lines only (runs trained or loaded, training steps); everything a notebook printed
goes to ``book/_build/logs/<notebook>.log`` and each run's own output to ``<run>/train.log``. A failing notebook
stops the build with the notebook, the cell and that log file named; the partially executed copy is kept in
``book/chapters/`` for inspection.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from medrl_lib.cli.args import hub_environment, parse_overrides, positive, profile_arguments
from medrl_lib.cli.cluster import add_cluster_commands, not_stored, resolve_as_run_nodes, train_side_by_side

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
BOOK = ROOT / "book"


class BookBuildFailed(RuntimeError):
    """Sphinx (through jupyter-book) reported an error or, with warnings as errors, a warning."""


class NotebookFailed(RuntimeError):
    """A notebook raised: the message names the notebook, the cell and the error."""


def select_notebooks(only: list[str] | None) -> list[Path]:
    """The notebooks to run, in name order; ``only`` filters by stem (unknown names are an error)."""
    all_nbs = sorted(NOTEBOOKS.glob("[0-9]*.ipynb"))
    if not only:
        return all_nbs
    stems = {p.stem: p for p in all_nbs}
    missing = [o for o in only if o not in stems]
    if missing:
        raise SystemExit(f"medrl: unknown notebook {missing[0]!r}; notebooks: {', '.join(stems)}")
    return [stems[o] for o in only]


class _LogSink:
    """A file-like sink for the kernel's stdout or stderr: everything goes to the notebook's log file."""

    def __init__(self, path: Path):
        self.path = path

    def write(self, text: str) -> int:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(text)
        return len(text)

    def flush(self) -> None:
        pass


class _Follow:
    """Print the progress lines (:func:`medrl_lib.common.console.progress`) that appear in a log file, while it grows."""

    def __init__(self, path: Path, log=print, interval: float = 0.5):
        import threading

        self.path, self.log, self.interval, self.offset = path, log, interval, 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def poll(self) -> None:
        from medrl_lib.common.console import progress_lines

        try:
            with open(self.path, encoding="utf-8", errors="replace") as f:
                f.seek(self.offset)
                text = f.read()
        except FileNotFoundError:
            return
        complete = text[: text.rfind("\n") + 1]
        self.offset += len(complete.encode("utf-8"))
        for line in progress_lines(complete):
            self.log(f"      {line}")

    def _run(self) -> None:
        while not self.stop.wait(self.interval):
            self.poll()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        self.poll()


def notebook_log(book_dir: Path, nb: Path) -> Path:
    """Where the full output of a notebook's execution goes: ``<book>/_build/logs/<notebook>.log``."""
    return Path(book_dir) / "_build" / "logs" / f"{nb.stem}.log"


def execute(nb: Path, out: Path, parameters: dict, log=print, log_file: Path | None = None) -> float:
    """Run ``nb`` with papermill into ``out``; raise NotebookFailed naming the cell and the log file on error.

    Everything the kernel prints (its own start-up warnings included) goes to ``log_file``; the console shows the
    progress lines only. Returns seconds.
    """
    import contextlib

    import papermill as pm

    from medrl_lib.common.console import LOG_ENV

    out.parent.mkdir(parents=True, exist_ok=True)
    log_file = Path(log_file or notebook_log(out.parent.parent, nb))
    log_file.parent.mkdir(parents=True, exist_ok=True)
    log_file.write_text(f"medrl: executing {nb.name} with parameters {parameters}\n", encoding="utf-8")
    previous = os.environ.get(LOG_ENV)
    os.environ[LOG_ENV] = str(log_file)  # the kernel inherits it (medrl_lib.common.console)
    t0 = time.time()
    sys.stderr.flush()
    saved_stderr = os.dup(2)
    try:
        with open(log_file, "a", encoding="utf-8") as kernel_stderr, _Follow(log_file, log):
            os.dup2(kernel_stderr.fileno(), 2)  # the kernel process writes its start-up warnings to this fd
            try:
                pm.execute_notebook(str(nb), str(out), parameters=parameters, cwd=str(NOTEBOOKS), kernel_name="python3",
                                    progress_bar=False, log_output=False, stdout_file=_LogSink(log_file),
                                    stderr_file=_LogSink(log_file), request_save_on_cell_execute=True)
            finally:
                os.dup2(saved_stderr, 2)
    except pm.PapermillExecutionError as exc:
        raise NotebookFailed(f"{nb.name}: cell {exc.exec_count} (index {exc.cell_index}) failed: {exc.ename}: "
                             f"{exc.evalue}\n  partially executed copy kept at {out}\n  full log: {log_file}") from None
    finally:
        os.close(saved_stderr)
        with contextlib.suppress(KeyError):
            del os.environ[LOG_ENV]
        if previous is not None:
            os.environ[LOG_ENV] = previous
    hide_injected_parameters(out)
    return time.time() - t0


def write_not_applicable(nb: Path, out: Path, profile: str, reason: str) -> None:
    """Write the chapter ``nb`` as a page that is not run: its opening (title and question) and why it does not
    apply on ``profile`` (:func:`medrl_lib.experiments.study.chapter_not_applicable`)."""
    import nbformat

    source = nbformat.read(str(nb), as_version=4)
    opening = next(c for c in source.cells if c.cell_type == "markdown")
    note = nbformat.v4.new_markdown_cell(
        f"```{{note}}\nThis chapter is **not applicable on the `{profile}` profile**: {reason}. Nothing of it was run; "
        "the Protocol chapter lists every arm that is skipped.\n```")
    page = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(opening.source), note],
                                    metadata=source.metadata)
    out.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(page, str(out))


def hide_injected_parameters(path: Path) -> None:
    """Tag papermill's injected-parameters cell ``remove-cell``: like the notebook's own parameters cell, it is
    not shown in the book (the chapter opens with its question)."""
    import nbformat

    nb = nbformat.read(str(path), as_version=4)
    changed = False
    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        if "injected-parameters" in tags and "remove-cell" not in tags:
            cell.metadata["tags"] = [*tags, "remove-cell"]
            changed = True
    if changed:
        nbformat.write(nb, str(path))


def build_book(strict: bool = True, book_dir: Path | None = None) -> Path:
    """Build the Jupyter Book (1.x) from ``book/``, warnings as errors; return the index page."""
    book_dir = Path(book_dir or BOOK)
    exe = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(exe) if exe.exists() else "jupyter-book", "build", str(book_dir), "--quiet"]
    if strict:
        cmd += ["--warningiserror", "--keep-going"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BookBuildFailed(f"the book build failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return book_dir / "_build" / "html" / "index.html"


def preflight(profile_name: str, overrides: dict | None = None, log=print) -> bool:
    """Run the preflight checks of ``profile_name`` and print their table; True when none failed."""
    from medrl_lib.ops.preflight import format_table, passed, run_checks

    checks = run_checks(profile_name, overrides)
    log(format_table(checks))
    return passed(checks)


def cmd_check(args) -> int:
    os.environ.update(hub_environment(args.profile, parse_overrides(args.overrides)))
    return 0 if preflight(args.profile, parse_overrides(args.overrides)) else 1


def cmd_protocol(args) -> int:
    """Print every arm's protocol: one JSON object per arm with ``--json``, else the table beside the papers."""
    import json

    from medrl_lib.experiments.protocol import protocol, protocol_table

    overrides = parse_overrides(args.overrides)
    if args.json:
        for entry in protocol(args.profile, overrides):
            print(json.dumps(entry))
        return 0
    import pandas as pd

    with pd.option_context("display.width", 200, "display.max_rows", None, "display.max_colwidth", 48):
        print(protocol_table(args.profile, overrides).to_string(index=False))
    return 0


def cmd_book(args) -> int:
    overrides = parse_overrides(args.overrides)
    if args.results_dir:
        overrides["results_dir"] = str(Path(args.results_dir).resolve())
    if args.cache_dir:
        overrides["cache_dir"] = str(Path(args.cache_dir).resolve())
    notebooks = select_notebooks(args.only)
    book_dir = Path(args.book_dir).resolve() if args.book_dir else BOOK
    os.environ.update(hub_environment(args.profile, overrides))  # the notebooks' kernels inherit it
    if args.no_train:
        from medrl_lib.experiments.results import NO_TRAIN_ENV

        os.environ[NO_TRAIN_ENV] = "1"  # the kernels inherit it: a run the store lacks raises instead of training
        resolve_as_run_nodes(args.profile, overrides)
        if not args.only:
            missing = not_stored(args.profile, overrides)
            if missing:
                print(missing, file=sys.stderr)
                return 1
    if not args.skip_check and not args.no_train:  # the preflight asks whether runs can train here
        print(f"preflight (profile {args.profile}):", flush=True)
        if not preflight(args.profile, overrides):
            print("medrl: the preflight failed (table above): nothing was run", file=sys.stderr)
            return 2
    from medrl_lib.experiments.study import chapter_not_applicable

    t_all = time.time()
    jobs = args.jobs
    if jobs > 1 and not (args.no_train or args.only or args.force):  # --force: the notebooks retrain, as before
        from medrl_lib.config import load_profile

        if load_profile(args.profile, overrides).model.kind == "hub":
            print("--jobs: hub profiles train on GPUs, one run after another here (side by side: medrl submit)")
        elif train_side_by_side(args.profile, overrides, jobs, book_dir / "_build" / "logs") != 0:
            print("medrl: a run failed (above); nothing was rendered", file=sys.stderr)
            return 1
    for i, nb in enumerate(notebooks, 1):
        print(f"[{i}/{len(notebooks)}] {nb.stem} (profile {args.profile}) ...", flush=True)
        params = {"profile": args.profile, "overrides": overrides, "force": args.force}
        reason = chapter_not_applicable(args.profile, nb.stem, overrides)
        if reason:  # skipped, not failed: its page says why
            write_not_applicable(nb, book_dir / "chapters" / nb.name, args.profile, reason)
            print(f"      not applicable on this profile ({reason}): its page says so", flush=True)
            continue
        try:
            seconds = execute(nb, book_dir / "chapters" / nb.name, params)
        except NotebookFailed as exc:
            print(f"medrl: {exc}", file=sys.stderr)
            return 1
        print(f"      done in {seconds:.0f} s", flush=True)
    if args.no_build:
        return 0
    try:
        index = build_book(book_dir=book_dir)
    except BookBuildFailed as exc:
        print(f"medrl: {exc}", file=sys.stderr)
        return 1
    print(f"book built in {time.time() - t_all:.0f} s: {index}")
    return 0


def cmd_models(args) -> int:
    """Print the start models of a profile, building the missing ones (unless ``--no-build``): the one shared
    draw, or, with ``standins.per_seed``, one line per seed and model (``seed 1 base: <folder>``)."""
    from medrl_lib.config import load_profile
    from medrl_lib.training.standins import ensure_start_model, start_model_folders

    profile = load_profile(args.profile)
    tiny = profile.model.kind != "hub"
    for seed in (profile.seeds if tiny and profile.standins.per_seed else [None]):
        prefix = "" if seed is None else f"seed {seed} "
        for which in ("base", "instruct"):
            if which == "base" and not profile.model.base:
                print(f"{prefix}base: none (model.base is empty: the arms that start from it are not applicable)")
            elif args.no_build and tiny:
                folder = start_model_folders(profile, seed)[which]
                print(f"{prefix}{which}: {folder}{'' if folder.exists() else ' (not built)'}")
            else:
                print(f"{prefix}{which}: {ensure_start_model(profile, which, seed=seed)}")
    return 0


def tensorboard_command(profile_name: str, overrides: dict | None = None, port: int = 6006) -> list[str]:
    """The TensorBoard command over a profile's results store: every run's ``<run>/tensorboard`` event files.

    >>> tensorboard_command("cpu")[1:3]
    ['--logdir', 'results/cpu']
    """
    from medrl_lib.config import load_profile

    profile = load_profile(profile_name, overrides)
    logdir = Path(profile.results_dir) / profile.name
    exe = Path(sys.executable).with_name("tensorboard")
    return [str(exe) if exe.exists() else "tensorboard", "--logdir", str(logdir), "--port", str(port)]


def cmd_tensorboard(args) -> int:
    import shlex

    cmd = tensorboard_command(args.profile, parse_overrides(args.overrides), args.port)
    print("tensorboard:", shlex.join(cmd), flush=True)
    if args.print_only:
        return 0
    return subprocess.call(cmd, cwd=str(ROOT))


def cmd_launch(args) -> int:
    """Resolve every setting of a profile and print it with the multi-process launch command."""
    import json

    import yaml

    from medrl_lib.config import load_profile
    from medrl_lib.training.launch import launch_command
    from medrl_lib.training.standins import ensure_start_model
    from medrl_lib.training.train import grpo_kwargs

    overrides = parse_overrides(args.overrides)
    profile = load_profile(args.profile, overrides)
    print(yaml.safe_dump(json.loads(json.dumps(profile.to_dict())), sort_keys=False))
    policy = ensure_start_model(profile) if profile.model.kind == "hub" else "<tiny model built on demand>"
    kwargs = grpo_kwargs(profile, "results/<run>/checkpoints")
    print("TRL GRPOConfig:", {k: v for k, v in kwargs.items() if k != "output_dir"})
    print("reward functions:", [n for n in profile.grpo.reward_weights])
    print("start policy:", policy)
    cmd = launch_command(args.profile, overrides, str(policy), "results/<run>/checkpoints",
                         profile.num_processes, profile.grpo.bf16)
    import shlex

    print("launch command:", shlex.join(cmd))
    from medrl_lib.ops.preflight import disk_estimate, profile_parameters

    try:
        parameters, source = profile_parameters(profile)
    except (OSError, ValueError) as exc:
        print(f"disk per GRPO run: unknown ({exc})")
    else:
        estimate = disk_estimate(profile, parameters)
        print(f"disk (parameters from {source}):")
        for line in estimate.lines():
            print("  " + line)
    from medrl_lib.ops.estimate import estimate as study_estimate

    try:
        totals = study_estimate(args.profile, overrides).total_lines()
    except (KeyError, ValueError) as exc:  # no figures for the GPU, or an engine this machine cannot resolve
        totals = [f"estimate of the study: unknown ({exc})"]
    for line in totals:
        print(line)
    print(f"  (every arm and assumption: medrl estimate --profile {args.profile})")
    return 0


def cmd_estimate(args) -> int:
    """Print the GPU-hours, wall time and disk of every arm of a profile's study, the totals and the assumptions."""
    from medrl_lib.config import ConfigError
    from medrl_lib.ops.estimate import estimate, format_estimate

    try:
        est = estimate(args.profile, parse_overrides(args.overrides), gpu=args.gpu, vllm=True if args.vllm else None)
    except ConfigError as exc:
        print(f"medrl: {exc}\n  (add --vllm to estimate for a machine that has the vllm package)", file=sys.stderr)
        return 2
    except KeyError as exc:
        print(f"medrl: {exc.args[0]}", file=sys.stderr)
        return 2
    print(format_estimate(est))
    if args.nodes:
        from medrl_lib.ops.estimate import cluster_wall_hours

        print("")
        for nodes in args.nodes:
            hours = cluster_wall_hours(est, nodes, args.gpus_per_node)
            print(f"wall time on {nodes} node(s) of {args.gpus_per_node} {est.gpu}: {hours:,.0f} hours "
                  f"({hours / 24:.1f} days), every run a job of its own (medrl submit)")
    return 0


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    parser = argparse.ArgumentParser(prog="medrl", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("book", help="execute the notebooks with papermill and build the book")
    b.add_argument("--profile", default="cpu", help="smoke, cpu, overnight, rehearsal or paper (default: cpu)")
    b.add_argument("--only", nargs="+", metavar="NOTEBOOK", help="run only these notebooks (by name, no suffix)")
    b.add_argument("--force", action="store_true", help="retrain runs that the results store already holds")
    b.add_argument("--results-dir", help="results store (default: the profile's results_dir)")
    b.add_argument("--cache-dir", help="model cache (default: the profile's cache_dir)")
    b.add_argument("--no-build", action="store_true", help="execute the notebooks but do not build the book")
    b.add_argument("--book-dir", help="book sources to execute into and build (default: book/)")
    b.add_argument("--skip-check", action="store_true", help="do not run the preflight checks first")
    b.add_argument("--no-train", action="store_true", help="render from the results store and never train: stop "
                   "before the first notebook when runs are missing, listing them")
    b.add_argument("--overrides", default="{}", help="JSON object of dotted-key settings applied to every arm, e.g. "
                   """'{"num_processes": 1}' (the rehearsal on one GPU)""")
    b.add_argument("--jobs", type=positive, default=1, help="tiny profiles: train the runs the store lacks in N "
                   "processes side by side (cores/N threads each) before the notebooks load them (default 1: the "
                   "notebooks train them one after another)")
    b.set_defaults(func=cmd_book)
    c = sub.add_parser("check", help="preflight: every model, dataset, GPU, disk and package the study needs")
    profile_arguments(c, "paper")
    c.set_defaults(func=cmd_check)
    pr = sub.add_parser("protocol", help="what every arm trains and is scored with, beside each paper's values")
    pr.add_argument("--json", action="store_true", help="one JSON object per arm")
    profile_arguments(pr, "cpu")
    pr.set_defaults(func=cmd_protocol)
    m = sub.add_parser("models", help="build or find the start models of a profile")
    m.add_argument("--profile", default="cpu")
    m.add_argument("--no-build", action="store_true", help="print the folders without building the missing ones")
    m.set_defaults(func=cmd_models)
    la = sub.add_parser("launch", help="dry run: resolve every setting of a profile and print the launch command")
    profile_arguments(la, "paper")
    la.set_defaults(func=cmd_launch)
    from medrl_lib.ops.estimate import DEFAULT_GPU  # a light module: no training library

    es = sub.add_parser("estimate", help="GPU-hours, wall time and disk of every arm of a profile's study")
    profile_arguments(es, "paper")
    es.add_argument("--gpu", default=DEFAULT_GPU, help=f"GPU of the throughput figures: {DEFAULT_GPU} (default), H100, "
                    "H200 or a name as torch.cuda.get_device_name gives it")
    es.add_argument("--vllm", action="store_true", help="the machine that runs the study has the vllm package "
                    "(default: as this one); the profile's grpo.rollouts / eval.engine still choose "
                    "('auto' then picks vLLM)")
    es.add_argument("--nodes", type=positive, nargs="+", metavar="N", help="also the wall time on N nodes (several: "
                    "one line each), every run a job of its own")
    es.add_argument("--gpus-per-node", type=positive, default=4, help="GPUs of a node for --nodes (default 4)")
    es.set_defaults(func=cmd_estimate)
    add_cluster_commands(sub)
    tb = sub.add_parser("tensorboard", help="training curves of every run of a profile (live while runs train)")
    profile_arguments(tb, "cpu")
    tb.add_argument("--port", type=int, default=6006)
    tb.add_argument("--print-only", action="store_true", help="print the command, do not start TensorBoard")
    tb.set_defaults(func=cmd_tensorboard)
    args = parser.parse_args(argv)
    from medrl_lib.training.engines import MACHINE_ENV
    from medrl_lib.experiments.results import NO_TRAIN_ENV
    from medrl_lib.common.strict import ConfigError

    saved = {name: os.environ.get(name) for name in (MACHINE_ENV, NO_TRAIN_ENV)}  # a command sets them for itself
    try:
        return args.func(args)
    except (argparse.ArgumentTypeError, ConfigError) as exc:  # bad input: one line naming it, no traceback
        print(f"medrl {args.command}: {exc}", file=sys.stderr)
        return 2
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


if __name__ == "__main__":
    sys.exit(main())
