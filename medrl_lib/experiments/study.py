"""The study: every arm of the six experiments as profile overrides, run (or loaded) by one function.

Zhu et al.'s experiments (E1-E5) train on all modalities (PMC-VQA is mixed): results group 'zhu'; MedVLM-R1's
(E6) trains on MRI only and tests on MRI, CT and X-ray: results group 'ood'. Arms are shared between notebooks:
E1's instruct arm is the GRPO baseline of E2, E4 and E5, so it trains once and every notebook reads the same
stored runs.

>>> sorted(ARMS)[:3]
['dpo', 'dr-grpo', 'grpo-base']
>>> arm_overrides("dr-grpo")["grpo.loss_type"]
'dr_grpo'
"""

from __future__ import annotations

from typing import Any

from medrl_lib.common.console import progress
from medrl_lib.config import Profile, load_profile
from medrl_lib.data.splits import make_splits
from medrl_lib.experiments.results import Run
from medrl_lib.experiments.runs import (Planned, grpo_arm, grpo_plan, home_prompt, panel_run, sft_arm, sft_plan, zero_shot_arm,
                   zero_shot_plan, zero_shot_seed)

#: Zhu's data: all modalities in training (the profile's default trains on MRI only, as MedVLM-R1).
ZHU_DATA: dict[str, Any] = {"data.train_modalities": ["MRI", "CT", "X-ray"]}

_RULES = {"format_reward": 1.0, "accuracy_reward": 1.0}
_SA = {**_RULES, "semantic_reward": 1.0}

#: arm -> (method, results group, profile overrides); the group's data and protocol come from
#: :func:`group_overrides`.
ARMS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "grpo-base": ("grpo", "zhu", {"model.init": "base"}),
    "grpo-instruct": ("grpo", "zhu", {}),
    "grpo-sa": ("grpo", "zhu", {"grpo.reward_weights": _SA}),
    "grpo-sa-len": ("grpo", "zhu", {"grpo.reward_weights": _SA}),
    "grpo-sa-ecr": ("grpo", "zhu", {"grpo.reward_weights": {**_SA, "ecr_reward": 1.0}}),
    "grpo-sa-cwr": ("grpo", "zhu", {"grpo.reward_weights": {**_SA, "cwr_reward": 1.0}}),
    "dr-grpo": ("grpo", "zhu", {"grpo.loss_type": "dr_grpo", "grpo.scale_rewards": "none"}),
    "sft": ("sft", "zhu", {}),
    "lora": ("lora", "zhu", {}),
    "dpo": ("dpo", "zhu", {}),
    "ood-grpo": ("grpo", "ood", {}),
    "ood-sft": ("sft", "ood", {}),
}

#: E3's arms: they run with the profile's ``length_rewards`` settings (room for the reasoning to grow). Its +SA
#: baseline is a separate arm; where that section is empty it is E2's +SA run, shared (``LENGTH_TWIN``).
LENGTH_ARMS: tuple[str, ...] = ("grpo-sa-len", "grpo-sa-ecr", "grpo-sa-cwr")
LENGTH_TWIN: dict[str, str] = {"grpo-sa-len": "grpo-sa"}

#: The zero-shot runs the chapters read: (results group, arm, start model, prompt). The instruct start with the
#: reasoning prompt (:func:`zero_shot`) and with the plain prompt (:func:`baseline`) in both groups, and the base start
#: with the reasoning prompt in Zhu's group (the summary's calibration table).
ZERO_SHOT = (("zhu", "instruct-zero-shot", "instruct", "reasoning"), ("zhu", "zero-shot-instruct", "instruct", "plain"),
             ("zhu", "base-zero-shot", "base", "reasoning"), ("ood", "instruct-zero-shot", "instruct", "reasoning"),
             ("ood", "zero-shot-instruct", "instruct", "plain"))

#: Readable labels of the arms, for tables and figures.
LABELS = {
    "grpo-base": "base + GRPO", "grpo-instruct": "instruct + GRPO", "grpo-sa": "+SA", "grpo-sa-len": "+SA (E3 settings)", "grpo-sa-ecr": "+SA+ECR",
    "grpo-sa-cwr": "+SA+CWR", "dr-grpo": "Dr.GRPO", "sft": "full SFT", "lora": "LoRA", "dpo": "DPO",
    "ood-grpo": "GRPO (MRI)", "ood-sft": "SFT (MRI)",
    "zero-shot": "instruct zero-shot (plain prompt)", "start": "instruct start (reasoning prompt)",
    "base-start": "base start (reasoning prompt)", "ood-start": "instruct start (reasoning prompt, E6 test)",
    "ood-zero-shot": "instruct zero-shot (plain prompt, E6 test)",
}

#: Our arm -> the row of Zhu's Table 1 it reproduces.
ZHU_ROWS = {"grpo-base": "base + GRPO", "grpo-instruct": "instruct + GRPO", "grpo-sa": "+SA", "grpo-sa-len": "+SA",
            "grpo-sa-ecr": "+SA+ECR", "grpo-sa-cwr": "+SA+CWR", "dr-grpo": "Dr.GRPO", "sft": "full SFT",
            "lora": "LoRA", "dpo": "DPO", "zero-shot": "Qwen2-VL-2B-Instruct zero-shot",
            "zero-shot-instruct": "Qwen2-VL-2B-Instruct zero-shot"}
#: Arm -> its row in MedVLM-R1's Table 1 (:data:`medrl_lib.experiments.reference.MEDVLM_R1_TABLE1`).
OOD_ROWS = {"zero-shot": "Qwen2-VL-2B", "ood-grpo": "GRPO-2B", "ood-sft": "SFT-2B"}


def arm_overrides(arm: str) -> dict[str, Any]:
    """The profile overrides that define ``arm``."""
    if arm not in ARMS:
        raise ValueError(f"unknown arm {arm!r}; arms: {', '.join(ARMS)}")
    return dict(ARMS[arm][2])




def group_overrides(profile: str, group: str, overrides: dict | None = None) -> dict[str, Any]:
    """Protocol overrides of the results ``group`` ('zhu' or 'ood') for ``profile``: on synthetic data Zhu's
    experiments train on every modality; E6 runs the profile's ``medvlm_r1`` section (on the paper profile
    MedVLM-R1's data and settings: the HuatuoGPT-Vision evaluation data, 2 processes, 300 steps, G = 6 ...)."""
    p = load_profile(profile, overrides)
    synthetic = p.data.source == "synthetic"
    if group == "zhu":
        return dict(ZHU_DATA) if synthetic else {}
    return dict(p.medvlm_r1)


def arm_profile(profile: str, arm: str, overrides: dict | None = None) -> Profile:
    """The resolved profile of ``arm``: the named profile, its group's protocol, the arm's overrides, then the
    caller's."""
    arm_only = arm_overrides(arm)  # raises on an unknown arm
    data = group_overrides(profile, ARMS[arm][1], overrides)
    length = dict(load_profile(profile, overrides).length_rewards) if arm in LENGTH_ARMS else {}
    return load_profile(profile, {**data, **length, **arm_only, **(overrides or {})})


def stored_arm(profile: str, arm: str, overrides: dict | None = None) -> str:
    """The arm whose runs ``arm`` reads: its twin where the profile gives E3 no settings of its own
    (:data:`LENGTH_TWIN`), else itself."""
    if arm in LENGTH_TWIN and not load_profile(profile, overrides).length_rewards:
        return LENGTH_TWIN[arm]
    return arm


def not_applicable(profile: str, arm: str, overrides: dict | None = None) -> str | None:
    """Why ``arm`` cannot run on ``profile``, or None. ``arm``: an arm of :data:`ARMS`, a zero-shot arm of
    :data:`ZERO_SHOT`, or a row ``group/arm``. An arm that starts from the base checkpoint is not applicable where the
    profile names none (``model.base`` empty: Qwen3-VL publishes instruct and thinking checkpoints only).

    >>> not_applicable("smoke", "grpo-base", {"model.base": ""})
    'no base checkpoint: model.base is empty (the family of the instruct start publishes none)'
    >>> not_applicable("smoke", "zhu/grpo-instruct", {"model.base": ""}) is None
    True
    """
    arm = arm.split("/")[-1]
    # the start of a zero-shot row, from ZERO_SHOT, and of the Protocol chapter's 'zero-shot-<start>' rows
    starts = {**{a: which for _, a, which, _ in ZERO_SHOT}, "zero-shot-base": "base", "zero-shot-instruct": "instruct"}
    if arm in ARMS:
        start = ARMS[arm][2].get("model.init", "instruct")
    elif arm in starts:
        start = starts[arm]
    else:
        raise ValueError(f"unknown arm {arm!r}; arms: {', '.join(ARMS)}")
    if start == "base" and not load_profile(profile, overrides).model.base:
        return "no base checkpoint: model.base is empty (the family of the instruct start publishes none)"
    return None


def applicable(profile: str, arms: list[str], overrides: dict | None = None) -> list[str]:
    """The arms of ``arms`` that can run on ``profile`` (:func:`not_applicable`), in their order."""
    return [a for a in arms if not_applicable(profile, a, overrides) is None]


#: Chapter (notebook stem) -> the arms its question needs: where one is not applicable, so is the chapter.
CHAPTER_NEEDS: dict[str, tuple[str, ...]] = {"01_initialization": ("grpo-base", "grpo-instruct")}


class NotApplicable(RuntimeError):
    """A chapter or arm that the profile cannot run (:func:`not_applicable`)."""


def chapter_not_applicable(profile: str, chapter: str, overrides: dict | None = None) -> str | None:
    """Why the chapter ``chapter`` (a notebook's stem) cannot be run on ``profile``, or None (:data:`CHAPTER_NEEDS`).
    ``medrl book`` writes such a chapter as a page that says so instead of running it.

    >>> chapter_not_applicable("smoke", "01_initialization", {"model.base": ""})
    'base + GRPO is not applicable: no base checkpoint: model.base is empty (the family of the instruct start publishes none)'
    >>> chapter_not_applicable("smoke", "01_initialization") is None
    True
    """
    for arm in CHAPTER_NEEDS.get(chapter, ()):
        reason = not_applicable(profile, arm, overrides)
        if reason:
            return f"{LABELS.get(arm, arm)} is not applicable: {reason}"
    return None


def require_chapter(profile: str, chapter: str, overrides: dict | None = None) -> None:
    """Raise :class:`NotApplicable` where ``chapter`` cannot run on ``profile`` (a notebook run by hand says why
    at once; ``medrl book`` never runs it there)."""
    reason = chapter_not_applicable(profile, chapter, overrides)
    if reason:
        raise NotApplicable(f"chapter {chapter} on profile {profile!r}: {reason}")


def run_arm(profile: str, arm: str, seed: int, overrides: dict | None = None, force: bool = False, *,
            wait: bool = True) -> Run:
    """Train and evaluate ``arm`` with ``seed`` (or load it from the results store; ``wait``:
    :func:`medrl_lib.experiments.results.cached_run`)."""
    arm = stored_arm(profile, arm, overrides)
    p = arm_profile(profile, arm, overrides)
    method, group, _ = ARMS[arm]
    if method == "grpo":
        return grpo_arm(p, group, arm, seed, force=force, wait=wait)
    return sft_arm(p, group, arm, seed, method, force=force, wait=wait)


def run_arms(profile: str, arms: list[str], seeds: list[int], overrides: dict | None = None,
             force: bool = False) -> dict[str, list[Run]]:
    """``{arm: [run per seed]}``, reporting one progress line per run (trained or loaded; see
    :func:`medrl_lib.common.console.progress`). An arm not applicable on the profile (:func:`not_applicable`) is left out
    with a line saying why."""
    out: dict[str, list[Run]] = {}
    for arm in arms:
        reason = not_applicable(profile, arm, overrides)
        if reason:  # skipped, not failed; the Protocol chapter lists it
            progress(f"{LABELS.get(arm, arm)}: not applicable on this profile ({reason})")
            continue
        out[arm] = []
        for seed in seeds:
            run = run_arm(profile, arm, seed, overrides, force)
            how = "loaded" if run.reused else f"trained in {run.metrics.get('time/wall_s', 0):.0f} s"
            progress(f"{LABELS.get(arm, arm)} seed {seed}: {how}, accuracy {run.metrics['eval/accuracy/all']:.1f}%")
            out[arm].append(run)
    return out


def zero_shot(profile: str, which: str = "instruct", group: str = "zhu", overrides: dict | None = None,
              force: bool = False) -> Run:
    """The start model ``which`` evaluated without training with the reasoning prompt and strict scoring, on
    ``group``'s test items: the reference for "GRPO raises accuracy and format" (arm ``<which>-zero-shot``).
    The papers' zero-shot rows are :func:`baseline`."""
    p = group_profile(profile, group, overrides)
    return zero_shot_arm(p, group, f"{which}-zero-shot", which, prompt_mode="reasoning", force=force)


def baseline(profile: str, which: str = "instruct", group: str = "zhu", overrides: dict | None = None,
             force: bool = False) -> Run:
    """The papers' zero-shot row: the start model ``which`` asked with the plain prompt ("{Question} Your task:
    provide the correct single-letter choice") and scored by exact match (MedVLM-R1 section 4; Zhu's 47.29 row),
    arm ``zero-shot-<which>``."""
    p = group_profile(profile, group, overrides)
    return zero_shot_arm(p, group, f"zero-shot-{which}", which, prompt_mode="plain", force=force)


def splits(profile: str, group: str = "zhu", overrides: dict | None = None):
    """The (train, test) items of the results ``group`` ('zhu' or 'ood'), the same for every arm of it."""
    return make_splits(group_profile(profile, group, overrides))


def test_split(profile: str, group: str = "zhu", overrides: dict | None = None):
    """The test items of the results ``group`` (the same for every arm of it)."""
    return splits(profile, group, overrides)[1]


def group_profile(profile: str, group: str, overrides: dict | None = None) -> Profile:
    """The profile of the results ``group``'s zero-shot rows and splits: the named profile, the group's protocol
    (:func:`group_overrides`), then the caller's overrides."""
    return load_profile(profile, {**group_overrides(profile, group, overrides), **(overrides or {})})


def arm_plan(profile: str, arm: str, seed: int, overrides: dict | None = None) -> Planned:
    """The run :func:`run_arm` trains or loads for ``arm`` and ``seed`` (its twin's, where it reads one)."""
    arm = stored_arm(profile, arm, overrides)
    p = arm_profile(profile, arm, overrides)
    method, group, _ = ARMS[arm]
    return grpo_plan(p, group, arm, seed) if method == "grpo" else sft_plan(p, group, arm, seed, method)


def zero_shot_row(profile: str, group: str, arm: str, overrides: dict | None = None,
                  seed: int | None = None) -> tuple[Profile, Planned, str, str]:
    """``(profile, planned run, start model, prompt)`` of the zero-shot row ``(group, arm)`` of :data:`ZERO_SHOT`."""
    which, prompt = next((w, pm) for g, a, w, pm in ZERO_SHOT if (g, a) == (group, arm))
    p = group_profile(profile, group, overrides)
    return p, zero_shot_plan(p, group, arm, which, seed=seed, prompt_mode=prompt), which, prompt


def panel_arm(profile: str, arm: str, seed: int, overrides: dict | None = None, force: bool = False, *,
              wait: bool = True) -> Run:
    """The panel scores of ``arm``'s run with ``seed`` (:func:`medrl_lib.experiments.runs.panel_run`, from the run's kept
    model; the run trains first where the store lacks it), asked with the prompt of its home test."""
    run_arm(profile, arm, seed, overrides, wait=wait)
    planned = arm_plan(profile, arm, seed, overrides)
    method = ARMS[stored_arm(profile, arm, overrides)][0]
    return panel_run(planned, planned.path / "model", home_prompt(planned.profile, method), force=force, wait=wait)


def panel_zero_shot(profile: str, group: str, arm: str, overrides: dict | None = None, force: bool = False, *,
                    wait: bool = True) -> Run:
    """The panel scores of the zero-shot row ``(group, arm)`` of :data:`ZERO_SHOT`: its start model, its prompt."""
    from medrl_lib.training.standins import ensure_start_model

    p, planned, which, prompt = zero_shot_row(profile, group, arm, overrides)
    zero_shot_arm(p, group, arm, which, prompt_mode=prompt, wait=wait)
    model = ensure_start_model(p, which, seed=zero_shot_seed(p, None))
    return panel_run(planned, model, prompt, force=force, wait=wait)


#: The Transfer chapter's rows: the trained arms and the zero-shot rows, each with the row it is compared with as
#: its start and as its supervised baseline (``None``: the row is itself one of them).
TRANSFER_ROWS: dict[str, tuple[str, str | None, str | None]] = {
    "zhu/base-zero-shot": ("base-start", None, None),
    "zhu/instruct-zero-shot": ("start", None, None),
    "zhu/zero-shot-instruct": ("zero-shot", None, None),
    **{f"zhu/{arm}": (arm, "zhu/base-zero-shot" if arm == "grpo-base" else "zhu/instruct-zero-shot", "zhu/sft")
       for arm in ("grpo-base", "grpo-instruct", "grpo-sa", "grpo-sa-ecr", "grpo-sa-cwr", "dr-grpo")},
    "zhu/sft": ("sft", "zhu/zero-shot-instruct", None),
    "zhu/lora": ("lora", "zhu/zero-shot-instruct", "zhu/sft"),
    "zhu/dpo": ("dpo", "zhu/zero-shot-instruct", "zhu/sft"),
    "ood/instruct-zero-shot": ("ood-start", None, None),
    "ood/zero-shot-instruct": ("ood-zero-shot", None, None),
    "ood/ood-grpo": ("ood-grpo", "ood/instruct-zero-shot", "ood/ood-sft"),
    "ood/ood-sft": ("ood-sft", "ood/zero-shot-instruct", None),
}


def transfer_rows(profile: str, overrides: dict | None = None) -> dict[str, tuple[str, str | None, str | None]]:
    """:data:`TRANSFER_ROWS` that apply on ``profile``: a row not applicable is left out, and a reference row not
    applicable becomes ``None`` (no difference to it is shown)."""
    def ok(row):
        return row is not None and not_applicable(profile, row, overrides) is None

    return {row: (label, start if ok(start) else None, sft if ok(sft) else None)
            for row, (label, start, sft) in TRANSFER_ROWS.items() if ok(row)}


def transfer(profile: str, seeds: list[int], overrides: dict | None = None, force: bool = False) -> dict[str, list[Run]]:
    """``{row of TRANSFER_ROWS: [panel Run per seed]}`` (one run for a zero-shot row), training or scoring what the
    store lacks; one progress line per row."""
    out: dict[str, list[Run]] = {}
    for row in transfer_rows(profile, overrides):
        group, arm = row.split("/")
        if arm in ARMS:
            out[row] = [panel_arm(profile, arm, seed, overrides, force) for seed in seeds]
        else:
            out[row] = [panel_zero_shot(profile, group, arm, overrides, force)]
        how = "loaded" if all(r.reused for r in out[row]) else "scored"
        progress(f"panel {row}: {how}")
    return out
