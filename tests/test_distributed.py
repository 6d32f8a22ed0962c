"""Multi-process GRPO: accelerate + DeepSpeed ZeRO-2 with 2 CPU processes (gloo), and the paper dry run."""

import json

import pytest

from medrl_lib.config import ConfigError, load_profile


@pytest.mark.slow
def test_two_cpu_processes_train_with_deepspeed_zero2(smoke_profile, smoke_dirs, tmp_path):
    from medrl_lib.training.launch import launch_training
    from medrl_lib.models.loading import load_model
    from medrl_lib.training.standins import ensure_start_model

    cache, results = smoke_dirs
    base = ensure_start_model(smoke_profile, "base")
    log = launch_training("smoke", {"cache_dir": str(cache), "results_dir": str(results)}, base, str(tmp_path), 2,
                          bf16=False)
    info = json.loads((tmp_path / "launch_info.json").read_text())
    peaks = info.pop("peak_memory_gib")  # one per rank: the process's peak (resident memory on a CPU)
    assert len(peaks) == 2 and all(0 < p["allocated"] <= p["reserved"] for p in peaks)
    assert info == {"method": "grpo", "deepspeed": True, "zero_stage": 2, "world_size": 2, "backend": "gloo"}
    assert [e["step"] for e in log if "reward" in e] == [1, 2]
    model, _ = load_model(tmp_path / "final")  # rank 0 saved a loadable model
    assert type(model).__name__ == "Qwen2VLForConditionalGeneration"


@pytest.mark.slow
def test_two_cpu_processes_train_lora_with_deepspeed_zero2(smoke_profile, smoke_dirs, tmp_path):
    from medrl_lib.training.launch import launch_training
    from medrl_lib.models.loading import load_model
    from medrl_lib.training.standins import ensure_start_model

    cache, results = smoke_dirs
    base = ensure_start_model(smoke_profile, "base")
    log = launch_training("smoke", {"cache_dir": str(cache), "results_dir": str(results)}, base, str(tmp_path), 2,
                          bf16=False, method="lora")
    info = json.loads((tmp_path / "launch_info.json").read_text())
    peaks = info.pop("peak_memory_gib")  # one per rank: the process's peak (resident memory on a CPU)
    assert len(peaks) == 2 and all(0 < p["allocated"] <= p["reserved"] for p in peaks)
    assert info == {"method": "lora", "deepspeed": True, "zero_stage": 2, "world_size": 2, "backend": "gloo"}
    assert any("loss" in e for e in log)
    model, _ = load_model(tmp_path / "final")  # merged LoRA weights saved by rank 0
    assert type(model).__name__ == "Qwen2VLForConditionalGeneration"


def test_unknown_launch_method():
    from medrl_lib.training.launch import launch_training

    with pytest.raises(ValueError, match="kto"):
        launch_training("smoke", {}, "m", "o", 2, False, method="kto")


def test_launch_only_launches():
    # the child process rebuilds the split and trains through train.fit; nothing of the runs' caching is imported
    import ast
    import inspect

    from medrl_lib.training import launch

    imported = {n.module for n in ast.walk(ast.parse(inspect.getsource(launch)))
                if isinstance(n, ast.ImportFrom) and n.module.startswith("medrl_lib")}
    assert imported == {"medrl_lib.config", "medrl_lib.data.splits", "medrl_lib.models.loading", "medrl_lib.training.train"}


def test_write_profile_round_trips(tmp_path):
    from medrl_lib.experiments.runs import write_profile

    p = load_profile("cpu", overrides={"grpo.max_steps": 3})
    write_profile(p, tmp_path / "p.yaml")
    assert load_profile(tmp_path / "p.yaml") == p


def test_prompts_come_in_whole_groups(tmp_path):
    # the profile counts prompts (each sampled num_generations times): a step always holds whole groups
    from medrl_lib.training.train import grpo_kwargs

    kw = grpo_kwargs(load_profile("paper", overrides={"num_processes": 1}), "out")
    assert kw["per_device_train_batch_size"] % kw["num_generations"] == 0
    with pytest.raises(ConfigError, match="prompts_per_device"):
        load_profile("paper", overrides={"grpo.prompts_per_device": 0})


def test_paper_dry_run_prints_every_setting_and_the_launch_command(capsys):
    from medrl_lib.cli.main import main

    assert main(["launch", "--profile", "paper"]) == 0
    out = capsys.readouterr().out
    assert "--num_processes 4" in out and "--mixed_precision bf16" in out and "zero2.json" in out
    assert "'beta': 0.04" in out and "'max_completion_length': 700" in out and "'num_generations': 8" in out
    assert "'loss_type': 'grpo'" in out and "'learning_rate': 1e-06" in out and "Qwen/Qwen2-VL-2B-Instruct" in out


@pytest.mark.parametrize("ranks_done, writes, ok", [
    (2, True, True),     # every rank passed the last barrier, outputs written: an abort at teardown loses nothing
    (1, True, False),    # rank 1 never finished: the run failed
    (2, False, False),   # rank 0's outputs missing: the run failed
])
def test_a_crash_after_every_rank_finished_is_teardown_noise(monkeypatch, tmp_path, ranks_done, writes, ok):
    import sys

    from medrl_lib.training import launch

    script = ["import json, os, pathlib", f"out = pathlib.Path({str(tmp_path)!r})"]
    if writes:
        script += ["(out / 'launch_info.json').write_text('{}')", "(out / 'log_history.json').write_text('[]')"]
    script += [f"print({launch.DONE!r}, {k}, flush=True)" for k in range(ranks_done)]
    script += ["os.abort()"]  # what "terminate called without an active exception" does to a rank
    monkeypatch.setattr(launch, "launch_command", lambda *a, **k: [sys.executable, "-c", "\n".join(script)])
    if ok:
        assert launch.launch_training("smoke", {}, "m", str(tmp_path), 2, False) == []
    else:
        with pytest.raises(RuntimeError, match="multi-process grpo failed"):
            launch.launch_training("smoke", {}, "m", str(tmp_path), 2, False)
