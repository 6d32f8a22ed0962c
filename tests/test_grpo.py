"""The GRPO / Dr.GRPO objectives: hand-computed cases, TRL's formulas, and TRL's own loss on one real batch."""

import pytest
import torch

from medrl_lib.rl.grpo import NORMALISERS, group_advantages, policy_loss


@pytest.mark.parametrize("rewards, g, scale, expected", [
    pytest.param([1.0, 0.0], 2, "none", [0.5, -0.5], id="drgrpo-pair"),  # centred only
    pytest.param([1.0, 1.0, 1.0, 1.0], 4, "group", [0.0] * 4, id="all-equal"),  # zero std: zero advantage, no NaN
    pytest.param([2.0, 0.0], 2, "group", [1 / (2 ** 0.5 + 1e-4), -1 / (2 ** 0.5 + 1e-4)], id="bessel"),  # std([2,0]) = sqrt(2) with n-1
    pytest.param([1.0, 0.0, 3.0, 3.0], 2, "none", [0.5, -0.5, 0.0, 0.0], id="two-groups"),  # groups do not mix
])
def test_group_advantages_by_hand(rewards, g, scale, expected):
    got = group_advantages(torch.tensor(rewards), g, scale)
    assert torch.allclose(got, torch.tensor(expected), atol=1e-6)


def test_group_advantages_match_trl_formula():
    from trl.trainer.utils import nanstd

    r = torch.rand(24, generator=torch.Generator().manual_seed(0))
    mean = r.view(-1, 6).mean(1).repeat_interleave(6)
    std = nanstd(r.view(-1, 6), dim=1).repeat_interleave(6)
    assert torch.allclose(group_advantages(r, 6, "group"), (r - mean) / (std + 1e-4), atol=1e-6)
    assert torch.allclose(group_advantages(r, 6, "none"), r - mean, atol=1e-6)


def test_group_advantages_reject_bad_input():
    with pytest.raises(ValueError, match="groups of 4"):
        group_advantages(torch.zeros(6), 4)
    with pytest.raises(ValueError, match="scale"):
        group_advantages(torch.zeros(4), 2, "batchnorm")


def _batch(seed=0, b=4, t=5):
    g = torch.Generator().manual_seed(seed)
    logps = -torch.rand(b, t, generator=g) * 3
    old = logps + 0.3 * torch.randn(b, t, generator=g)
    ref = logps + 0.2 * torch.randn(b, t, generator=g)
    adv = torch.randn(b, generator=g)
    mask = torch.ones(b, t)
    mask[0, 3:] = 0
    mask[2, 1:] = 0
    return logps, old, ref, adv, mask


@pytest.mark.parametrize("is_ratio, scale_policy", [
    pytest.param(None, 1.0, id="by-hand"),  # no clipping active: loss = -mean(ratio * A) + beta * mean(k3)
    pytest.param(torch.ones(1, 2), 1.0, id="ones"),  # a ratio of 1 (engine and trainer agree) changes nothing
    pytest.param(torch.full((1, 2), 2.0), 2.0, id="token-2x"),  # doubles the clipped term, not the KL term
    pytest.param(torch.full((1, 1), 0.5), 0.5, id="sequence-half"),  # a (B, 1) ratio broadcasts over the tokens
])
def test_policy_loss_by_hand_and_the_importance_ratio_scales_the_clipped_term_only(is_ratio, scale_policy):
    logps = torch.tensor([[-1.0, -2.0]])
    old = torch.tensor([[-1.0, -2.1]])
    ref = torch.tensor([[-1.5, -2.0]])
    adv = torch.tensor([0.5])
    ratio = torch.exp(logps - old)
    k3 = torch.exp(ref - logps) - (ref - logps) - 1
    expected = (-(ratio * 0.5) * scale_policy + 0.1 * k3).mean()
    loss, _ = policy_loss(logps, old, ref, adv, torch.ones(1, 2), loss_type="grpo", beta=0.1, epsilon=0.2,
                          max_completion_length=2, importance_sampling_ratio=is_ratio)
    assert loss.item() == pytest.approx(expected.item(), abs=1e-7)


def test_normalisers_differ_as_documented():
    per_token = torch.ones(2, 4)
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]], dtype=torch.float)
    assert NORMALISERS["grpo"](per_token, mask, 8).item() == pytest.approx(1.0)  # every sequence's mean is 1
    assert NORMALISERS["dr_grpo"](per_token, mask, 8).item() == pytest.approx(6 / 16)  # 6 tokens / (2 x 8)


def test_clipping_stops_the_gradient_outside_the_trust_region():
    # A > 0 and ratio > 1 + eps: the clipped branch is the minimum, so no gradient flows to logps
    logps = torch.tensor([[0.5]], requires_grad=True)
    loss, stats = policy_loss(logps, torch.zeros(1, 1), None, torch.tensor([1.0]), torch.ones(1, 1),
                              loss_type="grpo", beta=0.0, epsilon=0.2, max_completion_length=1)
    loss.backward()
    assert logps.grad.item() == 0.0 and stats["high_clipped"].item()


def test_beta_needs_reference():
    logps, old, _, adv, mask = _batch()
    with pytest.raises(ValueError, match="ref_logps"):
        policy_loss(logps, old, None, adv, mask, loss_type="grpo", beta=0.04, epsilon=0.2, max_completion_length=5)


@pytest.fixture(scope="module")
def trainer(smoke_profile, tmp_path_factory):
    """A MedrlGRPOTrainer on the smoke profile's tiny model (beta > 0, so a reference model is built)."""
    from medrl_lib.data.splits import make_splits
    from medrl_lib.rl.grpo import MedrlGRPOTrainer
    from medrl_lib.training.standins import ensure_start_model
    from medrl_lib.training.train import grpo_args, load_policy, with_prompts

    train, _ = make_splits(smoke_profile)
    path = ensure_start_model(smoke_profile, "base")
    model, processor = load_policy(smoke_profile, path)
    model.config._name_or_path = path
    args, funcs = grpo_args(smoke_profile, str(tmp_path_factory.mktemp("grpo")))
    t = MedrlGRPOTrainer(model=model, reward_funcs=funcs, args=args, train_dataset=with_prompts(train),
                         processing_class=processor)
    t.current_gradient_accumulation_steps = 1
    return t


@pytest.mark.parametrize("loss_type, is_ratio", [
    pytest.param("grpo", False, id="grpo"),  # HF rollouts: no correction
    pytest.param("dr_grpo", False, id="dr_grpo"),
    pytest.param("grpo", True, id="grpo-vllm"),  # vLLM rollouts: TRL's truncated ratio multiplies the clipped term
    pytest.param("dr_grpo", True, id="dr_grpo-vllm"),
])
def test_our_loss_equals_trl_loss_on_a_real_batch(trainer, loss_type, is_ratio, monkeypatch):
    from trl import GRPOTrainer

    batch = next(iter(trainer.get_train_dataloader()))
    inputs = trainer._generate_and_score_completions(batch)
    assert inputs["ref_per_token_logps"] is not None
    # make the ratio differ from 1 so that clipping and the ratio term are exercised
    with torch.no_grad():
        logps, _, _ = trainer._get_per_token_logps_and_entropies(
            trainer.model, torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], 1),
            torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], 1), inputs["completion_ids"].size(1),
            pixel_values=inputs.get("pixel_values"), image_grid_thw=inputs.get("image_grid_thw"),
            mm_token_type_ids=inputs.get("mm_token_type_ids"), num_images=inputs.get("num_images"))
    inputs["old_per_token_logps"] = logps + 0.3 * torch.randn(logps.shape, generator=torch.Generator().manual_seed(1))
    inputs["advantages"] = torch.linspace(-1.5, 1.5, len(inputs["advantages"]))
    # the policy is the reference here: move the reference so that the KL term is not zero and is compared too
    inputs["ref_per_token_logps"] = logps + 0.2 * torch.randn(logps.shape, generator=torch.Generator().manual_seed(2))
    if is_ratio:  # as TRL's vLLM path leaves it: a ratio per token, truncated at the cap
        monkeypatch.setattr(trainer, "use_vllm", True)
        monkeypatch.setattr(trainer, "vllm_importance_sampling_correction", True)
        inputs["importance_sampling_ratio"] = torch.empty(logps.shape).uniform_(
            0.2, 3.0, generator=torch.Generator().manual_seed(3))
    trainer.loss_type = loss_type
    trainer.model.train()
    ours = trainer._compute_loss(trainer.model, inputs)
    theirs = GRPOTrainer._compute_loss(trainer, trainer.model, inputs)
    assert ours.item() == pytest.approx(theirs.item(), abs=1e-6)
    assert ours.item() != 0.0
    if is_ratio:  # the ratio reached the loss: without it the value differs
        monkeypatch.setattr(trainer, "use_vllm", False)
        assert trainer._compute_loss(trainer.model, inputs).item() != pytest.approx(ours.item(), abs=1e-4)


@pytest.mark.parametrize("rollouts, vllm, gpus, expected", [
    pytest.param("hf", True, 4, {"use_vllm": False}, id="hf"),  # asked for generate: generate
    pytest.param("auto", False, 4, {"use_vllm": False}, id="auto-no-vllm"),  # vllm not installed
    pytest.param("auto", True, 0, {"use_vllm": False}, id="auto-no-gpu"),  # no GPU
    pytest.param("auto", True, 4, {"use_vllm": True, "vllm_mode": "colocate", "vllm_max_model_length": 1724,
                                   "vllm_importance_sampling_correction": True,
                                   "vllm_importance_sampling_mode": "token_truncate",
                                   "vllm_importance_sampling_clip_max": 3.0}, id="auto-vllm"),  # 1024 + 700
])
def test_rollout_settings_reach_trl(rollouts, vllm, gpus, expected, monkeypatch):
    from medrl_lib.training import engines
    from medrl_lib.config import load_profile
    from medrl_lib.training.train import grpo_kwargs

    monkeypatch.setattr(engines, "vllm_installed", lambda: vllm)
    monkeypatch.setattr(engines, "gpu_count", lambda: gpus)
    kwargs = grpo_kwargs(load_profile("paper", {"grpo.rollouts": rollouts, "grpo.vllm_max_model_length": 0}), "/tmp/x")
    assert {k: kwargs[k] for k in expected} == expected
    assert kwargs["use_bias_correction_kl"] is False  # the papers' KL term, whatever TRL's default


def test_trainer_replaces_advantages_with_ours(trainer):
    batch = next(iter(trainer.get_train_dataloader()))
    inputs = trainer._generate_and_score_completions(batch)
    rewards = (trainer._last_rewards_per_func * trainer.reward_weights).sum(1)
    assert torch.allclose(inputs["advantages"], group_advantages(rewards, trainer.num_generations, "group"))
