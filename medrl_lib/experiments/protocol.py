"""The protocol each arm really runs, beside each paper's, with the paper's words as the source.

:func:`arm_protocol` resolves what an arm trains and is scored with, in the papers' units (prompts per step,
completions per step, epochs); :data:`PAPER` holds the papers' values with their quotes (Zhu et al. 2025 for
E1-E5, Pan et al. 2025, MedVLM-R1, for E6); :func:`protocol_table` sets them side by side with a computed
same / differs column and, for each difference, its reason: a documented choice (:data:`DOCUMENTED`) or the
profile's scale choice. ``medrl protocol --profile P [--json]`` prints it and the book's Protocol page shows it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from medrl_lib.config import Profile, load_profile

#: The papers' values: results group -> setting -> (value, source). ``None``: the paper does not say.
PAPER: dict[str, dict[str, tuple[Any, str]]] = {
    "zhu": {
        "data": ("PMC-VQA, 10K train / 7K test subset", "Zhu section 4: 'a subset of PMC-VQA with 10K training and 7K test samples'"),
        "train_items": (10_000, "Zhu section 4"),
        "test_items": (7_000, "Zhu section 4"),
        "num_processes": (4, "Zhu appendix A: 4 x A100-80GB"),
        "prompts_per_step": (8, "Zhu appendix A: per-device batch 1, gradient accumulation 2, 4 GPUs"),
        "num_generations": (8, "Zhu appendix A: 8 generations"),
        "completions_per_step": (64, "Zhu appendix A (8 prompts x 8 generations)"),
        "max_steps": (1500, "Zhu appendix A: 1500 steps"),
        "temperature": (1.0, "Zhu appendix A: temperature 1.0"),
        "max_completion_length": (700, "Zhu appendix A: max completion 700"),
        "max_prompt_length": (1024, "Zhu appendix A: max prompt 1024"),
        "max_pixels": (401408, "Zhu appendix A: max pixels 401408"),
        "dtype": ("bfloat16", "Zhu appendix A: bf16"),
        "beta": (0.04, "Zhu appendix A: KL coefficient 0.04"),
        "learning_rate": (None, "not given by Zhu (1e-6 of Zhou et al. 2025 assumed)"),
        "eval_prompt_mode": ("reasoning", "MedVLM-R1 section 4 (RL models); baselines: plain"),
        "baseline_prompt_mode": ("plain", "MedVLM-R1 section 4: '{Question} Your task: provide the correct single-letter choice'"),
        "scoring": ("format required, letter in <answer>", "MedVLM-R1 section 4: 'any deviation from this format ... zero score'"),
        "baseline_scoring": ("exact match of the letter", "MedVLM-R1 section 4 and its test_qwen2vl_med.py"),
        "seeds": (None, "not reported"),
        "judge": ("BioGPT / BioMistral", "Zhu section 3.2"),
        "sft_budget": (None, "Zhu gives no SFT settings"),
        "model": ("Qwen2-VL-2B", "Zhu section 3.1: Qwen2-VL-2B and Qwen2-VL-2B-Instruct"),
    },
    "ood": {
        "data": ("HuatuoGPT-Vision eval: 600 MRI train; 300 MRI / CT / X-ray test", "MedVLM-R1 section 4, Table 1"),
        "train_items": (600, "MedVLM-R1 section 4: 600 MRI samples"),
        "test_items": (900, "MedVLM-R1 Table 1: 300 per modality"),
        "num_processes": (2, "MedVLM-R1 section 4: two A100 80GB"),
        "prompts_per_step": (4, "MedVLM-R1 train_script.sh: per-device 1, grad-accum 2, 2 GPUs"),
        "num_generations": (6, "MedVLM-R1 section 4: G = 6 (its script: 4)"),
        "completions_per_step": (24, "MedVLM-R1 (4 prompts x 6)"),
        "max_steps": (300, "MedVLM-R1 section 4: 300 steps"),
        "temperature": (1.0, "MedVLM-R1's trainer: GenerationConfig(temperature=1)"),
        "max_completion_length": (512, "MedVLM-R1 train_script.sh"),
        "max_prompt_length": (512, "MedVLM-R1 train_script.sh (left-truncates longer prompts)"),
        "max_pixels": (401408, "MedVLM-R1 train_script.sh"),
        "dtype": ("bfloat16", "MedVLM-R1 train_script.sh: --bf16 true"),
        "beta": (0.04, "TRL GRPOConfig default of its release"),
        "learning_rate": (1e-6, "TRL GRPOConfig default of its release (section 4: 'as suggested by' R1-V)"),
        "eval_prompt_mode": ("reasoning", "MedVLM-R1 section 4"),
        "baseline_prompt_mode": ("plain", "MedVLM-R1 section 4"),
        "scoring": ("format required, letter in <answer>", "MedVLM-R1 section 4"),
        "baseline_scoring": ("exact match of the letter", "MedVLM-R1 section 4 and its test_qwen2vl_med.py"),
        "seeds": (None, "not reported"),
        "judge": (None, "no semantic reward"),
        "sft_budget": ("as GRPO", "MedVLM-R1 section 4: SFT 'using the same training setting'"),
        "start": ("base", "MedVLM-R1 section 4: 'We adopt Qwen2-VL-2B as our base VLM'"),
        "model": ("Qwen2-VL-2B", "MedVLM-R1 section 4: 'We adopt Qwen2-VL-2B as our base VLM'"),
    },
}

#: Documented differences of the paper profile from the papers: (group, setting) -> reason.
DOCUMENTED = {
    ("zhu", "learning_rate"): "Zhu omits it: 1e-6 as Zhou et al. 2025, whom Zhu follows",
    ("ood", "max_prompt_length"): "MedVLM-R1's script left-truncates prompts over 512 tokens, cutting image tokens; "
                                  "we never truncate (1024)",
    ("zhu", "seeds"): "neither paper reports seeds; three, so that intervals see training noise",
    ("ood", "seeds"): "neither paper reports seeds; three, so that intervals see training noise",
    ("zhu", "sft_budget"): "Zhu is silent: as many items as GRPO's prompts (MedVLM-R1's rule)",
    ("zhu", "judge"): "BioGPT wired by default; BioMistral through grpo.semantic_judge",
    ("zhu", "data"): "Zhu's exact subset is unpublished: drawn with data.seed, ids stored with every run",
    ("ood", "start"): "the instruct model: MedVLM-R1's trainer builds every prompt with maybe_apply_chat_template "
                      "(its grpo_trainer.py), and only Qwen2-VL-2B-Instruct ships a chat template",
}

#: Settings shown for every arm, in table order.
SETTINGS = ("data", "train_items", "test_items", "num_processes", "prompts_per_step", "num_generations",
            "completions_per_step", "max_steps", "epochs", "temperature", "max_completion_length", "max_prompt_length",
            "max_pixels", "dtype", "beta", "learning_rate", "judge", "eval_prompt_mode", "scoring", "seeds",
            "sft_budget", "start", "model")


#: The settings compared with the papers for each kind of arm (a supervised arm has no rollouts, a zero-shot row
#: no training).
_COMMON = ("data", "test_items", "max_pixels", "dtype", "eval_prompt_mode", "scoring", "start", "model")
SHOWN = {
    "grpo": tuple(s for s in SETTINGS if s != "sft_budget"),
    "sft": _COMMON + ("train_items", "num_processes", "seeds", "sft_budget"),
    "zero-shot": _COMMON,
}
SHOWN["lora"] = SHOWN["dpo"] = SHOWN["sft"]

#: The columns of :func:`arms_frame`, in order.
ARM_COLUMNS = ("group", "method", "start", "model", "data", "train_items", "test_items", "num_processes",
               "prompts_per_step", "num_generations", "completions_per_step", "max_steps", "epochs",
               "max_completion_length", "learning_rate", "eval_prompt_mode", "scoring", "seeds", "status")


def _data_name(p: Profile) -> str:
    d = p.data
    if d.source == "pmc-vqa":
        return "PMC-VQA"
    if d.source == "huatuo-eval":
        return "HuatuoGPT-Vision eval"
    return f"synthetic ({', '.join(d.train_modalities)} train)"


def arm_protocol(profile_name: str, arm: str, overrides: dict | None = None) -> dict[str, Any]:
    """What ``arm`` of ``profile_name`` really trains and is scored with (zero-shot rows: 'zero-shot-instruct',
    'zero-shot-base', evaluated with the plain prompt as both papers' baselines)."""
    from medrl_lib.experiments import study
    from medrl_lib.training.budget import (
        count_test_items,
        grpo_prompts_per_step,
        supervised_items_per_step,
        supervised_steps,
    )

    zero_shot = arm.startswith("zero-shot-")
    group = "zhu"
    reason = study.not_applicable(profile_name, arm, overrides)
    if reason:  # listed, never run (study.run_arms skips it)
        method, group = ("zero-shot", "zhu") if zero_shot else study.ARMS[arm][:2]
        return {"arm": arm, "group": group, "method": method, "start": "base",
                **{c: None for c in ARM_COLUMNS if c not in ("group", "method", "start")},
                "status": f"not applicable: {reason}"}
    if zero_shot:
        p = load_profile(profile_name, {**study.group_overrides(profile_name, "zhu", overrides), **(overrides or {})})
        method = "zero-shot"
    else:
        p = study.arm_profile(profile_name, arm, overrides)
        method, group, _ = study.ARMS[arm]
    g, m = p.grpo, p.model
    out: dict[str, Any] = {"arm": arm, "group": group, "method": method, "data": _data_name(p),
                           "train_items": 0 if zero_shot else p.data.train_size, "test_items": count_test_items(p),
                           "max_pixels": m.max_pixels if m.kind == "hub" else p.data.image_size ** 2,
                           "dtype": m.dtype, "seeds": list(p.seeds), "num_processes": p.num_processes,
                           "start": "base" if (arm == "zero-shot-base" or m.init == "base") else "instruct"}
    out["model"] = (Path(m.base if out["start"] == "base" else m.instruct).name if m.kind == "hub"
                    else f"tiny {out['start']} stand-in")
    if method == "grpo":
        prompts = grpo_prompts_per_step(p)
        out.update(prompts_per_step=prompts, num_generations=g.num_generations,
                   completions_per_step=prompts * g.num_generations, max_steps=g.max_steps,
                   epochs=round(g.max_steps * prompts / p.data.train_size, 2), temperature=g.temperature,
                   max_completion_length=g.max_completion_length, max_prompt_length=g.max_prompt_length,
                   beta=g.beta, learning_rate=g.learning_rate, loss_type=g.loss_type,
                   judge=g.semantic_judge if "semantic_reward" in g.reward_weights else None,
                   rewards=list(g.reward_weights), eval_prompt_mode=p.eval.prompt_mode,
                   sft_budget=None)
    elif method in ("sft", "lora", "dpo"):
        s = p.sft
        steps = supervised_steps(p, method)
        items = supervised_items_per_step(p)
        lr = {"sft": s.learning_rate, "lora": s.lora_learning_rate, "dpo": s.dpo_learning_rate}[method]
        out.update(prompts_per_step=items, num_generations=None, completions_per_step=None, max_steps=steps,
                   epochs=round(steps * items / p.data.train_size, 2), temperature=None, max_completion_length=None,
                   max_prompt_length=None, beta=s.dpo_beta if method == "dpo" else None, learning_rate=lr,
                   judge=None, eval_prompt_mode="plain" if s.target == "plain" else p.eval.prompt_mode,
                   sft_budget="as GRPO" if s.budget == "grpo" else f"{steps} steps")
    else:
        out.update(prompts_per_step=None, num_generations=None, completions_per_step=None, max_steps=0, epochs=0,
                   temperature=None, max_completion_length=None, max_prompt_length=None, beta=None,
                   learning_rate=None, judge=None, eval_prompt_mode="plain", sft_budget=None)
    out["scoring"] = ("format required, letter in <answer>" if out["eval_prompt_mode"] == "reasoning"
                      and p.eval.accuracy_requires_format else
                      "letter in <answer>" if out["eval_prompt_mode"] == "reasoning" else "exact match of the letter")
    if m.kind == "hub":
        out["judge"] = out["judge"] and out["judge"].rsplit("/", 1)[-1]
    out["status"] = "runs"
    return out


def arms(profile_name: str) -> list[str]:
    """Every arm of the study, the zero-shot rows first."""
    from medrl_lib.experiments import study

    return ["zero-shot-instruct", "zero-shot-base", *study.ARMS]


def applicability_summary(entries: list[dict[str, Any]]) -> str:
    """One sentence on the arms of :func:`protocol` that do not run on the profile, and why.

    >>> applicability_summary([{"arm": "sft", "status": "runs"}])
    'Every arm runs on this profile.'
    >>> applicability_summary([{"arm": "grpo-base", "status": "not applicable: no base checkpoint"}])
    'Not applicable on this profile, skipped by every chapter and by `medrl runs`: grpo-base (no base checkpoint).'
    """
    skipped = [(e["arm"], e["status"].split(": ", 1)[1]) for e in entries if e["status"] != "runs"]
    if not skipped:
        return "Every arm runs on this profile."
    return ("Not applicable on this profile, skipped by every chapter and by `medrl runs`: "
            + "; ".join(f"{arm} ({why})" for arm, why in skipped) + ".")


def protocol(profile_name: str, overrides: dict | None = None) -> list[dict[str, Any]]:
    """:func:`arm_protocol` of every arm."""
    return [arm_protocol(profile_name, a, overrides) for a in arms(profile_name)]


def _same(ours: Any, paper: Any, setting: str) -> bool:
    if paper is None or ours is None:
        return ours == paper
    if setting == "seeds":
        return False
    if setting == "data":
        return str(paper).lower().startswith(str(ours).lower())
    if setting == "model":  # the paper's family and size, base or instruct
        return str(ours).startswith(str(paper))
    if setting == "judge":
        return any(str(ours).lower() in part.lower() for part in str(paper).split("/"))
    if isinstance(paper, float) or isinstance(ours, float):
        return math.isclose(float(ours), float(paper))
    return ours == paper


def protocol_table(profile_name: str, overrides: dict | None = None):
    """One row per (arm, setting) that the papers give: ours, the paper's, its source, same / differs and the
    reason of a difference (documented, or the profile's scale choice)."""
    import pandas as pd

    p = load_profile(profile_name, overrides)
    rows = []
    for entry in protocol(profile_name, overrides):
        if entry["status"] != "runs":  # not applicable: nothing of it runs to compare
            continue
        group = entry["group"]
        method = entry["method"]
        for setting in SETTINGS:
            if setting not in PAPER[group]:
                continue
            if setting not in SHOWN[method] or (setting == "judge" and entry.get("judge") is None):
                continue
            baseline = method != "grpo" and setting in ("eval_prompt_mode", "scoring")
            paper, source = PAPER[group][f"baseline_{setting.replace('eval_', '')}" if baseline else setting]
            ours = entry.get(setting)
            same = _same(ours, paper, setting)
            reason = ""
            if not same:
                reason = DOCUMENTED.get((group, setting)) or (
                    f"{'start model' if setting == 'model' else 'scale'} choice of the {p.name} profile "
                    f"(configs/{p.name}.yaml)" if p.name != "paper"
                    else "UNDOCUMENTED")
            rows.append({"group": "E1-E5 (Zhu)" if group == "zhu" else "E6 (MedVLM-R1)", "arm": entry["arm"],
                         "setting": setting, "ours": _show(ours), "paper": _show(paper), "source": source,
                         "same": "same" if same else "differs", "reason": reason})
    return pd.DataFrame(rows)


def arms_frame(profile_name: str, overrides: dict | None = None):
    """:func:`protocol` as a table, one row per arm, the columns of :data:`ARM_COLUMNS`."""
    import pandas as pd

    return pd.DataFrame(protocol(profile_name, overrides)).set_index("arm")[list(ARM_COLUMNS)]


def differences_summary(table) -> str:
    """One sentence counting the settings of :func:`protocol_table` as in the paper, differing, and undocumented.

    >>> import pandas as pd
    >>> differences_summary(pd.DataFrame({"same": ["same", "differs"], "reason": ["", "a choice"]}))
    '2 settings compared: 1 as in the paper, 1 differ (0 without a documented reason).'
    """
    n_diff = int((table.same == "differs").sum())
    n_undoc = int((table.reason == "UNDOCUMENTED").sum())
    return (f"{len(table)} settings compared: {len(table) - n_diff} as in the paper, {n_diff} differ "
            f"({n_undoc} without a documented reason).")


def _show(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, list):
        return ", ".join(map(str, v))
    return str(v)
