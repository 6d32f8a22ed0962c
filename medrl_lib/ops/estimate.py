"""The cost of a study before GPUs are booked: GPU-hours, wall time and disk per arm and for the whole study.

``medrl estimate --profile paper [--gpu H100] [--vllm]`` prints the table; ``medrl launch`` prints its totals and
the summary chapter shows it for the paper profile (:func:`show_estimate`).

Every distinct stored run is counted once per seed of the profile (an arm that reads another arm's runs,
:func:`medrl_lib.experiments.study.stored_arm`, is not counted again), and the four zero-shot evaluations
(:data:`medrl_lib.experiments.study.ZERO_SHOT`: the instruct start with both prompts in both results groups, the base start in
Zhu's) once each. With
``L_c`` the assumed mean completion (:data:`COMPLETION_FRACTION` of ``grpo.max_completion_length``) and ``L_p`` the
assumed mean prompt (:data:`PROMPT_FRACTION` of ``grpo.max_prompt_length``), per GPU:

* a GRPO step: ``c x L_c / generation + c x (L_p + L_c) x num_iterations / grpo`` seconds, ``c`` the completions a
  GPU samples per step (:func:`medrl_lib.training.budget.grpo_prompts_per_step` x G / ``num_processes``);
* a supervised step: ``i x (L_p + target) x SUPERVISED_COST[method] / supervised`` seconds, ``i`` the items a GPU
  takes per step (:func:`medrl_lib.training.budget.supervised_items_per_step` / ``num_processes``);
* an evaluation: ``test items x answer tokens / evaluation / GPUs of the engine`` seconds.

The figures (tokens per second per GPU) come from :data:`THROUGHPUT_FILE`, for the GPU asked and the engines that
:func:`medrl_lib.training.engines.rollout_engine` ('hf' or 'vllm') and :func:`~medrl_lib.training.engines.eval_engine` resolve; each
names its source: a measurement of ``benchmarks/gpu_grpo_step.py --record`` (:func:`record_throughput`) or a
default with its reasoning. Disk: a GRPO run's checkpoints from :func:`medrl_lib.ops.preflight.disk_estimate`, and the
final model every GRPO run keeps (``grpo.keep_final_model``).

>>> grpo_step_seconds(completions=16, completion_tokens=350, prompt_tokens=512, generation=100.0, update=5000.0)
(56.0, 2.7584)
>>> gpu_key("NVIDIA A100-SXM4-80GB"), gpu_key("NVIDIA H100 80GB HBM3"), gpu_key("h200")
('A100-80GB', 'H100', 'H200')
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

#: The throughput figures: GPU -> engine ('hf', 'vllm': generation and evaluation; 'train': updates) -> figure.
THROUGHPUT_FILE = Path(__file__).resolve().parents[1] / "data" / "throughput.json"
#: The GPUs both papers trained on.
DEFAULT_GPU = "A100-80GB"
#: Assumed mean completion (GRPO rollouts) and reasoning-prompt answer (evaluation), as a share of its cap.
COMPLETION_FRACTION = 0.5
#: Assumed mean prompt (image and question tokens) as a share of ``grpo.max_prompt_length``.
PROMPT_FRACTION = 0.5
#: Tokens of an answer to the plain prompt, and of a plain supervised target: a letter and the end of the turn.
PLAIN_ANSWER_TOKENS = 8
#: Cost of a supervised token relative to full SFT's forward and backward pass. LoRA: gradients still flow through
#: every layer (only weight gradients and optimizer states shrink): 1. DPO: two sequences per item (chosen and
#: rejected), each through the policy (forward and backward, 3 units) and the frozen reference (forward, 1): 2 x 4/3.
SUPERVISED_COST = {"sft": 1.0, "lora": 1.0, "dpo": 8 / 3}
GIB = 1024 ** 3

_PARAMETERS: dict[tuple, tuple[int | None, str]] = {}


def gpu_key(name: str) -> str:
    """The key of a GPU in the throughput file from a name such as ``torch.cuda.get_device_name()`` gives."""
    n = name.upper().replace(" ", "").replace("-", "")
    for key in ("H200", "H100"):
        if key in n:
            return key
    if "A100" in n:
        return "A100-80GB" if "80G" in n else "A100-40GB"
    return name


def load_throughput(path: str | Path | None = None) -> dict:
    """The throughput file (default :data:`THROUGHPUT_FILE`)."""
    from medrl_lib.common.files import read_json

    return read_json(Path(path or THROUGHPUT_FILE))


def throughput(table: dict, gpu: str, engine: str, figure: str) -> dict:
    """The entry (value, unit, source ...) of ``figure`` for ``engine`` on ``gpu``; a KeyError names what exists."""
    gpus = table.get("gpus", {})
    key = gpu_key(gpu)
    if key not in gpus:
        raise KeyError(f"no throughput figures for GPU {gpu!r} (known: {', '.join(sorted(gpus))}); measure them with "
                       "benchmarks/gpu_grpo_step.py --record on that GPU")
    try:
        return gpus[key][engine][figure]
    except KeyError:
        raise KeyError(f"no {engine!r} {figure!r} figure for GPU {key}") from None


def record_throughput(gpu: str, engine: str, figure: str, value: float, unit: str, source: str, *,
                      path: str | Path | None = None, **extra: Any) -> dict:
    """Add or replace the entry of ``figure`` for ``engine`` on ``gpu`` (keyed by :func:`gpu_key`) in the throughput
    file, written atomically; ``extra`` (step seconds, peak memory ...) is kept beside it. Returns the entry."""
    from medrl_lib.common.files import read_json, write_json

    path = Path(path or THROUGHPUT_FILE)
    data = read_json(path) if path.exists() else {"gpus": {}}
    entry = {"value": float(value), "unit": unit, "source": source, **extra}
    data.setdefault("gpus", {}).setdefault(gpu_key(gpu), {}).setdefault(engine, {})[figure] = entry
    write_json(path, data)
    return entry


def grpo_step_seconds(*, completions: float, completion_tokens: float, prompt_tokens: float, generation: float,
                      update: float, iterations: int = 1) -> tuple[float, float]:
    """``(generation, update)`` seconds of one GRPO step on one GPU sampling ``completions`` completions, at
    ``generation`` completion tokens/s and ``update`` (prompt + completion) tokens/s."""
    return (completions * completion_tokens / generation,
            completions * (prompt_tokens + completion_tokens) * iterations / update)


@dataclass
class ArmEstimate:
    """The cost of one arm (all its seeds) or of one zero-shot evaluation."""

    arm: str
    label: str
    group: str
    method: str
    runs: int
    steps: int
    """optimizer steps of one run (0: evaluation only)"""
    gpus: int
    """GPUs a run holds"""
    engines: str
    """rollout / evaluation engine"""
    step_seconds: float
    hours_per_run: float
    """wall hours of one run: training and evaluation"""
    wall_hours: float
    gpu_hours: float
    disk_kept_gib: float
    """left on disk by all its runs (the kept final models)"""
    checkpoints_gib: float
    """checkpoints on disk at the peak of one of its runs (deleted when the run ends)"""


@dataclass
class StudyEstimate:
    """Every arm of a profile's study with its cost, and the assumptions behind them."""

    profile: str
    gpu: str
    rows: list[ArmEstimate]
    assumptions: list[str]

    def total(self, name: str) -> float:
        values = [getattr(r, name) for r in self.rows]
        return max(values) if name == "checkpoints_gib" else sum(values)

    def total_lines(self) -> list[str]:
        """The totals in two lines (``medrl launch`` prints them)."""
        wall, kept, ckpt = self.total("wall_hours"), self.total("disk_kept_gib"), self.total("checkpoints_gib")
        return [(f"estimate ({self.profile} profile on {self.gpu}): {self.total('runs'):.0f} runs, "
                 f"{self.total('gpu_hours'):,.0f} GPU-hours, {wall:,.0f} hours of wall time one run after another "
                 f"({wall / 24:.1f} days)"),
                (f"disk: {kept:,.0f} GiB kept (final models) + up to {ckpt:,.0f} GiB of checkpoints while a run "
                 f"trains = {kept + ckpt:,.0f} GiB at the peak")]


def _parameters(p) -> tuple[int | None, str]:
    """Policy parameters of ``p`` and where the count comes from (counted once per policy)."""
    from medrl_lib.ops.preflight import profile_parameters

    key = (p.model.kind, p.model.instruct, repr(p.model.tiny))
    if key not in _PARAMETERS:
        try:
            _PARAMETERS[key] = profile_parameters(p)
        except (OSError, ValueError) as exc:
            _PARAMETERS[key] = (None, str(exc))
    return _PARAMETERS[key]


def estimate(profile_name: str = "paper", overrides: dict | None = None, *, gpu: str = DEFAULT_GPU,
             vllm: bool | None = None, path: str | Path | None = None, completion_fraction: float = COMPLETION_FRACTION,
             prompt_fraction: float = PROMPT_FRACTION) -> StudyEstimate:
    """The cost of ``profile_name``'s study on ``gpu``. ``vllm``: whether the machine that runs it has the vllm
    package (default: whether this one has it); each arm's machine has its ``num_processes`` GPUs."""
    from medrl_lib.training import engines
    from medrl_lib.experiments import study
    from medrl_lib.training.budget import (
        count_test_items,
        grpo_prompts_per_step,
        supervised_items_per_step,
        supervised_steps,
    )
    from medrl_lib.config import load_profile
    from medrl_lib.ops.preflight import WEIGHT_BYTES, disk_estimate

    table = load_throughput(path)
    has_vllm = engines.vllm_installed() if vllm is None else vllm
    used: dict[tuple[str, str], dict] = {}
    completions: set[int] = set()
    answers: set[int] = set()
    notes: list[str] = []

    def rate(engine: str, figure: str) -> float:
        used[(engine, figure)] = throughput(table, gpu, engine, figure)
        return used[(engine, figure)]["value"]

    def evaluation(p, plain: bool) -> tuple[float, str, int]:
        engine = engines.eval_engine(p, vllm=has_vllm, gpus=p.num_processes)
        n = p.num_processes if engine == "sharded" else 1
        tokens = PLAIN_ANSWER_TOKENS if plain else completion_fraction * p.eval.max_new_tokens
        if not plain:
            answers.add(p.eval.max_new_tokens)
        items = count_test_items(p) + len(p.panel.benchmarks) * p.panel.per_benchmark  # the home test, the panel
        return items * tokens / (rate("vllm" if engine == "vllm" else "hf", "evaluation") * n), engine, n

    base = load_profile(profile_name, overrides)
    parameters, counted_from = _parameters(base)
    rows = []
    for arm, (method, group, _) in study.ARMS.items():
        reason = study.not_applicable(profile_name, arm, overrides)
        if reason:
            notes.append(f"{study.LABELS[arm]} ({arm}) is not applicable: {reason}; not counted")
            continue
        stored = study.stored_arm(profile_name, arm, overrides)
        if stored != arm:
            notes.append(f"{study.LABELS[arm]} ({arm}) reads the runs of {study.LABELS[stored]} ({stored}): the "
                         "profile has no length_rewards section; counted once")
            continue
        p = study.arm_profile(profile_name, arm, overrides)
        n, g = p.num_processes, p.grpo
        prompt = prompt_fraction * g.max_prompt_length
        checkpoints = kept = 0.0
        if method == "grpo":
            engine = engines.rollout_engine(p, vllm=has_vllm, gpus=n)
            completions.add(g.max_completion_length)
            steps = g.max_steps
            step_s = sum(grpo_step_seconds(
                completions=grpo_prompts_per_step(p) * g.num_generations / n,
                completion_tokens=completion_fraction * g.max_completion_length, prompt_tokens=prompt,
                generation=rate(engine, "generation"), update=rate("train", "grpo"), iterations=g.num_iterations))
            eval_s, eval_engine, _ = evaluation(p, plain=p.eval.prompt_mode == "plain")
            if parameters:
                disk = disk_estimate(p, parameters)
                checkpoints, kept = disk.checkpoint * disk.checkpoints_at_peak, disk.final_model
        else:
            engine = "-"
            plain = p.sft.target == "plain"
            target = PLAIN_ANSWER_TOKENS if plain else completion_fraction * g.max_completion_length
            steps = supervised_steps(p, method)
            step_s = (supervised_items_per_step(p) / n * (prompt + target) * SUPERVISED_COST[method]
                      / rate("train", "supervised"))
            eval_s, eval_engine, _ = evaluation(p, plain=plain or p.eval.prompt_mode == "plain")
            if parameters and n > 1:  # the trained model is written for this process to evaluate it
                checkpoints = parameters * WEIGHT_BYTES[p.model.dtype]
        hours = (steps * step_s + eval_s) / 3600
        runs = len(p.seeds)
        rows.append(ArmEstimate(arm, study.LABELS[arm], group, method, runs, steps, n, f"{engine}/{eval_engine}",
                                step_s, hours, runs * hours, runs * hours * n, runs * kept / GIB, checkpoints / GIB))
    labels = {"instruct-zero-shot": "start", "zero-shot-instruct": "zero-shot", "base-zero-shot": "base-start"}
    for group, arm, _, prompt in study.ZERO_SHOT:
        if study.not_applicable(profile_name, arm, overrides):
            notes.append(f"the zero-shot row {group}/{arm} is not applicable; not counted")
            continue
        p = load_profile(profile_name, {**study.group_overrides(profile_name, group, overrides), **(overrides or {})})
        eval_s, eval_engine, n = evaluation(p, prompt == "plain")
        rows.append(ArmEstimate(arm, study.LABELS[labels[arm]], group, "zero-shot", 1, 0, n, f"-/{eval_engine}", 0.0,
                                eval_s / 3600, eval_s / 3600, eval_s / 3600 * n, 0.0, 0.0))
    pct = f"{completion_fraction:.0%}"
    assumptions = [
        (f"GPU {gpu_key(gpu)}; engines (rollout/evaluation) as medrl_lib.training.engines resolves grpo.rollouts "
         f"{base.grpo.rollouts!r} and eval.engine {base.eval.engine!r} on a machine with each arm's num_processes "
         f"GPUs and {'the' if has_vllm else 'no'} vllm package"),
        f"mean completion: {pct} of grpo.max_completion_length (COMPLETION_FRACTION): "
        + ", ".join(f"{completion_fraction * c:g} of {c} tokens" for c in sorted(completions)),
        (f"every run answers its test items and the panel's (panel.per_benchmark {base.panel.per_benchmark} items "
         f"of each of {len(base.panel.benchmarks)} benchmarks: an upper bound, a benchmark with fewer is scored whole)"
         if base.panel.benchmarks else "no panel"),
        f"evaluation answers: {pct} of eval.max_new_tokens with the reasoning prompt ("
        + ", ".join(f"{completion_fraction * c:g} of {c}" for c in sorted(answers))
        + f" tokens), {PLAIN_ANSWER_TOKENS} tokens with the plain prompt (a letter and the end of the turn)",
        (f"mean prompt (image and question): {prompt_fraction:.0%} of grpo.max_prompt_length (PROMPT_FRACTION): "
         f"{prompt_fraction * base.grpo.max_prompt_length:g} of {base.grpo.max_prompt_length} tokens; plain "
         f"supervised targets {PLAIN_ANSWER_TOKENS} tokens; a supervised token costs (of full SFT's, SUPERVISED_COST): "
         + ", ".join(f"{m} {c:.3g}" for m, c in SUPERVISED_COST.items() if m != "sft")
         + " (DPO: two sequences per item, through the policy and the frozen reference)"),
        *[f"{engine} {figure}: {e['value']:,.4g} {e['unit']}; {e['source']}" for (engine, figure), e in used.items()],
        ("GPU-hours = wall hours x the GPUs a run holds (num_processes while it trains and evaluates: evaluating on "
         "one GPU keeps the others booked; a zero-shot evaluation: the GPUs of its engine); runs go one after another"),
        *notes,
        (f"disk from {parameters / 1e9:.3f} B policy parameters ({counted_from}): a GRPO run's checkpoints as "
         "medrl_lib.ops.preflight.disk_estimate (deleted when the run ends), plus the final model each GRPO run keeps "
         "(grpo.keep_final_model); a multi-process supervised run writes its model once for evaluation"
         if parameters else f"disk unknown: {counted_from}"),
        ("not counted: loading models and data, writing checkpoints, the metric models of the evaluation "
         "(similarity, perplexity, thinking reward), the semantic judge's calls in training, building tiny stand-ins"),
    ]
    if base.model.kind == "hub" and "Qwen2-VL-2B" not in base.model.instruct:
        assumptions.append(f"the policy is {base.model.instruct}, the throughput figures Qwen2-VL-2B's: the hours are "
                           "those of this profile's token counts on Qwen2-VL-2B (a model of about its size); its disk "
                           "is counted from its own parameters")
    if base.model.kind != "hub":
        assumptions.append(f"the policy is not Qwen2-VL-2B (model.kind {base.model.kind!r}): the figures are the 2B "
                           "model's, so the hours are those of this profile's token counts on Qwen2-VL-2B")
    return StudyEstimate(profile_name, gpu_key(gpu), rows, assumptions)


def cluster_wall_hours(est: StudyEstimate, nodes: int, gpus_per_node: int = 4) -> float:
    """Wall hours of ``est``'s runs on ``nodes`` nodes of ``gpus_per_node`` GPUs, every run an independent job on one
    node (as ``medrl submit`` makes them), the longest first, each started on the node whose GPUs free up first
    (greedy list scheduling: within 4/3 of the best order). A run that needs more GPUs than a node has is an error.

    >>> row = ArmEstimate("a", "a", "zhu", "grpo", 3, 10, 4, "hf/hf", 1.0, 10.0, 30.0, 120.0, 0.0, 0.0)
    >>> est = StudyEstimate("x", "A100-80GB", [row], [])
    >>> cluster_wall_hours(est, 1), cluster_wall_hours(est, 2), cluster_wall_hours(est, 3)
    (30.0, 20.0, 10.0)
    """
    if nodes < 1 or gpus_per_node < 1:
        raise ValueError(f"nodes and GPUs per node must be at least 1, got {nodes} and {gpus_per_node}")
    jobs = sorted(((r.hours_per_run, max(r.gpus, 1), r.arm) for r in est.rows for _ in range(r.runs)), reverse=True)
    free = [[0.0] * gpus_per_node for _ in range(nodes)]  # per node: when each GPU is free, in order
    end = 0.0
    for hours, gpus, arm in jobs:
        if gpus > gpus_per_node:
            raise ValueError(f"a run of {arm} needs {gpus} GPUs; a node has {gpus_per_node}")
        node = min(free, key=lambda f: f[gpus - 1])  # the node where `gpus` GPUs are free first
        start = node[gpus - 1]
        node[:gpus] = [start + hours] * gpus
        node.sort()
        end = max(end, start + hours)
    return end


#: Columns of :func:`estimate_table` and of the text table: (heading, ArmEstimate field, digits).
COLUMNS = (("arm", "arm", None), ("label", "label", None), ("group", "group", None), ("method", "method", None),
           ("runs", "runs", 0), ("steps", "steps", 0), ("GPUs", "gpus", 0), ("engines", "engines", None),
           ("s/step", "step_seconds", 1), ("h/run", "hours_per_run", 1), ("wall h", "wall_hours", 1),
           ("GPU-h", "gpu_hours", 1), ("kept GiB", "disk_kept_gib", 1), ("ckpt GiB", "checkpoints_gib", 1))
#: Columns whose total is the sum of the rows ('ckpt GiB' totals the largest: runs go one after another).
SUMMED = ("runs", "wall_hours", "gpu_hours", "disk_kept_gib")


def _total_row(est: StudyEstimate) -> dict[str, Any]:
    return {"arm": "total", "checkpoints_gib": est.total("checkpoints_gib"), **{f: est.total(f) for f in SUMMED}}


def estimate_table(profile_name: str = "paper", overrides: dict | None = None, **kwargs):
    """:func:`estimate` as a DataFrame, one row per arm and a total row; ``attrs['totals']`` and
    ``attrs['assumptions']`` hold the lines to read below it."""
    import pandas as pd

    est = estimate(profile_name, overrides, **kwargs)
    rows = [asdict(r) for r in est.rows] + [_total_row(est)]
    frame = pd.DataFrame([{h: (round(r[f], d) if d and f in r else r.get(f, ""))
                           for h, f, d in COLUMNS} for r in rows]).set_index("arm")
    frame.attrs.update(totals=est.total_lines(), assumptions=est.assumptions)
    return frame


def format_estimate(est: StudyEstimate) -> str:
    """The estimate as a fixed-width table (columns two spaces apart), its totals and its assumptions."""
    def cell(row: dict, field: str, digits: int | None) -> str:
        value = row.get(field, "")
        return value if digits is None or value == "" else f"{value:,.{digits}f}"

    from medrl_lib.common.console import text_table

    rows = [asdict(r) for r in est.rows] + [_total_row(est)]
    cells = [[h for h, _, _ in COLUMNS]] + [[cell(r, f, d) for _, f, d in COLUMNS] for r in rows]
    lines = text_table(cells, right=[d is not None for _, _, d in COLUMNS])
    lines.insert(-1, lines[1])  # a rule above the total row too
    return "\n".join([f"Cost of the {est.profile} study on {est.gpu} (medrl_lib.ops.estimate)", "", *lines, "",
                      *est.total_lines(), "", "Assumptions:", *(f"- {a}" for a in est.assumptions)])


def show_estimate(profile_name: str = "paper", overrides: dict | None = None, **kwargs) -> None:
    """Display :func:`estimate_table` in a notebook, its totals and assumptions below it."""
    from IPython.display import Markdown, display

    frame = estimate_table(profile_name, overrides, **kwargs)
    display(frame)
    display(Markdown("\n".join([f"{line}  " for line in frame.attrs["totals"]] + ["", "Assumptions:", ""]
                                + [f"- {a}" for a in frame.attrs["assumptions"]])))
