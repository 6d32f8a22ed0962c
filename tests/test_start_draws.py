"""Start-model draws (``standins.per_seed``): one shared draw by default, with the folders the cpu profile has
always used; with per_seed, a draw per run seed, built once, that the runs of that seed start from and that keys
them; hub profiles refuse it; the overnight profile uses it."""

import json
from pathlib import Path

import pytest
import torch

from medrl_lib.config import ConfigError, load_profile
from medrl_lib.training.standins import ensure_start_model, start_draw, start_model_folders

ROOT = Path(__file__).resolve().parent.parent

#: The cpu profile's shared draw: the folders in .cache/medrl that every stored cpu run started from (the instruct
#: stand-in's changed when it learned to answer the plain prompt, ``standins.instruct.plain_prompt_fraction``; without
#: that setting it keeps its folder of before, ``tiny-instruct-97d6413b9633``, tested below).
CPU_FOLDERS = {"random": "tiny-qwen2vl-835b29e6d8b3", "base": "tiny-base-bfa335ebe04e",
               "instruct": "tiny-instruct-9d76b6420047"}


def _names(profile, seed=None) -> dict:
    return {k: v.name for k, v in start_model_folders(profile, seed).items()}


@pytest.mark.parametrize("overrides, seed", [
    ({}, None),                           # today's call: no seed
    ({}, 3),                              # one shared draw: the seed does not matter
    ({"standins.per_seed": False}, 2),    # said explicitly
    ({"standins.per_seed": True}, None),  # per_seed, but no seed asked: the shared draw
    ({"standins.per_seed": True}, 0),     # draw 0 IS the shared draw: a per-seed profile's seed 0 reuses it
])
def test_shared_draw_keeps_the_cpu_folders(overrides, seed):
    assert _names(load_profile("cpu", overrides), seed) == CPU_FOLDERS


def test_a_stand_in_never_asked_the_plain_prompt_keeps_its_folder():
    p = load_profile("cpu", {"standins.instruct.plain_prompt_fraction": 0.0})
    assert _names(p) == {**CPU_FOLDERS, "instruct": "tiny-instruct-97d6413b9633"}


def test_per_seed_gives_each_seed_its_own_folders_and_the_same_twice():
    p = load_profile("cpu", {"standins.per_seed": True})
    draws = [_names(p, seed) for seed in range(5)]
    for which in ("random", "base", "instruct"):
        assert len({d[which] for d in draws}) == 5, which  # five seeds, five folders of each model
    assert [_names(p, seed) for seed in range(5)] == draws  # the same seed names the same folders again
    assert _names(load_profile("cpu", {"standins.per_seed": True, "cache_dir": "/elsewhere"}), 1) == draws[1]


@pytest.mark.parametrize("name, overrides, seed, draw", [
    ("cpu", {}, 4, 0),                                     # shared draw
    ("cpu", {"standins.per_seed": True}, 4, 4),            # draw = run seed
    ("cpu", {"standins.per_seed": True}, None, 0),         # no seed: the shared draw
    ("smoke", {"standins.per_seed": True}, 1, 1),          # any tiny profile
    ("paper", {}, 3, 0),                                   # hub: one draw
])
def test_start_draw(name, overrides, seed, draw):
    assert start_draw(load_profile(name, overrides), seed) == draw


@pytest.mark.parametrize("name", ["paper", "rehearsal"])
def test_per_seed_is_refused_for_hub_models(name):
    # a hub model is one draw: per_seed would silently mean nothing there
    with pytest.raises(ConfigError, match=r"'standins\.per_seed'.*hub"):
        load_profile(name, {"standins.per_seed": True})


# building: two smoke-scale draws (seconds) ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def drawn(tmp_path_factory):
    """A per-seed smoke profile (with a 2-step base pretraining, so that every stage is drawn) in a temp cache."""
    root = tmp_path_factory.mktemp("draws")
    return load_profile("smoke", {"cache_dir": str(root / "cache"), "results_dir": str(root / "results"),
                                  "standins.per_seed": True, "seeds": [0, 1, 2], "standins.base.steps": 2,
                                  "standins.base.items": 16, "standins.base.text_items": 4,
                                  "standins.base.text_tagged_fraction": 0.5})


def _state(folder):
    from medrl_lib.models.loading import load_model

    return load_model(folder)[0].state_dict()


def test_two_draws_differ_in_every_stage_and_are_built_once(drawn):
    folders = {seed: {w: ensure_start_model(drawn, w, seed=seed) for w in ("base", "instruct")} for seed in (0, 1)}
    for seed, built in folders.items():
        assert built == {w: str(start_model_folders(drawn, seed)[w]) for w in built}  # where they were named
    for which in ("base", "instruct"):
        a, b = _state(folders[0][which]), _state(folders[1][which])
        assert any(not torch.equal(a[k], b[k]) for k in a), which  # another init, other items, another order
    marker = Path(folders[1]["instruct"]) / "medrl_tiny.json"
    meta = json.loads(marker.read_text())
    assert meta["settings"]["draw"] == 1 and meta["settings"]["base"] == Path(folders[1]["base"]).name
    ids0 = json.loads((Path(folders[0]["instruct"]) / "medrl_tiny.json").read_text())["train_ids"]
    assert len(meta["train_ids"]) == len(ids0)  # same recipe, another draw of it
    stamp = marker.stat().st_mtime_ns
    assert ensure_start_model(drawn, "instruct", seed=1) == folders[1]["instruct"]  # cached
    assert marker.stat().st_mtime_ns == stamp
    shared = load_profile("smoke", {"cache_dir": drawn.cache_dir, "standins.per_seed": False,
                                    "standins.base.steps": 2, "standins.base.items": 16,
                                    "standins.base.text_items": 4, "standins.base.text_tagged_fraction": 0.5})
    assert ensure_start_model(shared, "instruct", seed=1) == folders[0]["instruct"]  # shared: draw 0 for all


class _Started(Exception):
    """Raised by the patched trainer: the run got as far as its start model."""


@pytest.mark.parametrize("method, per_seed, seed, draw", [
    ("grpo", True, 1, 1),    # GRPO seed 1 starts from draw 1
    ("grpo", False, 1, 0),   # ... and from the shared draw without per_seed
    ("sft", True, 2, 2),     # the supervised baselines too
    ("dpo", True, 0, 0),     # seed 0: the shared draw
    ("lora", False, 2, 0),
])
def test_trained_arms_start_from_their_seeds_draw(drawn, monkeypatch, method, per_seed, seed, draw):
    import dataclasses

    from medrl_lib.experiments import runs

    started = []

    def fake_train(profile, m, policy, train, out):
        started.append(policy)
        raise _Started

    monkeypatch.setattr(runs, "_train", fake_train)
    p = dataclasses.replace(drawn, standins=dataclasses.replace(drawn.standins, per_seed=per_seed))
    with pytest.raises(_Started):
        if method == "grpo":
            runs.grpo_arm(p, "zhu", f"{method}-{per_seed}", seed)
        else:
            runs.sft_arm(p, "zhu", f"{method}-{per_seed}", seed, method)
    assert started == [str(start_model_folders(drawn, draw)[p.model.init])]


def _stored_config(profile, arm, seed):
    return json.loads((Path(profile.results_dir) / profile.name / "zhu" / arm / f"seed{seed}" / "config.json")
                      .read_text())


def test_run_keys_follow_the_draw(drawn, monkeypatch):
    import dataclasses

    from medrl_lib.experiments import runs

    def fake_train(*a):
        raise _Started

    monkeypatch.setattr(runs, "_train", fake_train)
    shared = dataclasses.replace(drawn, standins=dataclasses.replace(drawn.standins, per_seed=False))
    keys = {}
    for label, p in (("shared", shared), ("per_seed", drawn)):
        for seed in (0, 1):
            with pytest.raises(_Started):
                runs.grpo_arm(p, "zhu", "keys", seed)  # the same arm: only the start-model setting differs
            keys[label, seed] = _stored_config(p, "keys", seed)
    assert keys["per_seed", 1]["key"] != keys["shared", 1]["key"]  # another start model: another run
    assert keys["per_seed", 1]["config"]["start_draw"] == 1
    assert keys["per_seed", 0]["key"] == keys["shared", 0]["key"]  # the same start model: the same run
    for entry in keys.values():  # the setting itself is not in the key: the runs stored before it keep theirs
        assert "per_seed" not in entry["config"]["settings"]["standins"]


@pytest.mark.parametrize("per_seed, seeds, seed, draw, folder", [
    (False, [0, 1], None, 0, "seed0"),   # today: the one draw, in seed0
    (False, [0, 1], 1, 0, "seed0"),      # one draw: a seed changes nothing
    (True, [1, 2], None, 1, "seed1"),    # per_seed: the first seed's draw by default (the study's zero-shot rows)
    (True, [0, 1, 2], 2, 2, "seed2"),    # per_seed: the draw asked for
])
def test_zero_shot_evaluates_the_draw_it_stands_for(drawn, monkeypatch, per_seed, seeds, seed, draw, folder):
    import dataclasses

    from medrl_lib.experiments import runs
    from medrl_lib.training import train

    loaded = []

    def fake_load(profile, path):
        loaded.append(path)
        raise _Started

    monkeypatch.setattr(train, "load_policy", fake_load)
    p = dataclasses.replace(drawn, seeds=seeds, standins=dataclasses.replace(drawn.standins, per_seed=per_seed))
    arm = f"zs-{per_seed}-{seed}"
    with pytest.raises(_Started):
        runs.zero_shot_arm(p, "zhu", arm, "instruct", seed=seed)
    assert loaded == [str(start_model_folders(drawn, draw)["instruct"])]
    assert (Path(p.results_dir) / p.name / "zhu" / arm / folder / "config.json").exists()


def test_models_command_lists_each_seeds_draw(capsys):
    from medrl_lib.cli.main import main

    assert main(["models", "--profile", "overnight", "--no-build"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == [f"seed {s} {w}" for s in range(5) for w in ("base", "instruct")]
    assert lines[1].split(": ")[1].split()[0].endswith(CPU_FOLDERS["instruct"])  # seed 0: the cpu profile's draw


# the overnight profile ------------------------------------------------------------------------------------------------

def _flat(d, prefix=""):
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and k not in ("medvlm_r1", "length_rewards", "reward_weights"):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out


def test_overnight_is_the_cpu_profile_with_more_seeds_draws_items_and_steps():
    # configs/overnight.yaml is a copy of configs/cpu.yaml: a change to one belongs in the other unless listed here
    from medrl_lib.cli.main import hub_environment

    cpu, night = load_profile("cpu"), load_profile("overnight")  # loads and validates
    a, b = _flat(cpu.to_dict()), _flat(night.to_dict())
    changed = {k: b[k] for k in a if a[k] != b[k]}
    assert changed == {
        "name": "overnight",
        "seeds": (0, 1, 2, 3, 4),              # five seeds ...
        "standins.per_seed": True,             # ... each from its own start models
        "data.test_per_modality": 300,         # MedVLM-R1's count
        "grpo.max_steps": 2 * cpu.grpo.max_steps,
        "sft.max_steps": 2 * cpu.sft.max_steps,          # scaled as GRPO
        "sft.dpo_max_steps": 2 * cpu.sft.dpo_max_steps,
    }
    assert hub_environment("overnight") == {"HF_HUB_OFFLINE": "1"}  # everything local, as cpu
    assert "overnight" in (ROOT / "Makefile").read_text() and "`overnight`" in (ROOT / "README.md").read_text()
