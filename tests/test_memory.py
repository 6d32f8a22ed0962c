"""The memory plan of one GRPO process (medrl_lib.ops.memory) and the preflight's memory and driver checks."""

import pytest

from medrl_lib.config import load_profile
from medrl_lib.ops import memory, preflight

GIB = 1024 ** 3
CARD_80GB = int(79.2 * GIB)  # an A100 / H100 80GB as CUDA reports it
PARAMETERS = preflight.count_parameters(preflight.qwen2_vl_2b_config())  # Qwen2-VL-2B's published architecture


@pytest.fixture(scope="module")
def shapes():
    return memory.shapes_of(preflight.qwen2_vl_2b_config())


def test_saved_bytes_are_per_token_and_exclude_the_weights(shapes):
    # measured at two pairs of lengths, the per-token bytes agree: the layer's weights cancelled, activations linear
    text, vision = memory._frozen(shapes["text"]), memory._frozen(shapes["vision"])
    short = memory.saved_bytes_per_unit(text, vision, (64, 128))
    long = memory.saved_bytes_per_unit(text, vision, (128, 256))
    for a, b in zip(short, long):
        assert abs(a - b) <= 0.05 * b
    per_token, per_patch = long
    hidden, width = shapes["text"]["hidden_size"], shapes["vision"]["embed_dim"]
    assert 30 * hidden < per_token < 120 * hidden  # tens of bf16 values per hidden unit (Korthikanti et al.: 34 h)
    assert 20 * width < per_patch < 120 * width


@pytest.mark.parametrize("checkpointing, rollouts, fits", [
    (False, "vllm", False),  # the paper's settings before the plan: ~66 GiB of activations beside vLLM's share
    (True, "vllm", True),    # gradient checkpointing: the same gradients, activations ~15x smaller
    (False, "hf", False),    # even without the engine's share the activations at the limits overflow 80 GB
])
def test_paper_rank_on_an_80gb_card(shapes, checkpointing, rollouts, fits):
    p = load_profile("paper", {"grpo.gradient_checkpointing": checkpointing})
    plan = memory.grpo_memory_plan(p, PARAMETERS, shapes, CARD_80GB, rollouts=rollouts)
    assert plan.fits == fits
    t = plan.terms
    assert t["rollout engine"] == (int(0.3 * CARD_80GB) if rollouts == "vllm" else 0)
    assert t["model states (ZeRO-2)"] == memory.model_states_per_process(p, PARAMETERS)
    activations = t["activations: language model"] + t["activations: vision tower"]
    assert (activations < 8 * GIB) == checkpointing and (activations > 50 * GIB) != checkpointing
    assert plan.peak == sum(t.values()) and plan.room == CARD_80GB - plan.peak


@pytest.mark.parametrize("checkpointing, verdict", [
    (False, "FAIL"),  # fails before a GPU hour is spent (the GPU check counted model states only and passed)
    (True, "ok"),
])
def test_preflight_fails_a_plan_that_does_not_fit(checkpointing, verdict):
    found = [("NVIDIA A100-SXM4-80GB", CARD_80GB)] * 4
    check = preflight.check_memory("paper", {"grpo.gradient_checkpointing": checkpointing}, found)
    assert check.verdict == verdict
    assert any("peak per process" in line for line in check.details)
    assert preflight.check_gpus(load_profile("paper"), PARAMETERS, found).verdict == "ok"


@pytest.mark.parametrize("profile, cuda, driver, gpus, verdict, says", [
    ("paper", "13.0", "575.57.08", 4, "FAIL", "too old for CUDA 13"),   # an A100 cluster's older driver
    ("paper", "13.0", "580.82.07", 4, "ok", "580.82.07"),               # new enough
    ("paper", "13.0", None, 0, "FAIL", "run on a GPU node"),            # a login node: no driver at all
    ("paper", "13.0", "580.82.07", 0, "FAIL", "torch sees no GPU"),     # a driver but no visible GPU
    ("paper", None, None, 0, "FAIL", "CPU build"),                      # the CPU torch on a GPU profile
    ("smoke", None, None, 0, None, None),                               # a CPU profile on the CPU torch: no check
])
def test_driver_check(profile, cuda, driver, gpus, verdict, says):
    found = [("NVIDIA A100-SXM4-80GB", CARD_80GB)] * gpus
    check = preflight.check_driver(load_profile(profile), found, cuda=cuda, driver=driver)
    if verdict is None:
        assert check is None
    else:
        assert check.verdict == verdict and says in check.found


def test_the_methods_page_gives_the_plan_the_code_computes(shapes):
    # the figures of book/methods.md's "Memory plan" are the plan's, for the Zhu arm on an 80 GB card
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "book" / "methods.md").read_text()
    off = memory.grpo_memory_plan(load_profile("paper", {"grpo.gradient_checkpointing": False}), PARAMETERS, shapes,
                                  preflight.REFERENCE_CARD, rollouts="vllm")
    on = memory.grpo_memory_plan(load_profile("paper"), PARAMETERS, shapes, preflight.REFERENCE_CARD, rollouts="vllm")
    t = off.terms
    acts = (t["activations: language model"] + t["activations: vision tower"]) / GIB
    on_acts = (on.terms["activations: language model"] + on.terms["activations: vision tower"]) / GIB
    from medrl_lib.experiments import study

    ood = memory.grpo_memory_plan(study.arm_profile("paper", "ood-grpo"), PARAMETERS, shapes, preflight.REFERENCE_CARD,
                                  rollouts="vllm")
    assert f"MedVLM-R1's arm on two cards peaks at {ood.peak / GIB:.0f} GiB" in text
    for figure in (f"{t['model states (ZeRO-2)'] / GIB:.1f} GiB of\nstates", f"{t['rollout engine'] / GIB:.1f} GiB for vLLM",
                   f"{acts:.1f} GiB of activations", f"{t['logits'] / GIB:.1f} GiB of logits", f"{off.peak / GIB:.0f} GiB",
                   f"fall to {on_acts:.1f} GiB", f"peak to about {on.peak / GIB:.0f} GiB, room {on.room / GIB:.0f} GiB"):
        assert figure in text, figure
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert f"about {on.peak / GIB:.0f} GiB on an 80 GB card" in readme and f"about {off.peak / GIB:.0f} GiB)" in readme
