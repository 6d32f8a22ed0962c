"""The training budget of every method, from a profile alone (no training library is imported here, so that the
book's chapters can read a run's budget without loading transformers): prompts per GRPO step, items per supervised
step, the steps a supervised baseline trains, and the test items a run answers."""

from __future__ import annotations

from medrl_lib.config import Profile

#: What :func:`medrl_lib.training.train.fit` trains: GRPO and the supervised baselines of Zhu section 4 (full SFT, LoRA, DPO).
METHODS = ("grpo", "sft", "lora", "dpo")
#: The supervised baselines among :data:`METHODS`.
SUPERVISED_METHODS = METHODS[1:]


def grpo_prompts_per_step(profile: Profile) -> int:
    """Prompts per optimizer step: prompts per device x gradient accumulation x processes (Zhu: 1 x 2 x 4 = 8;
    MedVLM-R1: 1 x 2 x 2 = 4), each sampled ``num_generations`` times."""
    g = profile.grpo
    return g.prompts_per_device * g.gradient_accumulation_steps * profile.num_processes


def supervised_items_per_step(profile: Profile) -> int:
    """Items per optimizer step of a supervised baseline: items per device x processes."""
    return profile.sft.per_device_train_batch_size * profile.num_processes


def supervised_steps(profile: Profile, method: str) -> int:
    """Optimizer steps of a supervised baseline ('sft', 'lora' or 'dpo'). With ``sft.budget: grpo`` it sees as many
    items as the GRPO arm of the same protocol sees prompts (MedVLM-R1 trains its SFT baseline "using the same
    training setting"): ceil(GRPO steps x prompts per step / items per step); with 'steps', ``sft.max_steps``
    (``sft.dpo_max_steps`` for DPO).

    >>> from medrl_lib.config import load_profile
    >>> p = load_profile("paper")
    >>> supervised_steps(p, "sft"), supervised_steps(load_profile("paper", {**p.medvlm_r1}), "dpo")
    (1500, 300)
    """
    s = profile.sft
    if s.budget == "steps":
        return s.dpo_max_steps if method == "dpo" else s.max_steps
    prompts = profile.grpo.max_steps * grpo_prompts_per_step(profile)
    return -(-prompts // supervised_items_per_step(profile))


def count_test_items(profile: Profile) -> int:
    """Test items of a resolved profile: PMC-VQA's ``data.test_size``, else ``test_per_modality`` per modality."""
    d = profile.data
    return d.test_size if d.source == "pmc-vqa" else d.test_per_modality * len(d.test_modalities)
