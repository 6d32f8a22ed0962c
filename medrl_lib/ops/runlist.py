"""The study's run list: every run the book's notebooks read, as units of work outside any notebook.

Each run has an id, ``<group>/<arm>/seed<k>`` (its folder in the results store under ``<results_dir>/<profile>/``),
its key (the hash of its resolved config, the same the notebooks compute), the GPUs and processes it needs, and a
state in the store (:func:`medrl_lib.experiments.results.run_state`). Runs that two arms share (E3's +SA baseline reading E2's
+SA runs where the profile has no ``length_rewards`` section) appear once. The list is:

* every arm of :data:`medrl_lib.experiments.study.ARMS` (through :func:`~medrl_lib.experiments.study.stored_arm`) for every seed;
* the zero-shot evaluations the chapters show: the instruct start with the reasoning prompt
  (``instruct-zero-shot``) and with the plain prompt (``zero-shot-instruct``) in both groups, and the base start
  with the reasoning prompt in Zhu's group (``base-zero-shot``, the calibration table of the summary);
* but no arm that is not applicable on the profile (a base arm where ``model.base`` is empty: :func:`skipped_runs`).

``medrl runs`` prints it; ``medrl run RUN_ID`` trains and evaluates runs of it (:func:`execute`), each under its
lock; ``medrl submit`` hands the missing ones to a scheduler (:mod:`medrl_lib.ops.scheduler`).

>>> [r.run_id for r in study_runs("smoke")][:2]
['zhu/grpo-base/seed0', 'zhu/grpo-instruct/seed0']
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from medrl_lib.config import ConfigError, load_profile
from medrl_lib.experiments import study
from medrl_lib.experiments.study import ZERO_SHOT

#: What ``medrl runs`` shows for each state.
STATES = ("stored", "running", "partial", "failed", "missing")


@dataclass
class StudyRun:
    """One run of the study, before or after it ran."""

    run_id: str
    """``<group>/<arm>/seed<k>``: its folder under ``<results_dir>/<profile>/``"""
    group: str
    arm: str
    seed: int
    method: str
    """grpo, sft, lora, dpo or zero-shot"""
    key: str
    """hash of its resolved config (the notebooks compute the same)"""
    path: Path
    processes: int
    """processes it trains in (accelerate + DeepSpeed when more than one)"""
    gpus: int
    """GPUs it holds (0 for the tiny profiles, which train on CPU cores)"""
    gpu_hours: float | None = None
    """estimated GPU-hours (:mod:`medrl_lib.ops.estimate`; None where the profile trains no GPU)"""
    state: dict = field(default_factory=dict)
    """:func:`medrl_lib.experiments.results.run_state` (filled by :func:`with_states`)"""

    def row(self) -> dict:
        """The run as one flat row (``medrl runs --json``)."""
        holder = self.state.get("holder") or {}
        return {"run_id": self.run_id, "group": self.group, "arm": self.arm, "seed": self.seed,
                "method": self.method, "key": self.key, "processes": self.processes, "gpus": self.gpus,
                "gpu_hours": self.gpu_hours, "state": self.state.get("state"), "path": str(self.path),
                "host": holder.get("host"), "slurm_job": holder.get("slurm_job"),
                "error": self.state.get("error"), "log": self.state.get("log")}


def _gpus(p) -> int:
    """GPUs a run of the resolved profile ``p`` holds: its processes on hub profiles, none on the tiny ones."""
    return p.num_processes if p.model.kind == "hub" else 0


def _hours(profile: str, overrides: dict | None) -> dict:
    """(group, arm) -> estimated GPU-hours of one run, for hub profiles (empty where no estimate can be made)."""
    if load_profile(profile, overrides).model.kind != "hub":
        return {}
    from medrl_lib.ops.estimate import estimate

    try:
        rows = estimate(profile, overrides).rows
    except (KeyError, ValueError, ConfigError):
        return {}
    return {(r.group, r.arm): r.hours_per_run * r.gpus for r in rows}


def study_runs(profile: str, overrides: dict | None = None, seeds: list[int] | None = None) -> list[StudyRun]:
    """Every run of ``profile``'s study (``seeds``: default the profile's), in the order the book reads them."""
    from medrl_lib.training.engines import eval_engine
    from medrl_lib.experiments.runs import grpo_plan, sft_plan, zero_shot_plan

    base = load_profile(profile, overrides)
    seeds = list(seeds or base.seeds)
    hours = _hours(profile, overrides)
    out, seen = [], set()
    for arm, (method, group, _) in study.ARMS.items():
        arm = study.stored_arm(profile, arm, overrides)
        if arm in seen or study.not_applicable(profile, arm, overrides):
            continue
        seen.add(arm)
        p = study.arm_profile(profile, arm, overrides)
        for seed in seeds:
            planned = (grpo_plan(p, group, arm, seed) if method == "grpo" else sft_plan(p, group, arm, seed, method))
            out.append(StudyRun(f"{group}/{arm}/seed{seed}", group, arm, seed, method, planned.key, planned.path,
                                p.num_processes, _gpus(p), hours.get((group, arm))))
    for group, arm, which, prompt in ZERO_SHOT:
        if study.not_applicable(profile, arm, overrides):
            continue
        p = study.group_profile(profile, group, overrides)
        planned = zero_shot_plan(p, group, arm, which, prompt_mode=prompt)
        seed = int(planned.path.name[len("seed"):])
        gpus = _gpus(p) if _gpus(p) and eval_engine(p, gpus=p.num_processes) == "sharded" else min(_gpus(p), 1)
        out.append(StudyRun(f"{group}/{arm}/seed{seed}", group, arm, seed, "zero-shot", planned.key, planned.path,
                            1, gpus, hours.get((group, arm))))
    return out


def skipped_runs(profile: str, overrides: dict | None = None) -> list[tuple[str, str]]:
    """``(group/arm, reason)`` of the study's arms and zero-shot rows that are not applicable on ``profile``
    (:func:`medrl_lib.experiments.study.not_applicable`): left out of :func:`study_runs`, listed by ``medrl runs``."""
    rows = [(f"{group}/{arm}", study.not_applicable(profile, arm, overrides))
            for arm, (_, group, _) in study.ARMS.items()]
    rows += [(f"{group}/{arm}", study.not_applicable(profile, arm, overrides)) for group, arm, _, _ in ZERO_SHOT]
    return [(row, why) for row, why in rows if why]


def with_states(runs: list[StudyRun]) -> list[StudyRun]:
    """``runs`` with the state of each in the results store."""
    from medrl_lib.experiments.results import run_state

    for run in runs:
        run.state = run_state(run.path, run.key)
    return runs


def select(runs: list[StudyRun], run_ids: list[str], skipped: list[tuple[str, str]] = ()) -> list[StudyRun]:
    """The runs named by ``run_ids`` (``group/arm/seedK``), in that order; an unknown id is a ConfigError naming the
    closest one, or saying why it is not applicable (``skipped``: :func:`skipped_runs`)."""
    from medrl_lib.common.strict import suggestion

    by_id = {r.run_id: r for r in runs}
    unknown = [i for i in run_ids if i not in by_id]
    why = dict(skipped).get(unknown[0].rsplit("/", 1)[0]) if unknown else None
    if why:
        raise ConfigError(f"run {unknown[0]!r} is not applicable on this profile: {why}")
    if unknown:
        raise ConfigError(f"unknown run {unknown[0]!r}{suggestion(unknown[0], by_id)}; `medrl runs` lists the "
                          f"{len(by_id)} runs of this study")
    return [by_id[i] for i in run_ids]


def execute(profile: str, run: StudyRun, overrides: dict | None = None, *, wait: bool = True):
    """Train and evaluate ``run`` (or load it) with the code and key the notebooks use, under its lock
    (:func:`medrl_lib.experiments.results.cached_run`; ``wait=False`` raises :class:`medrl_lib.common.locks.FolderHeld` where another
    process holds it). Returns the :class:`~medrl_lib.experiments.results.Run`."""
    if run.method == "zero-shot":
        from medrl_lib.experiments.runs import zero_shot_arm

        p, _, which, prompt = study.zero_shot_row(profile, run.group, run.arm, overrides)
        result = zero_shot_arm(p, run.group, run.arm, which, prompt_mode=prompt, wait=wait,
                               seed=run.seed if p.standins.per_seed else None)
    else:
        p = study.arm_profile(profile, run.arm, overrides)
        result = study.run_arm(profile, run.arm, run.seed, overrides, wait=wait)
    if result.path != run.path or result.metrics.get("config_key") != run.key:
        raise RuntimeError(f"{run.run_id}: stored at {result.path} with key {result.metrics.get('config_key')}, "
                           f"planned at {run.path} with key {run.key}")  # the list and the notebooks disagree
    if p.panel.benchmarks:  # the Transfer chapter's scores of this run, so that the book job only renders
        if run.method == "zero-shot":
            study.panel_zero_shot(profile, run.group, run.arm, overrides, wait=wait)
        else:
            study.panel_arm(profile, run.arm, run.seed, overrides, wait=wait)
    return result


def summary(runs: list[StudyRun]) -> str:
    """``15 runs: 3 stored, 1 running, 11 missing``."""
    counts = {s: sum(r.state.get("state") == s for r in runs) for s in STATES}
    return f"{len(runs)} runs: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n)


def format_runs(runs: list[StudyRun]) -> str:
    """The run list as a fixed-width table, with the holder of running runs and the error of failed ones."""
    from medrl_lib.common.console import text_table
    from medrl_lib.common.locks import describe

    cells = [["run", "method", "key", "proc", "GPUs", "GPU-h", "state", "detail"]]
    for r in runs:
        state = r.state.get("state", "?")
        detail = (describe(r.state.get("holder")) if state == "running"
                  else f"{r.state.get('error', '')} (log: {r.state.get('log', '')})" if state == "failed"
                  else "resumes from its checkpoints" if state == "partial" else "")
        cells.append([r.run_id, r.method, r.key, str(r.processes), str(r.gpus),
                      "-" if r.gpu_hours is None else f"{r.gpu_hours:,.1f}", state, detail])
    return "\n".join([*text_table(cells, right=[False, False, False, True, True, True, False, False]), "",
                      summary(runs)])
