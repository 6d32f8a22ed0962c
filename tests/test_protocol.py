"""Both papers' protocols, as each arm really resolves them (not the YAML): one test per item of the issue."""

import json

import pytest

from medrl_lib.config import ConfigError, load_profile
from medrl_lib.experiments import study
from medrl_lib.experiments.protocol import arm_protocol, protocol_table


# 1. Prompts per step in the papers' unit; TRL's completions derived ------------------------------------------

@pytest.mark.parametrize("arm, prompts, completions, g", [
    ("grpo-instruct", 8, 64, 8),   # Zhu: 1 prompt x grad-accum 2 x 4 GPUs, 8 generations each
    ("dr-grpo", 8, 64, 8),
    ("ood-grpo", 4, 24, 6),        # MedVLM-R1: 1 x 2 x 2 GPUs, G = 6
])
def test_prompts_and_completions_per_step(arm, prompts, completions, g):
    from medrl_lib.training.train import grpo_kwargs

    p = study.arm_profile("paper", arm)
    kw = grpo_kwargs(p, "out")
    per_step = kw["per_device_train_batch_size"] * kw["gradient_accumulation_steps"] * p.num_processes
    assert (per_step, kw["num_generations"], per_step // kw["num_generations"]) == (completions, g, prompts)
    entry = arm_protocol("paper", arm)
    assert (entry["prompts_per_step"], entry["completions_per_step"]) == (prompts, completions)


# 2. E6 runs MedVLM-R1's protocol --------------------------------------------------------------------------

def test_e6_runs_medvlm_r1_settings():
    p = study.arm_profile("paper", "ood-grpo")
    assert (p.num_processes, p.grpo.max_steps, p.grpo.num_generations) == (2, 300, 6)
    assert (p.grpo.max_completion_length, p.grpo.max_prompt_length) == (512, 1024)  # 512 prompt: would truncate
    assert (p.data.source, p.data.train_size, p.data.test_per_modality) == ("huatuo-eval", 600, 300)
    zhu = study.arm_profile("paper", "grpo-instruct")  # E1-E5 keep Zhu's
    assert (zhu.num_processes, zhu.grpo.max_steps, zhu.grpo.num_generations) == (4, 1500, 8)
    assert arm_protocol("paper", "ood-grpo")["epochs"] == 2.0  # MedVLM-R1's script: 2 epochs of 600


def test_the_e6_section_rejects_unknown_settings(tmp_path):
    from medrl_lib.config import profile_path

    text = profile_path("paper").read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("  grpo.max_steps: 300", "  grpo.max_stepz: 300"))
    with pytest.raises(ConfigError, match="medvlm_r1.grpo.max_stepz"):
        load_profile(bad)


# 3. Zero-shot rows: the plain prompt, exact match ---------------------------------------------------------

@pytest.mark.parametrize("arm", ["zero-shot-instruct", "zero-shot-base"])
def test_zero_shot_rows_use_the_plain_prompt(arm):
    entry = arm_protocol("paper", arm)
    assert (entry["eval_prompt_mode"], entry["scoring"]) == ("plain", "exact match of the letter")
    assert entry["start"] == arm.rsplit("-", 1)[1]


def test_baseline_and_start_are_separate_runs(monkeypatch):
    seen = []
    monkeypatch.setattr(study, "zero_shot_arm", lambda p, exp, arm, which, prompt_mode, force: seen.append((arm, prompt_mode)))
    study.baseline("smoke")
    study.zero_shot("smoke")
    assert seen == [("zero-shot-instruct", "plain"), ("instruct-zero-shot", "reasoning")]


# 4. Supervised baselines load as GRPO does --------------------------------------------------------------

@pytest.mark.parametrize("distributed, dtype", [(True, "bfloat16"), (False, "float32")])
def test_supervised_baselines_load_like_grpo(distributed, dtype):
    from medrl_lib.training.train import supervised_load

    load = supervised_load(load_profile("paper"), distributed)
    assert (load["dtype"], load["max_pixels"], load["attn_implementation"]) == (dtype, 401408, "sdpa")
    assert load["chat_template_from"] == "Qwen/Qwen2-VL-2B-Instruct"


def test_run_sft_passes_the_load_settings(monkeypatch, smoke_profile):
    from medrl_lib.training import train

    seen = {}

    def fake(path, **kwargs):
        seen.update(kwargs)
        raise RuntimeError("stop")

    monkeypatch.setattr(train, "load_model", fake)
    from medrl_lib.data.splits import make_splits

    with pytest.raises(RuntimeError, match="stop"):
        train.run_sft("m", make_splits(smoke_profile)[0], output_dir="o", lr=1e-3, max_steps=1,
                      load={"dtype": "bfloat16", "max_pixels": 401408})
    assert seen == {"dtype": "bfloat16", "max_pixels": 401408}


# 10. Three seeds; 13. equal data budgets ---------------------------------------------------------------

def test_paper_runs_three_seeds():
    assert load_profile("paper").seeds == (0, 1, 2)


@pytest.mark.parametrize("arm, steps, epochs", [
    ("sft", 1500, 1.2),      # Zhu: 8 items a step (2 x 4 GPUs) for GRPO's 12,000 prompts
    ("dpo", 1500, 1.2),
    ("ood-sft", 300, 2.0),   # MedVLM-R1: GRPO's 1,200 prompts = 2 epochs of 600, not 20
])
def test_supervised_budget_follows_grpo(arm, steps, epochs):
    entry = arm_protocol("paper", arm)
    assert (entry["max_steps"], entry["epochs"]) == (steps, epochs)


def test_budget_in_steps_is_kept_on_request():
    from medrl_lib.training.train import supervised_steps

    p = load_profile("paper", {"sft.budget": "steps", "sft.max_steps": 77, "sft.dpo_max_steps": 5})
    assert (supervised_steps(p, "sft"), supervised_steps(p, "dpo")) == (77, 5)


# 12. The length rewards have room ------------------------------------------------------------------------

def test_length_target_above_zhus_ecr_length():
    g = load_profile("paper").grpo
    assert 338 < g.length_target_tokens < g.max_completion_length  # Zhu's ECR reasoning: 338 tokens


# The Protocol page and `medrl protocol` ----------------------------------------------------------------

def test_paper_protocol_has_no_undocumented_difference():
    table = protocol_table("paper")
    assert not (table.reason == "UNDOCUMENTED").any(), table[table.reason == "UNDOCUMENTED"]
    assert (table.same == "same").sum() > 100


def test_cpu_protocol_names_its_scale_choices():
    table = protocol_table("cpu")
    differs = table[table.same == "differs"]
    assert len(differs) > 0 and differs.reason.str.len().gt(0).all()


def test_protocol_json(capsys):
    from medrl_lib.cli.main import main

    assert main(["protocol", "--profile", "paper", "--json"]) == 0
    rows = [json.loads(l) for l in capsys.readouterr().out.splitlines()]
    arms = [r["arm"] for r in rows]
    assert arms[:2] == ["zero-shot-instruct", "zero-shot-base"] and set(study.ARMS) <= set(arms)
    keys = {"method", "prompts_per_step", "completions_per_step", "num_generations", "max_steps", "num_processes",
            "max_pixels", "eval_prompt_mode", "seeds", "train_items", "test_items"}
    assert all(keys <= set(r) for r in rows)


# 14. Which model E6 starts from: decided, with the evidence, and shown

def test_e6_start_is_documented():
    table = protocol_table("paper")
    row = table[(table.arm == "ood-grpo") & (table.setting == "start")].iloc[0]
    assert (row.ours, row.paper, row.same) == ("instruct", "base", "differs")
    assert "chat template" in row.reason
