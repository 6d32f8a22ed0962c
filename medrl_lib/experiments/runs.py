"""Runs: the trained and evaluated arms a notebook asks for, each cached in the results store by its resolved config.

A notebook (through :mod:`medrl_lib.experiments.study`) calls :func:`grpo_arm`, :func:`sft_arm` or :func:`zero_shot_arm` with a
profile, results group ('zhu' for E1-E5, 'ood' for E6), arm and seed; the first call trains and evaluates, later
calls with the same resolved config load the stored run from ``results/<profile>/<group>/<arm>/seed<k>`` (the
stored config names the group ``experiment``, as it always has). Training runs here (:func:`medrl_lib.training.train.fit`)
or, when the profile asks for several processes, in processes started by :func:`medrl_lib.training.launch.launch_training`.

A run starts from the start-model draw of its seed (:func:`medrl_lib.training.standins.start_draw`): the one shared draw, or,
with ``standins.per_seed``, draw ``k`` for seed ``k``; a draw other than 0 is part of the run's config (its cache
key) as ``start_draw`` (:func:`_keyed`).
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path

from medrl_lib.common.files import config_key
from medrl_lib.config import Profile, resolve_path
from medrl_lib.data.splits import make_splits
from medrl_lib.experiments.results import Run, cached_run, run_dir
from medrl_lib.training.engines import free_accelerator

_SCORERS: dict[tuple, object] = {}


def metric_scorers(profile: Profile) -> dict:
    """The similarity, perplexity and thinking scorers the profile names (built once per process)."""
    from medrl_lib.models.sources import resolve_source
    from medrl_lib.scoring.metrics import CrossEncoderSimilarity, MiniLMSimilarity, Perplexity
    from medrl_lib.rl.oracle import OracleThinkingScorer
    from medrl_lib.rl.thinking import LLMThinkingScorer

    e = profile.eval
    key = (e.similarity, e.perplexity, e.thinking, profile.cache_dir)
    if key not in _SCORERS:
        similarity = (None if e.similarity == "none" else MiniLMSimilarity() if e.similarity == "minilm"
                      else CrossEncoderSimilarity(resolve_source(e.similarity)))
        if e.perplexity == "none":
            perplexity = None
        elif e.perplexity == "reference-lm":
            from medrl_lib.training.standins import ensure_reference_lm

            perplexity = Perplexity(str(ensure_reference_lm(resolve_path(profile.cache_dir))))
        else:
            perplexity = Perplexity(resolve_source(e.perplexity))
        thinking = (None if e.thinking == "none" else OracleThinkingScorer() if e.thinking == "oracle"
                    else LLMThinkingScorer(resolve_source(e.thinking)))
        _SCORERS[key] = {"similarity": similarity, "perplexity": perplexity, "thinking": thinking}
    return _SCORERS[key]


def release_scorers() -> int:
    """Free the metric models (similarity, perplexity, thinking) of every profile, on the GPU and in memory, so
    that the next arm's training finds the GPUs empty; they load again at the next evaluation. Returns how many
    scorer sets were released."""
    n = len(_SCORERS)
    for scorers in _SCORERS.values():
        for scorer in scorers.values():
            if scorer is not None and hasattr(scorer, "unload"):
                scorer.unload()
    _SCORERS.clear()
    free_accelerator()
    return n


def _evaluate(model, processor, profile: Profile, test, prompt_mode: str | None = None,
              out=None) -> tuple[dict, list[dict]]:
    """Answer the test items (the engine of ``eval.engine``, :func:`medrl_lib.training.generation.answer_items`; 'sharded'
    and 'vllm' save the policy to ``out/eval_model`` for the time they answer), then every metric of Zhu
    Appendix B with its bootstrap 95% interval.

    Metrics land as ``eval/<name>`` (value), ``eval/<name>/low`` and ``/high`` (interval), ``/n`` (items
    scored) and ``/n_missing``; ``eval/accuracy/all`` is the overall accuracy, ``eval/engine`` the engine."""
    from medrl_lib.training.generation import answer_items
    from medrl_lib.scoring.metrics import compute_metrics, format_rate
    from medrl_lib.training.train import attention_kernel

    e = profile.eval
    t0 = time.time()
    answers = answer_items(model, processor, profile, test, prompt_mode, out)
    records = [dataclasses.asdict(r) for r in answers.records]
    t_gen = time.time() - t0
    cols = test.select_columns(["question", "options", "answer", "facts"])
    references = [opts[ord(ans) - 65] for opts, ans in zip(cols["options"], cols["answer"])]
    has_facts = all(f not in ("", "{}") for f in cols["facts"])
    scorers = dict(metric_scorers(profile))
    if not has_facts and e.thinking == "oracle":
        scorers["thinking"] = None  # the oracle needs synthetic facts; real data uses an LLM scorer
    model.to("cpu")  # the policy leaves the GPU before the metric models load (they need it more)
    free_accelerator()
    try:
        computed = compute_metrics(records, reference_texts=references, questions=cols["question"],
                                   facts=cols["facts"], n_boot=e.n_boot, seed=e.bootstrap_seed, **scorers)
    finally:
        release_scorers()  # the next arm trains on GPUs free of metric models
    metrics: dict = {}
    for name, entry in computed.items():
        key = "eval/accuracy/all" if name == "accuracy" else f"eval/{name}"
        metrics[key] = entry["value"]
        for field_name, value in entry.items():
            if field_name != "value":
                metrics[f"{key}/{field_name}"] = value
    # well-formed: the format reward's rule (both blocks, in order, nothing outside), not a unique think block
    metrics["eval/format/all"] = format_rate(records)
    metrics["time/generate_s"] = t_gen
    metrics["eval/items_per_s"] = len(records) / max(t_gen, 1e-9)
    metrics["eval/device"] = answers.device
    metrics["eval/engine"] = answers.engine
    metrics["model/attn_implementation"] = attention_kernel(model)
    metrics["time/eval_s"] = time.time() - t0
    return metrics, records


def _finish(out, keep_model: bool, train, test) -> None:
    """End a trained run: store the loaders' counts of kept and dropped rows (``data.json``), keep the final
    model as ``model/`` when the profile asks, delete the checkpoints, free the GPU."""
    from medrl_lib.data.schema import load_summary
    from medrl_lib.common.files import write_json

    write_json(out / "data.json", {"train": load_summary(train), "test": load_summary(test)})
    checkpoints = out / "checkpoints"
    if keep_model and (checkpoints / "final").exists():
        shutil.rmtree(out / "model", ignore_errors=True)
        (checkpoints / "final").rename(out / "model")
    shutil.rmtree(checkpoints, ignore_errors=True)  # the run is complete: its checkpoints are not kept
    free_accelerator()


#: Profile sections that never change a run's result (where files go, which seeds a notebook loops over).
_NOT_RESULTS = ("cache_dir", "results_dir", "seeds", "name", "medvlm_r1", "length_rewards", "panel")  # sections: applied already


def run_settings(profile: Profile, drop: tuple[str, ...] = ()) -> dict:
    """The part of the profile that determines a run's result: its cache key. Sections a run does not use
    (``drop``) and storage paths are left out, so that changing them reuses stored runs; the engines are resolved
    for this machine (:func:`medrl_lib.training.engines.keyed_settings`)."""
    from medrl_lib.training.engines import keyed_settings

    return keyed_settings(profile, {k: v for k, v in profile.to_dict().items() if k not in _NOT_RESULTS + drop})


def _keyed(profile: Profile, config: dict, seed: int | None) -> dict:
    """``config`` keyed by the start model its run starts from: ``standins.per_seed`` leaves the settings (the keys
    of the runs stored before it existed stay) and the draw of ``seed`` joins the config as ``start_draw`` when it
    is not the shared draw 0. Draw 0 is the shared draw itself, so a per-seed profile's seed-0 run has the key of
    the shared-draw run: they are the same computation."""
    from medrl_lib.training.standins import start_draw

    config["settings"].get("standins", {}).pop("per_seed", None)
    draw = start_draw(profile, seed)
    if draw:
        config["start_draw"] = draw
    return config


def write_profile(profile: Profile, path) -> None:
    """Write the resolved profile as YAML that :func:`medrl_lib.config.load_profile` reads back unchanged."""
    import json

    import yaml

    from medrl_lib.common.files import write_text

    write_text(path, yaml.safe_dump(json.loads(json.dumps(profile.to_dict())), sort_keys=False))


def _with_seed(profile: Profile, seed: int) -> Profile:
    """``profile`` with ``seed`` as the seed of GRPO and of the supervised baselines."""
    return dataclasses.replace(profile, grpo=dataclasses.replace(profile.grpo, seed=seed),
                               sft=dataclasses.replace(profile.sft, seed=seed))


def launched(profile: Profile, gpus: int | None = None) -> bool:
    """Whether a run trains in processes under accelerate + DeepSpeed ZeRO-2 (:mod:`medrl_lib.training.launch`) rather than
    in this process: when the profile asks for more than one, and for hub models wherever a GPU is visible (``gpus``:
    stands for the machine's count, for tests): one process then trains as one rank of the paper's launch does
    (NCCL, ZeRO-2's fp32 master weights) and hands the GPU back whole when it ends.

    >>> from medrl_lib.config import load_profile
    >>> launched(load_profile("rehearsal", {"num_processes": 1}), gpus=1), launched(load_profile("rehearsal",
    ...     {"num_processes": 1}), gpus=0), launched(load_profile("smoke"), gpus=1)
    (True, False, False)
    """
    if gpus is None:
        from medrl_lib.training.engines import gpu_count

        gpus = gpu_count()
    return profile.num_processes > 1 or (profile.model.kind == "hub" and gpus > 0)


def home_prompt(profile: Profile, method: str) -> str:
    """The prompt a run of ``method`` is tested with: the plain prompt for a supervised baseline tuned on plain letters
    (MedVLM-R1 section 4), else ``eval.prompt_mode``."""
    return "plain" if method != "grpo" and profile.sft.target == "plain" else profile.eval.prompt_mode


def keeps_model(profile: Profile) -> bool:
    """Whether a trained run keeps its final model as ``<run>/model``: where the profile asks
    (``grpo.keep_final_model``) and wherever it names a panel, whose scores are made from that model
    (:func:`panel_run`), so that a panel added or changed later scores the stored runs without retraining them."""
    return profile.grpo.keep_final_model or bool(profile.panel.benchmarks)


def _train(profile: Profile, method: str, policy: str, train, out):
    """Train ``method`` from ``policy`` on ``train`` (checkpoints in ``out/checkpoints``): in this process, or, where
    :func:`launched`, in processes under accelerate + DeepSpeed ZeRO-2 started by
    :func:`medrl_lib.training.launch.launch_training` (their output streamed here), which write the model to
    ``checkpoints/final``. Returns ``(model, processor, log_history)``."""
    from medrl_lib.training.train import fit, load_policy, trains_in_bf16

    checkpoints = out / "checkpoints"
    if launched(profile):
        from medrl_lib.training.launch import launch_training

        resolved = out / "profile.yaml"
        write_profile(profile, resolved)
        log = launch_training(str(resolved), {}, policy, str(checkpoints), profile.num_processes,
                              trains_in_bf16(profile, method), method=method)
        return (*load_policy(profile, str(checkpoints / "final")), log)
    res = fit(method, profile, policy, train, str(checkpoints))  # GRPO resumes from a checkpoint if any
    if method == "grpo" and profile.grpo.keep_final_model:
        res["trainer"].save_model(str(checkpoints / "final"))
        res["processor"].save_pretrained(str(checkpoints / "final"))
    elif keeps_model(profile):
        from medrl_lib.training.generation import save_policy

        save_policy(res["model"], res["processor"], profile, checkpoints / "final")  # LoRA: the merged weights
    return res["model"], res["processor"], res["log_history"]


@dataclasses.dataclass
class Planned:
    """A run as the store keys it, before anything trains: the profile it runs with, its config and folder."""

    profile: Profile
    config: dict
    path: Path

    @property
    def key(self) -> str:
        """The config's hash (:func:`medrl_lib.common.files.config_key`)."""
        return config_key(self.config)


def grpo_plan(profile: Profile, group: str, arm: str, seed: int) -> Planned:
    """The GRPO run :func:`grpo_arm` trains and stores."""
    profile = _with_seed(profile, seed)
    config = _keyed(profile, {"kind": "grpo", "experiment": group, "arm": arm, "seed": seed,
                              "settings": run_settings(profile, drop=("sft",))}, seed)
    return Planned(profile, config, run_dir(resolve_path(profile.results_dir), profile.name, group, arm, seed))


def grpo_arm(profile: Profile, group: str, arm: str, seed: int, *, force: bool = False, wait: bool = True) -> Run:
    """Train GRPO from ``profile.model.init`` (of the draw of ``seed``) on the train split, evaluate on the test
    split; cached (``wait``: :func:`medrl_lib.experiments.results.cached_run`)."""
    from medrl_lib.training.standins import ensure_start_model

    planned = grpo_plan(profile, group, arm, seed)
    profile, config, path = planned.profile, planned.config, planned.path

    def work(out):
        train, test = make_splits(profile)
        policy = ensure_start_model(profile, seed=seed)
        print(f"[{group}/{arm}/seed{seed}] GRPO from {profile.model.init} for {profile.grpo.max_steps} steps "
              f"on {len(train)} items", flush=True)
        t0 = time.time()
        model, processor, log = _train(profile, "grpo", policy, train, out)
        train_s = time.time() - t0
        metrics, records = _evaluate(model, processor, profile, test, out=out)
        metrics["time/train_s"] = train_s
        _finish(out, keeps_model(profile), train, test)
        return {"metrics": metrics, "records": records, "log_history": log,
                "train_ids": train["id"], "test_ids": test["id"]}

    return cached_run(path, config, work, force=force, wait=wait)


def zero_shot_seed(profile: Profile, seed: int | None) -> int | None:
    """The draw a zero-shot run evaluates: ``seed`` (default the first) with per-seed draws, else None (one run)."""
    if profile.standins.per_seed and profile.model.kind != "hub":
        return profile.seeds[0] if seed is None else seed
    return None


def zero_shot_plan(profile: Profile, group: str, arm: str, which: str = "instruct", *, seed: int | None = None,
                   prompt_mode: str | None = None) -> Planned:
    """The evaluation :func:`zero_shot_arm` stores (``seed`` of the planned run: in its profile's ``seeds[0]``
    slot when the draw is shared)."""
    seed = zero_shot_seed(profile, seed)
    config = _keyed(profile, {"kind": "zero-shot", "experiment": group, "arm": arm, "which": which,
                              "prompt_mode": prompt_mode or profile.eval.prompt_mode,
                              "settings": run_settings(profile, drop=("grpo", "sft", "num_processes"))}, seed)
    path = run_dir(resolve_path(profile.results_dir), profile.name, group, arm, 0 if seed is None else seed)
    return Planned(profile, config, path)


def zero_shot_arm(profile: Profile, group: str, arm: str, which: str = "instruct", *, seed: int | None = None,
                  prompt_mode: str | None = None, force: bool = False, wait: bool = True) -> Run:
    """Evaluate a start model ('base' or 'instruct') without training; cached.

    With one shared start-model draw (the default) it is that draw, stored as ``seed0`` whatever ``seed``. With
    ``standins.per_seed`` it is the draw of run seed ``seed`` (default: the profile's first seed), stored as
    ``seed<seed>``: the study's zero-shot rows (:mod:`medrl_lib.experiments.study`) evaluate the first seed's draw only."""
    from medrl_lib.training.standins import ensure_start_model
    from medrl_lib.training.train import load_policy

    planned = zero_shot_plan(profile, group, arm, which, seed=seed, prompt_mode=prompt_mode)
    config, path, seed = planned.config, planned.path, zero_shot_seed(profile, seed)

    def work(out):
        train, test = make_splits(profile)
        model, processor = load_policy(profile, ensure_start_model(profile, which, seed=seed))
        metrics, records = _evaluate(model, processor, profile, test, prompt_mode, out)
        _finish(out, False, train, test)
        return {"metrics": metrics, "records": records, "test_ids": test["id"]}

    return cached_run(path, config, work, force=force, wait=wait)


def sft_plan(profile: Profile, group: str, arm: str, seed: int, method: str = "sft") -> Planned:
    """The supervised run :func:`sft_arm` trains and stores."""
    from medrl_lib.training.budget import SUPERVISED_METHODS, supervised_steps

    if method not in SUPERVISED_METHODS:
        raise ValueError(f"method must be one of {SUPERVISED_METHODS}, got {method!r}")
    profile = _with_seed(profile, seed)
    config = _keyed(profile, {"kind": method, "experiment": group, "arm": arm, "seed": seed,
                              "steps": supervised_steps(profile, method),
                              "settings": run_settings(profile, drop=("grpo",))}, seed)
    return Planned(profile, config, run_dir(resolve_path(profile.results_dir), profile.name, group, arm, seed))


def sft_arm(profile: Profile, group: str, arm: str, seed: int, method: str = "sft", *,
            force: bool = False, wait: bool = True) -> Run:
    """Train a supervised baseline ('sft' full fine-tuning, 'lora', or 'dpo') from ``profile.model.init`` (of the
    draw of ``seed``) on the train split with the profile's ``sft`` settings, evaluate on the test split; cached
    like GRPO runs. Its config holds the steps it trains (with ``sft.budget: grpo`` they follow GRPO's settings,
    which it drops)."""
    from medrl_lib.training.standins import ensure_start_model

    planned = sft_plan(profile, group, arm, seed, method)
    profile, config, path = planned.profile, planned.config, planned.path

    def work(out):
        train, test = make_splits(profile)
        policy = ensure_start_model(profile, seed=seed)
        t0 = time.time()
        model, processor, log = _train(profile, method, policy, train, out)
        train_s = time.time() - t0
        metrics, records = _evaluate(model, processor, profile, test, home_prompt(profile, method), out)
        metrics["time/train_s"] = train_s
        del model
        _finish(out, keeps_model(profile), train, test)
        return {"metrics": metrics, "records": records, "log_history": log, "train_ids": train["id"],
                "test_ids": test["id"]}

    return cached_run(path, config, work, force=force, wait=wait)


PANEL_FOLDER = "panel"
"""The folder of a run that holds its panel scores (``<run>/panel``: ``metrics.json``, ``records.jsonl``, ...)."""


def panel_plan(run: Planned, prompt_mode: str) -> Planned:
    """The panel scores of the run ``run`` (asked with ``prompt_mode``, as its home test): keyed by the run's key and
    the ``panel`` settings, stored in ``<run>/panel``; the panel is not part of the run's own key."""
    config = {"kind": "panel", "run_key": run.key, "experiment": run.config["experiment"], "arm": run.config["arm"],
              "prompt_mode": prompt_mode, "panel": dataclasses.asdict(run.profile.panel)}
    return Planned(run.profile, config, run.path / PANEL_FOLDER)


def panel_run(run: Planned, model_path: str | Path, prompt_mode: str, *, force: bool = False,
              wait: bool = True) -> Run:
    """Score the model at ``model_path`` (the run's kept model, or the start model a zero-shot row evaluates) on the
    profile's panel (:func:`medrl_lib.data.panel.panel_items`) with the engine, prompt (``prompt_mode``) and scoring
    rule of its home test; cached in ``<run>/panel`` (:func:`panel_plan`). Items whose image is among the run's
    training images are left out and counted. Metrics per benchmark ``b``: ``panel/accuracy/<b>`` with ``/low``,
    ``/high`` (bootstrap 95% interval), ``/n``; ``panel/format/<b>``; ``panel/train_overlap/<b>``."""
    from medrl_lib.data.panel import panel_items
    from medrl_lib.data.splits import image_keys
    from medrl_lib.training.generation import answer_items
    from medrl_lib.scoring.metrics import format_rate
    from medrl_lib.scoring.stats import bootstrap_ci
    from medrl_lib.training.train import load_policy

    planned = panel_plan(run, prompt_mode)
    profile = run.profile
    if not Path(model_path).exists():
        raise FileNotFoundError(f"{run.path}: the run kept no model ({model_path} is absent), so its panel cannot be "
                                "scored: runs keep their model where the profile names a panel; retrain it "
                                "(medrl run --force) to score this one")

    def work(out):
        train, _ = make_splits(profile)
        panel = panel_items(profile)
        seen = {k for k in image_keys(train) if k is not None}
        keys = image_keys(panel)
        names = list(panel["benchmark"])
        overlap = [names[i] for i, k in enumerate(keys) if k in seen]  # the benchmark of each left-out item
        kept = panel.select([i for i, k in enumerate(keys) if k not in seen])
        model, processor = load_policy(profile, str(model_path))
        answers = answer_items(model, processor, profile, kept, prompt_mode, out)
        del model
        free_accelerator()
        records = [{**dataclasses.asdict(r), "benchmark": b} for r, b in zip(answers.records, kept["benchmark"])]
        e = profile.eval
        metrics: dict = {"panel/engine": answers.engine, "panel/source": profile.panel.source}
        for name in profile.panel.benchmarks:
            rows = [r for r in records if r["benchmark"] == name]
            ci = bootstrap_ci([100.0 * r["correct"] for r in rows], n_boot=e.n_boot, seed=e.bootstrap_seed)
            metrics.update({f"panel/accuracy/{name}": ci.value, f"panel/accuracy/{name}/low": ci.low,
                            f"panel/accuracy/{name}/high": ci.high, f"panel/accuracy/{name}/n": ci.n,
                            f"panel/format/{name}": format_rate(rows) if rows else float("nan"),
                            f"panel/train_overlap/{name}": overlap.count(name)})
        return {"metrics": metrics, "records": records, "test_ids": kept["id"]}

    return cached_run(planned.path, planned.config, work, force=force, wait=wait)
