"""The results store: atomic files, config-hash reuse, half-written and stale folders."""

import json

import pytest

from medrl_lib.experiments.results import cached_run, load_run, runs_frame

from medrl_lib.common.files import config_key, write_json


def _work(calls):
    def work(path):
        calls.append(path)
        return {"metrics": {"eval/accuracy/all": 50.0}, "records": [{"id": "a", "correct": True}],
                "log_history": [{"step": 1, "reward": 0.5}], "train_ids": ["t1"], "test_ids": ["a"]}
    return work


def test_second_call_reuses_and_trains_nothing(tmp_path):
    calls = []
    first = cached_run(tmp_path / "r", {"lr": 1}, _work(calls))
    second = cached_run(tmp_path / "r", {"lr": 1}, _work(calls))
    assert len(calls) == 1 and not first.reused and second.reused
    assert second.metrics["eval/accuracy/all"] == 50.0 and second.records == [{"id": "a", "correct": True}]


@pytest.mark.parametrize("damage", [
    pytest.param("missing-metrics", id="missing-metrics"),  # interrupted before metrics.json landed
    pytest.param("truncated-metrics", id="truncated-metrics"),  # a half file from a non-atomic writer
    pytest.param("other-key", id="other-key"),  # metrics of another config left in the folder
])
def test_incomplete_folder_is_rerun(tmp_path, damage):
    calls = []
    run = cached_run(tmp_path / "r", {"lr": 1}, _work(calls))
    metrics = run.path / "metrics.json"
    if damage == "missing-metrics":
        metrics.unlink()
    elif damage == "truncated-metrics":
        metrics.write_text(metrics.read_text()[:10])
    else:
        write_json(metrics, {**json.loads(metrics.read_text()), "config_key": "0" * 16})
    assert load_run(run.path) is None
    again = cached_run(tmp_path / "r", {"lr": 1}, _work(calls))
    assert len(calls) == 2 and not again.reused and load_run(again.path) is not None


def test_changed_config_clears_the_folder_and_force_retrains(tmp_path):
    calls = []
    run = cached_run(tmp_path / "r", {"lr": 1}, _work(calls))
    (run.path / "checkpoints").mkdir()
    cached_run(tmp_path / "r", {"lr": 2}, _work(calls))  # another config: old checkpoints must not survive
    assert not (run.path / "checkpoints").exists() and len(calls) == 2
    cached_run(tmp_path / "r", {"lr": 2}, _work(calls), force=True)
    assert len(calls) == 3


def test_interrupted_run_of_same_config_keeps_its_checkpoints(tmp_path):
    def crash(path):
        (path / "checkpoints" / "checkpoint-2").mkdir(parents=True)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cached_run(tmp_path / "r", {"lr": 1}, crash)
    seen = []
    cached_run(tmp_path / "r", {"lr": 1}, lambda p: seen.append((p / "checkpoints" / "checkpoint-2").exists())
               or {"metrics": {}})
    assert seen == [True]


def test_files_and_provenance_written(tmp_path):
    run = cached_run(tmp_path / "r", {"lr": 1}, _work([]))
    for name in ("config.json", "provenance.json", "train_ids.json", "test_ids.json", "records.jsonl",
                 "training_log.jsonl", "metrics.json"):
        assert (run.path / name).exists(), name
    prov = json.loads((run.path / "provenance.json").read_text())
    assert prov["versions"]["trl"] == "1.16.0" and prov["versions"]["torch"].startswith("2.13.0")
    assert not list(run.path.glob(".*.tmp"))  # no temp files left behind


def test_config_key_is_order_independent():
    assert config_key({"a": 1, "b": [1, 2]}) == config_key({"b": [1, 2], "a": 1})
    assert config_key({"a": 1}) != config_key({"a": 2})


def test_runs_frame(tmp_path):
    for arm in ("grpo", "sft"):
        cached_run(tmp_path / "cpu" / "e1" / arm / "seed0", {"arm": arm}, _work([]))
    df = runs_frame(tmp_path, "cpu", "e1")
    assert sorted(df["arm"]) == ["grpo", "sft"] and (df["eval/accuracy/all"] == 50.0).all()


def test_run_key_ignores_storage_paths_but_not_settings():
    from medrl_lib.config import load_profile
    from medrl_lib.experiments.runs import run_settings

    a = load_profile("cpu")
    b = load_profile("cpu", overrides={"results_dir": "/elsewhere", "cache_dir": "/tmp/c", "seeds": [0, 1, 2]})
    c = load_profile("cpu", overrides={"grpo.beta": 0.0})
    assert config_key(run_settings(a)) == config_key(run_settings(b))  # same runs, stored elsewhere
    assert config_key(run_settings(a)) != config_key(run_settings(c))  # a real setting changes the key
    assert config_key(run_settings(a, drop=("grpo",))) == config_key(run_settings(c, drop=("grpo",)))


@pytest.mark.parametrize("cpuinfo, model, flags", [
    ("model name\t: Xeon\nflags\t\t: fpu avx avx2 fma avx512f\n", "Xeon", ["avx", "avx2", "fma", "avx512f"]),  # x86
    ("Hardware\t: Neoverse\nFeatures\t: fp asimd sve\n", "Neoverse", ["asimd", "sve"]),  # Arm spells them so
    ("", None, []),  # no /proc/cpuinfo: the platform's name, no flags
])
def test_cpu_info_reads_model_and_vector_extensions(cpuinfo, model, flags):
    from medrl_lib.experiments.results import cpu_info

    info = cpu_info(cpuinfo)
    assert info["vector_extensions"] == flags and info["torch_threads"] >= 1
    if model:
        assert info["cpu_model"] == model


def test_provenance_records_the_cpu(tmp_path):
    run = cached_run(tmp_path / "r", {"lr": 1}, _work([]))
    prov = json.loads((run.path / "provenance.json").read_text())
    assert prov["cpu_model"] and isinstance(prov["vector_extensions"], list) and prov["torch_threads"] >= 1
