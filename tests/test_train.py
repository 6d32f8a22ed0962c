"""Trainers on the smoke profile's tiny model: SFT (full, LoRA), DPO, GRPO resume, reward wiring, bad rows."""

import dataclasses
import json
from pathlib import Path

import datasets
import pytest
import torch
from transformers import TrainerCallback

from medrl_lib.data.schema import DataError


@pytest.fixture(scope="module")
def setup(smoke_profile):
    from medrl_lib.data.splits import make_splits
    from medrl_lib.training.standins import ensure_start_model

    train, _ = make_splits(smoke_profile)
    return smoke_profile, train, ensure_start_model(smoke_profile, "base")


def _weights(model, name_part):
    return {k: v.detach().clone() for k, v in model.state_dict().items() if name_part in k}


def test_sft_full_moves_weights_and_logs_loss(setup, tmp_path):
    from medrl_lib.models.loading import load_model
    from medrl_lib.training.train import run_sft

    profile, train, base = setup
    before = _weights(load_model(base)[0], "q_proj")
    res = run_sft(base, train, output_dir=str(tmp_path), lr=1e-3, max_steps=3, batch_size=4)
    model, log, trainer = res["model"], res["log_history"], res["trainer"]
    after = _weights(model, "q_proj")
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert [e["loss"] for e in log if "loss" in e]
    a = trainer.args  # set by us, not left to TRL's defaults (which drift between releases)
    assert (a.loss_type, a.completion_only_loss, a.max_length, a.packing) == ("nll", True, None, False)
    assert (a.bf16, a.gradient_checkpointing, a.learning_rate, a.max_steps) == (False, False, 1e-3, 3)


def test_sft_lora_trains_adapters_and_merges(setup, tmp_path):
    from medrl_lib.config import SFTSettings
    from medrl_lib.models.loading import load_model
    from medrl_lib.training.train import run_sft

    profile, train, base = setup
    base_model = load_model(base)[0]
    lora = SFTSettings(lora_r=4, lora_alpha=8, lora_dropout=0.0)
    model = run_sft(base, train, output_dir=str(tmp_path), lr=1e-2, max_steps=3, batch_size=4, lora=lora)["model"]
    assert type(model).__name__ == "Qwen2VLForConditionalGeneration"  # merged back: a plain model again
    q_before, q_after = _weights(base_model, "language_model.layers.0.self_attn.q_proj.weight"), \
        _weights(model, "language_model.layers.0.self_attn.q_proj.weight")
    assert any(not torch.equal(q_before[k], q_after[k]) for k in q_before)  # the merged adapter changed q_proj
    mlp_b, mlp_a = _weights(base_model, "mlp.gate_proj"), _weights(model, "mlp.gate_proj")
    assert all(torch.equal(mlp_b[k], mlp_a[k]) for k in mlp_b)  # modules without adapters are untouched


def test_preference_pairs_prefer_the_gold_letter(setup):
    from medrl_lib.training.train import preference_pairs

    _, train, _ = setup
    pairs = preference_pairs(train, "reasoning", seed=0)
    for row, pair in zip(train, pairs):
        chosen, rejected = pair["chosen"][0]["content"], pair["rejected"][0]["content"]
        assert chosen.endswith(f"<answer>{row['answer']}</answer>")
        wrong = rejected[-10]
        assert wrong != row["answer"] and ord(wrong) - 65 < len(row["options"])  # a real, wrong option
        assert chosen.split("<answer>")[0] == rejected.split("<answer>")[0]  # same reasoning, answer differs


def test_dpo_runs_and_logs_preference_metrics(setup, tmp_path):
    from medrl_lib.training.train import run_dpo

    _, train, base = setup
    res = run_dpo(base, train, output_dir=str(tmp_path), lr=1e-3, max_steps=2, beta=0.1, batch_size=4)
    log, trainer = res["log_history"], res["trainer"]
    assert any("rewards/accuracies" in e or "rewards/margins" in e for e in log)
    a = trainer.args  # the standard sigmoid DPO loss, set explicitly
    assert (list(a.loss_type), a.label_smoothing, a.beta, a.max_length) == (["sigmoid"], 0.0, 0.1, None)
    assert (a.bf16, a.gradient_checkpointing, a.max_steps) == (False, False, 2)


def test_bad_row_is_rejected_before_training(setup, tmp_path):
    from medrl_lib.training.train import run_grpo

    profile, train, base = setup
    rows = train.to_list()
    rows[3]["answer"] = chr(65 + len(rows[3]["options"]))  # gold letter just past its options
    bad = datasets.Dataset.from_list(rows, features=train.features)
    with pytest.raises(DataError, match=rows[3]["id"]):
        run_grpo(profile, base, bad, str(tmp_path))


def test_reward_funcs_follow_the_profile(smoke_profile):
    from medrl_lib.training.reward_funcs import build_reward_funcs

    g = dataclasses.replace(smoke_profile.grpo, reward_weights={"format_reward": 1.0, "accuracy_reward": 1.0,
                                                                "semantic_reward": 0.5, "cwr_reward": 0.3})
    funcs = build_reward_funcs(dataclasses.replace(smoke_profile, grpo=g))
    assert [getattr(f, "__name__") for f in funcs] == ["format_reward", "accuracy_reward", "semantic_reward",
                                                       "cwr_reward"]
    with pytest.raises(ValueError, match="bogus_reward"):
        build_reward_funcs(dataclasses.replace(smoke_profile, grpo=dataclasses.replace(g, reward_weights={"bogus_reward": 1.0})))


class _StopAt(TrainerCallback):
    """Interrupt training (as a crash would) once ``step`` is done and checkpointed."""

    def __init__(self, step):
        self.step = step

    def on_save(self, args, state, control, **kwargs):
        if state.global_step >= self.step:
            raise KeyboardInterrupt


def _length_reward(completions, **kwargs):
    """Varies across a random model's completions, so advantages are non-zero and GRPO moves the weights."""
    return [len(c[0]["content"]) / 100.0 for c in completions]


def test_interrupted_grpo_resumes_and_ends_where_uninterrupted_ends(setup, tmp_path, monkeypatch):
    import medrl_lib.training.train as T
    from medrl_lib.rl.rewards import format_reward
    from medrl_lib.training.train import run_grpo

    monkeypatch.setattr(T, "build_reward_funcs", lambda profile, tokenizer=None: [_length_reward, format_reward])
    profile, train, base = setup
    p = dataclasses.replace(profile, grpo=dataclasses.replace(profile.grpo, max_steps=4, save_steps=2))
    full = run_grpo(p, base, train, str(tmp_path / "full"))["model"]
    with pytest.raises(KeyboardInterrupt):
        run_grpo(p, base, train, str(tmp_path / "cut"), callbacks=[_StopAt(2)])
    assert (tmp_path / "cut" / "checkpoint-2").exists()
    resumed = run_grpo(p, base, train, str(tmp_path / "cut"))
    assert resumed["log_history"][-1]["step"] == 4
    a, b = full.state_dict(), resumed["model"].state_dict()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    # and training did change the weights, so the comparison is not vacuous
    from medrl_lib.models.loading import load_model

    start = load_model(base)[0].state_dict()
    assert any(not torch.allclose(start[k], a[k]) for k in a)


@pytest.mark.parametrize("method", ["sft", "lora", "dpo"])
def test_supervised_arms_train_evaluate_and_cache(smoke_profile, method):
    from medrl_lib.experiments.runs import sft_arm

    run = sft_arm(smoke_profile, "05_sft_vs_rl", method, 0, method)
    assert not run.reused and 0.0 <= run.metrics["eval/accuracy/all"] <= 100.0
    assert len(run.records) == 12 and run.log_history  # every test item scored; the trainer's log kept
    again = sft_arm(smoke_profile, "05_sft_vs_rl", method, 0, method)
    assert again.reused and json.dumps(again.metrics, sort_keys=True) == json.dumps(run.metrics, sort_keys=True)


def test_unknown_supervised_method(smoke_profile):
    from medrl_lib.experiments.runs import sft_arm

    with pytest.raises(ValueError, match="kto"):
        sft_arm(smoke_profile, "05_sft_vs_rl", "kto", 0, "kto")


def test_base_is_report_pretrained_and_instruct_builds_on_it(smoke_dirs):
    from medrl_lib.config import load_profile
    from medrl_lib.models.loading import load_model
    from medrl_lib.training.standins import ensure_start_model

    cache, results = smoke_dirs
    p = load_profile("smoke", overrides={"cache_dir": str(cache), "results_dir": str(results),
                                         "standins.base.steps": 2, "standins.base.items": 16,
                                         "standins.base.text_items": 6, "standins.base.text_tagged_fraction": 0.5})
    base, instruct = ensure_start_model(p, "base"), ensure_start_model(p, "instruct")
    assert "tiny-base-" in base and "tiny-instruct-" in instruct
    meta = json.loads((Path(instruct) / "medrl_tiny.json").read_text())
    assert meta["settings"]["base"] == Path(base).name  # instruct is tuned from the pretrained base
    base_meta = json.loads((Path(base) / "medrl_tiny.json").read_text())
    for m, prefixes, n in ((meta, ("instruct-",), p.standins.instruct.items), (base_meta, ("base-", "text-"), 16 + 6)):
        # the ids of the items (and unrelated texts) that made each model, as a list (not a column's repr)
        assert isinstance(m["train_ids"], list) and len(m["train_ids"]) == n
        assert all(i.startswith(prefixes) for i in m["train_ids"])
    assert sum(i.startswith("text-") for i in base_meta["train_ids"]) == 6
    random_init = load_model(str(Path(base).parent / json.loads((Path(base) / "medrl_tiny.json").read_text())
                                 ["settings"]["init"]))[0].state_dict()
    pretrained = load_model(base)[0].state_dict()
    assert any(not torch.equal(random_init[k], pretrained[k]) for k in random_init)
    assert ensure_start_model(p, "base") == base  # cached: built once


def test_fit_is_the_one_switch_and_supervised_runs_own_their_seed_and_precision(monkeypatch, smoke_profile):
    import medrl_lib.training.train as T

    calls = []
    for name in ("run_grpo", "run_sft", "run_dpo"):
        monkeypatch.setattr(T, name, lambda *a, _name=name, **k: calls.append((_name, a, k)) or {})
    p = dataclasses.replace(smoke_profile, sft=dataclasses.replace(smoke_profile.sft, seed=7, bf16=True))
    s = p.sft
    for method in T.METHODS:
        T.fit(method, p, "start", "items", "out")
    T.fit("lora", p, "start", "items", "out", deepspeed="zero2.json")
    grpo, sft, lora, dpo, lora_ds = calls
    assert grpo == ("run_grpo", (p, "start", "items", "out"), {})  # one process: no DeepSpeed argument at all
    for (name, args, k), method in ((sft, "sft"), (lora, "lora"), (dpo, "dpo")):
        assert args == ("start", "items") and k["output_dir"] == "out" and k["deepspeed"] is None
        assert (k["seed"], k["bf16"], k["max_steps"]) == (7, True, T.supervised_steps(p, method))  # sft's, not grpo's
        assert (k["batch_size"], k["target"]) == (s.per_device_train_batch_size, s.target)
        assert k["load"] == T.supervised_load(p, distributed=False)
    assert (sft[0], sft[2]["lr"], sft[2]["lora"]) == ("run_sft", s.learning_rate, None)
    assert (lora[0], lora[2]["lr"], lora[2]["lora"]) == ("run_sft", s.lora_learning_rate, s)
    assert (dpo[0], dpo[2]["lr"], dpo[2]["beta"]) == ("run_dpo", s.dpo_learning_rate, s.dpo_beta)
    assert lora_ds[2]["deepspeed"] == "zero2.json" and lora_ds[2]["load"] == T.supervised_load(p, distributed=True)
    with pytest.raises(ValueError, match="kto"):
        T.fit("kto", p, "start", "items", "out")


def test_each_run_sets_its_seed_for_grpo_and_the_supervised_baselines(smoke_profile, monkeypatch):
    from medrl_lib.experiments import runs
    from medrl_lib.training.train import supervised_steps

    p = runs._with_seed(smoke_profile, 3)
    assert (p.grpo.seed, p.sft.seed) == (3, 3)
    seen = {}
    monkeypatch.setattr(runs, "cached_run", lambda path, config, work, force=False, wait=True: seen.update(config))
    runs.sft_arm(smoke_profile, "zhu", "sft", 2, "sft")
    assert seen["settings"]["sft"]["seed"] == 2 and "grpo" not in seen["settings"]
    # the steps it trains are in its key: with sft.budget 'grpo' they follow GRPO's settings, which the key drops
    assert seen["steps"] == supervised_steps(smoke_profile, "sft")
