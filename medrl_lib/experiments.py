"""Experiments: the runs a notebook asks for, each cached in the results store by its resolved config.

A notebook calls :func:`grpo_arm` or :func:`zero_shot_arm` with a profile, experiment name, arm and seed;
the first call trains and evaluates, later calls with the same resolved config load the stored run.
"""

from __future__ import annotations

import dataclasses
import shutil
import time

from .config import Profile, resolve_path
from .results import Run, cached_run, run_dir


def make_splits(profile: Profile):
    """(train, test) in the common schema, with disjoint ids.

    * ``synthetic``: train on ``data.train_modalities``, ``data.test_per_modality`` test items per modality;
    * ``pmc-vqa``: Zhu's subset: ``data.train_size`` training items drawn with ``data.seed`` from PMC-VQA's
      ``train_2.csv`` and ``data.test_size`` test items from its ``test_2.csv``, disjoint by image; no row is selected
      by its label (``data.pmc_vqa_path``: a local folder; a single CSV file is split by image instead; empty: the
      hub);
    * ``huatuo-eval``: MedVLM-R1's split of the HuatuoGPT-Vision evaluation data (``data.huatuo_path``; empty: the
      hub): its published test items (:func:`medrl_lib.data.medvlm_r1_test_items`, the first
      ``data.test_per_modality`` of each modality in the published order: all 300 on the paper profile) and
      ``data.train_size`` MRI training items drawn from the other MRI items, sharing no image with a test item.

    The loaders skip malformed rows and count them by reason: :func:`medrl_lib.data.schema.load_summary` of
    either split gives the counts (every run stores them as ``data.json``).
    """
    from .config import resolve_source

    d = profile.data
    if d.source == "pmc-vqa":
        from pathlib import Path

        from .data.pmc_vqa import HUB_ID, load_pmc_vqa
        from .data.splits import zhu_split, zhu_split_files

        source = resolve_source(d.pmc_vqa_path) or HUB_ID
        if Path(source).is_file():  # one CSV: split it by image
            return zhu_split(load_pmc_vqa(source), n_train=d.train_size, n_test=d.test_size, seed=d.seed)
        train, test = load_pmc_vqa(source, csv="train_2.csv"), load_pmc_vqa(source, csv="test_2.csv")
        return zhu_split_files(train, test, n_train=d.train_size, n_test=d.test_size, seed=d.seed)
    if d.source == "huatuo-eval":
        from .data import medvlm_r1_test_items
        from .data.huatuo import HUB_ID, load_huatuo_eval
        from .data.splits import medvlm_r1_published_split

        ds = load_huatuo_eval(resolve_source(d.huatuo_path) or HUB_ID)
        return medvlm_r1_published_split(ds, n_train_mri=d.train_size, seed=d.seed,
                                         test_items=medvlm_r1_test_items(d.test_per_modality))
    from .data.synthetic import SyntheticConfig, generate

    common = dict(image_size=d.image_size, min_options=d.min_options, max_options=d.max_options,
                  option_order=d.option_order)
    train = generate(SyntheticConfig(n_items=d.train_size, modalities=tuple(d.train_modalities), seed=d.seed,
                                     id_prefix="train", **common))
    test = generate(SyntheticConfig(n_items=d.test_per_modality * len(d.test_modalities),
                                    modalities=tuple(d.test_modalities), seed=d.seed + 1, id_prefix="test", **common))
    overlap = set(train["id"]) & set(test["id"])
    if overlap:
        raise RuntimeError(f"train and test share ids: {sorted(overlap)[:3]}")
    return train, test


_SCORERS: dict[tuple, object] = {}


def metric_scorers(profile: Profile) -> dict:
    """The similarity, perplexity and thinking scorers the profile names (built once per process)."""
    from .metrics import (CrossEncoderSimilarity, LLMThinkingScorer, MiniLMSimilarity, OracleThinkingScorer,
                          Perplexity)

    from .config import resolve_source

    e = profile.eval
    key = (e.similarity, e.perplexity, e.thinking, profile.cache_dir)
    if key not in _SCORERS:
        similarity = (None if e.similarity == "none" else MiniLMSimilarity() if e.similarity == "minilm"
                      else CrossEncoderSimilarity(resolve_source(e.similarity)))
        if e.perplexity == "none":
            perplexity = None
        elif e.perplexity == "reference-lm":
            from .reference_lm import ensure_reference_lm

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


def free_accelerator() -> None:
    """Collect garbage and return cached GPU memory to the driver (a no-op without a GPU)."""
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _evaluate(model, processor, profile: Profile, test, prompt_mode: str | None = None) -> tuple[dict, list[dict]]:
    """Answer the test items, then every metric of Zhu Appendix B with its bootstrap 95% interval.

    Metrics land as ``eval/<name>`` (value), ``eval/<name>/low`` and ``/high`` (interval), ``/n`` (items
    scored) and ``/n_missing``; ``eval/accuracy/all`` is the overall accuracy."""
    from .evaluate import generate_records
    from .metrics import compute_metrics, format_rate

    import torch

    from .train import attention_kernel, eval_device

    e = profile.eval
    device = eval_device(profile)
    model.to(device=device, dtype=getattr(torch, profile.model.dtype))  # a single process trains in float32
    t0 = time.time()
    records = [dataclasses.asdict(r) for r in generate_records(
        model, processor, test, batch_size=e.batch_size, max_new_tokens=e.max_new_tokens,
        mode=prompt_mode or e.prompt_mode, greedy=e.greedy, temperature=e.temperature,
        require_format=e.accuracy_requires_format, letter_rule=e.letter_rule)]
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
    metrics["eval/device"] = str(device)
    metrics["model/attn_implementation"] = attention_kernel(model)
    metrics["time/eval_s"] = time.time() - t0
    return metrics, records


def _finish(out, keep_model: bool, train, test) -> None:
    """End a trained run: store the loaders' counts of kept and dropped rows (``data.json``), keep the final
    model as ``model/`` when the profile asks, delete the checkpoints, free the GPU."""
    from .data.schema import load_summary
    from .results import write_json

    write_json(out / "data.json", {"train": load_summary(train), "test": load_summary(test)})
    checkpoints = out / "checkpoints"
    if keep_model and (checkpoints / "final").exists():
        shutil.rmtree(out / "model", ignore_errors=True)
        (checkpoints / "final").rename(out / "model")
    shutil.rmtree(checkpoints, ignore_errors=True)  # the run is complete: its checkpoints are not kept
    free_accelerator()


#: Profile sections that never change a run's result (where files go, which seeds a notebook loops over).
_NOT_RESULTS = ("cache_dir", "results_dir", "seeds", "name")


def run_settings(profile: Profile, drop: tuple[str, ...] = ()) -> dict:
    """The part of the profile that determines a run's result: its cache key. Sections a run does not use
    (``drop``) and storage paths are left out, so that changing them reuses stored runs."""
    return {k: v for k, v in profile.to_dict().items() if k not in _NOT_RESULTS + drop}


def write_profile(profile: Profile, path) -> None:
    """Write the resolved profile as YAML that :func:`medrl_lib.config.load_profile` reads back unchanged."""
    import json

    import yaml

    from .results import write_text

    write_text(path, yaml.safe_dump(json.loads(json.dumps(profile.to_dict())), sort_keys=False))


def _with_seed(profile: Profile, seed: int) -> Profile:
    p = dataclasses.replace(profile, grpo=dataclasses.replace(profile.grpo, seed=seed))
    return p


def grpo_arm(profile: Profile, experiment: str, arm: str, seed: int, *, force: bool = False) -> Run:
    """Train GRPO from ``profile.model.init`` on the train split, evaluate on the test split; cached."""
    from .train import ensure_policy, run_grpo

    profile = _with_seed(profile, seed)
    config = {"kind": "grpo", "experiment": experiment, "arm": arm, "seed": seed,
              "settings": run_settings(profile, drop=("sft",))}
    path = run_dir(resolve_path(profile.results_dir), profile.name, experiment, arm, seed)

    def work(out):
        train, test = make_splits(profile)
        policy = ensure_policy(profile)
        print(f"[{experiment}/{arm}/seed{seed}] GRPO from {profile.model.init} for {profile.grpo.max_steps} steps "
              f"on {len(train)} items", flush=True)
        t0 = time.time()
        checkpoints = out / "checkpoints"
        if profile.num_processes > 1:  # accelerate + DeepSpeed ZeRO-2 in a subprocess, output streamed here
            from .launch import launch_training
            from .train import load_policy

            resolved = out / "profile.yaml"
            write_profile(profile, resolved)
            log = launch_training(str(resolved), {}, policy, str(checkpoints), profile.num_processes,
                                  profile.grpo.bf16)
            model, processor = load_policy(profile, str(checkpoints / "final"))
            res = {"model": model, "processor": processor, "log_history": log}
        else:
            res = run_grpo(profile, policy, train, output_dir=str(checkpoints))  # resumes from a checkpoint if any
            if profile.grpo.keep_final_model:
                res["trainer"].save_model(str(checkpoints / "final"))
                res["processor"].save_pretrained(str(checkpoints / "final"))
            res.pop("trainer")
        train_s = time.time() - t0
        log = res["log_history"]
        metrics, records = _evaluate(res.pop("model"), res.pop("processor"), profile, test)
        metrics["time/train_s"] = train_s
        _finish(out, profile.grpo.keep_final_model, train, test)
        return {"metrics": metrics, "records": records, "log_history": log,
                "train_ids": train["id"], "test_ids": test["id"]}

    return cached_run(path, config, work, force=force)


def zero_shot_arm(profile: Profile, experiment: str, arm: str, which: str = "instruct", *,
                  prompt_mode: str | None = None, force: bool = False) -> Run:
    """Evaluate a start policy ('base' or 'instruct') without training; cached."""
    from .train import ensure_policy, load_policy

    config = {"kind": "zero-shot", "experiment": experiment, "arm": arm, "which": which,
              "prompt_mode": prompt_mode or profile.eval.prompt_mode,
              "settings": run_settings(profile, drop=("grpo", "sft", "num_processes"))}
    path = run_dir(resolve_path(profile.results_dir), profile.name, experiment, arm, 0)

    def work(out):
        train, test = make_splits(profile)
        metrics, records = _evaluate(*load_policy(profile, ensure_policy(profile, which)), profile, test, prompt_mode)
        _finish(out, False, train, test)
        return {"metrics": metrics, "records": records, "test_ids": test["id"]}

    return cached_run(path, config, work, force=force)


#: Supervised baselines: arm method -> what trains it.
SFT_METHODS = ("sft", "lora", "dpo")


def sft_arm(profile: Profile, experiment: str, arm: str, seed: int, method: str = "sft", *,
            force: bool = False) -> Run:
    """Train a supervised baseline ('sft' full fine-tuning, 'lora', or 'dpo') from ``profile.model.init`` on the
    train split with the profile's ``sft`` settings, evaluate on the test split; cached like GRPO runs."""
    from .train import ensure_policy, run_dpo, run_sft

    if method not in SFT_METHODS:
        raise ValueError(f"method must be one of {SFT_METHODS}, got {method!r}")
    s = profile.sft
    config = {"kind": method, "experiment": experiment, "arm": arm, "seed": seed,
              "settings": run_settings(profile, drop=("grpo",)), "bf16": profile.grpo.bf16}
    path = run_dir(resolve_path(profile.results_dir), profile.name, experiment, arm, seed)

    def work(out):
        train, test = make_splits(profile)
        policy = ensure_policy(profile)
        from .train import supervised_load, supervised_steps

        common = dict(output_dir=str(out / "checkpoints"), max_steps=supervised_steps(profile, method), target=s.target,
                      batch_size=s.per_device_train_batch_size, seed=seed, bf16=profile.grpo.bf16,
                      load=supervised_load(profile, distributed=False))
        t0 = time.time()
        if profile.num_processes > 1:  # accelerate + DeepSpeed ZeRO-2 in a subprocess, output streamed here
            from .launch import launch_training
            from .train import load_policy

            resolved = out / "profile.yaml"
            write_profile(_with_seed(profile, seed), resolved)
            log = launch_training(str(resolved), {}, policy, str(out / "checkpoints"), profile.num_processes,
                                  profile.grpo.bf16, method=method)
            model, processor = load_policy(profile, str(out / "checkpoints" / "final"))
        elif method == "dpo":
            model, processor, log = run_dpo(policy, train, lr=s.dpo_learning_rate, beta=s.dpo_beta, **common)
        else:
            model, processor, log = run_sft(policy, train, lr=s.lora_learning_rate if method == "lora" else
                                            s.learning_rate, lora=s if method == "lora" else None, **common)
        train_s = time.time() - t0
        # a model tuned on plain letters is asked and scored with the plain prompt (MedVLM-R1 section 4)
        metrics, records = _evaluate(model, processor, profile, test, "plain" if s.target == "plain" else None)
        metrics["time/train_s"] = train_s
        del model
        _finish(out, False, train, test)
        return {"metrics": metrics, "records": records, "log_history": log, "train_ids": train["id"],
                "test_ids": test["id"]}

    return cached_run(path, config, work, force=force)
