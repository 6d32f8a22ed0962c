"""The paper path's blockers, each with a test that failed before its fix (issue: the paper profile rehearsed).

Numbered as the issue lists them; the loaders (6, 7), the hub processors (2) and the chat template and
end-of-sequence ids (4) are tested in test_loaders.py, test_fixtures.py and test_hub_standins.py.
"""

import importlib.util
import re
from pathlib import Path

import pytest
import torch

from medrl_lib.config import ConfigError, load_profile

ROOT = Path(__file__).resolve().parent.parent


# 1. Evaluation runs where the accelerator is --------------------------------------------------------------

@pytest.mark.parametrize("setting, cuda, expected", [
    ("auto", True, "cuda:0"),   # a GPU machine: the policy answers on the first GPU
    ("auto", False, "cpu"),     # no GPU: the CPU
    ("cuda:1", True, "cuda:1"),  # an explicit device wins
    ("cpu", True, "cpu"),
])
def test_eval_device(monkeypatch, setting, cuda, expected):
    from medrl_lib.training.train import eval_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    assert eval_device(load_profile("paper", overrides={"eval.device": setting})) == expected


class _FakeModel:
    """Records where it is moved; generation is replaced in the test."""

    def __init__(self):
        self.moves, self.config = [], type("C", (), {"_attn_implementation": "sdpa"})()

    def to(self, *args, **kwargs):
        self.moves.append((args, kwargs))
        return self


def test_evaluation_moves_the_policy_to_the_eval_device_and_back(monkeypatch, smoke_profile):
    from medrl_lib.training import evaluate, train
    from medrl_lib.experiments import runs
    from medrl_lib.data.splits import make_splits

    monkeypatch.setattr(train, "eval_device", lambda profile: "cuda:0")
    monkeypatch.setattr(evaluate, "generate_records", lambda *a, **k: [])
    _, test = make_splits(smoke_profile)
    model = _FakeModel()
    metrics, _ = runs._evaluate(model, None, smoke_profile, test.select(range(0)))
    assert model.moves[0] == ((), {"device": "cuda:0", "dtype": torch.float32})  # to the GPU, in the profile's dtype
    assert model.moves[-1] == (("cpu",), {})  # off the GPU before the metric models load
    assert metrics["eval/device"] == "cuda:0" and "eval/items_per_s" in metrics
    assert metrics["eval/engine"] == "hf"  # one GPU, no vllm: generate on it
    assert metrics["model/attn_implementation"] == "sdpa"  # the kernel actually used is stored


# 3. sacremoses (BioGptTokenizer) is a dependency ------------------------------------------------------------

def test_sacremoses_is_locked_and_installed():
    lock = (ROOT / "requirements" / "lock.txt").read_text().splitlines()
    assert any(line.startswith("sacremoses==") for line in lock)
    assert "sacremoses" in (ROOT / "pyproject.toml").read_text()
    assert importlib.util.find_spec("sacremoses") is not None


# 5. Checkpoints: bounded on disk, resumable, the disk printed before a run -------------------------------------

def test_paper_checkpoint_settings_reach_trl():
    from medrl_lib.training.train import grpo_kwargs

    kw = grpo_kwargs(load_profile("paper"), "out")
    assert (kw["save_steps"], kw["save_total_limit"], kw["save_only_model"]) == (100, 1, False)
    assert grpo_kwargs(load_profile("paper", overrides={"grpo.save_total_limit": 0}), "o")["save_total_limit"] is None


@pytest.mark.parametrize("overrides, checkpoint_gb, at_peak, final_gb", [
    ({}, 32.0, 2, 4.0),                                     # paper: one full checkpoint kept, a second while saving
    ({"grpo.save_only_model": True}, 4.0, 2, 4.0),          # weights only: 2 bytes a parameter
    ({"grpo.save_total_limit": 0}, 32.0, 15, 4.0),          # keep all: 1500 / 100 checkpoints (the 0.5 TB of old)
    ({"grpo.keep_final_model": False}, 32.0, 2, 0.0),       # no final model kept
])
def test_disk_estimate(overrides, checkpoint_gb, at_peak, final_gb):
    from medrl_lib.ops.preflight import disk_estimate

    e = disk_estimate(load_profile("paper", overrides=overrides), 2_000_000_000)
    assert (e.checkpoint / 1e9, e.checkpoints_at_peak, e.final_model / 1e9) == (checkpoint_gb, at_peak, final_gb)


def test_launch_prints_the_disk_a_paper_run_needs(capsys):
    from medrl_lib.cli.main import main

    assert main(["launch", "--profile", "paper"]) == 0
    out = capsys.readouterr().out
    params = float(re.search(r"policy parameters: ([\d.]+) B", out).group(1))
    assert 2.1 < params < 2.3  # Qwen2-VL-2B's published architecture, counted on the meta device
    peak = float(re.search(r"disk per GRPO run at its peak: ([\d.]+) GiB", out).group(1))
    assert 60 < peak < 80  # two full checkpoints of ~33 GiB and the 4 GiB final model, not 0.5 TB


@pytest.mark.slow
def test_checkpoints_rotate_and_a_run_resumes(smoke_profile, tmp_path, capsys):
    from medrl_lib.data.splits import make_splits
    from medrl_lib.training.standins import ensure_start_model
    from medrl_lib.training.train import run_grpo

    p = load_profile("smoke", overrides={"cache_dir": smoke_profile.cache_dir, "grpo.max_steps": 3,
                                         "grpo.save_steps": 1, "grpo.save_total_limit": 1})
    train, _ = make_splits(p)
    out = tmp_path / "ckpt"
    run_grpo(p, ensure_start_model(p), train, str(out))
    assert sorted(x.name for x in out.glob("checkpoint-*")) == ["checkpoint-3"]  # older ones deleted
    assert (out / "checkpoint-3" / "optimizer.pt").exists()  # full state: the optimizer too
    longer = load_profile("smoke", overrides={"cache_dir": smoke_profile.cache_dir, "grpo.max_steps": 4,
                                              "grpo.save_steps": 1, "grpo.save_total_limit": 1})
    res = run_grpo(longer, ensure_start_model(p), train, str(out))
    assert "resuming from" in capsys.readouterr().out
    assert [e["step"] for e in res["log_history"] if "reward" in e][-1] == 4
    assert res["trainer"].state.global_step == 4
    # found by the rehearsal: a sampled <|vision_start|> in a completion broke M-RoPE positions in the loss
    from medrl_lib.models.loading import vision_token_ids

    ids = vision_token_ids(res["model"])
    assert len(ids) == 4 and set(ids) <= set(res["trainer"].generation_config.suppress_tokens)


# 8. Gated models and everything else a study needs: the preflight ---------------------------------------------

def test_preflight_names_a_gated_model(monkeypatch):
    import huggingface_hub
    from huggingface_hub.errors import GatedRepoError

    from medrl_lib.ops import preflight

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)

    def gated(repo_id, **kwargs):
        exc = GatedRepoError.__new__(GatedRepoError)  # the hub's 401 answer for a gated repository
        Exception.__init__(exc, f"{repo_id} is gated")
        raise exc

    monkeypatch.setattr(huggingface_hub, "auth_check", gated)
    check = preflight.check_model("thinking reward", "mistralai/Mistral-7B-Instruct-v0.2")
    assert check.verdict == "FAIL" and "gated" in check.found and "HF_TOKEN" in check.found


def test_preflight_of_the_paper_profile_fails_cleanly_here(capsys):
    from medrl_lib.cli.main import main

    assert main(["check", "--profile", "paper"]) == 1
    out = capsys.readouterr().out
    for name in ("Qwen/Qwen2-VL-2B-Instruct", "Qwen/Qwen2-VL-2B", "microsoft/biogpt",
                 "mistralai/Mistral-7B-Instruct-v0.2", "cross-encoder/stsb-roberta-base", "PMC-VQA", "GPUs",
                 "CUDA driver"):
        line = next(l for l in out.splitlines() if name in l and not l.startswith("preflight"))
        assert line.rstrip().endswith("FAIL"), line  # not cached and offline, or no GPU: each named on its line
    assert "torch 2.13.0+cpu is a CPU build" in out
    memory = next(l for l in out.splitlines() if l.startswith("GPU memory"))
    assert "on an 80 GB card: room +" in memory and memory.rstrip().endswith("ok")  # the plan fits 80 GB
    assert "peak per process" in out  # the plan's terms are printed under the table
    failed = sum(l.rstrip().endswith("FAIL") for l in out.splitlines())
    assert f"preflight: {failed} check(s) failed" in out and failed >= 9


@pytest.mark.parametrize("states_gib, found, verdict", [
    (15.0, [], "FAIL"),                                  # a 2B model and no GPU
    (15.0, [("A100", 80 * 2**30)] * 3, "FAIL"),          # 3 GPUs for 4 processes
    (15.0, [("A100", 16 * 2**30)] * 4, "FAIL"),          # 4 cards too small for the model states
    (15.0, [("A100", 40 * 2**30)] * 4, "ok"),            # 4 x 40 GB
    (0.01, [], "ok"),                                    # a stand-in: CPU processes are enough
])
def test_gpu_check(monkeypatch, states_gib, found, verdict):
    from medrl_lib.ops import preflight

    monkeypatch.setattr(preflight, "model_states_per_process", lambda p, n: int(states_gib * 2**30))
    assert preflight.check_gpus(load_profile("paper"), 1, found).verdict == verdict


def test_book_stops_at_a_failed_preflight(capsys, monkeypatch, tmp_path):
    from medrl_lib.cli import main as cli

    ran = []
    monkeypatch.setattr(cli, "execute", lambda *a, **k: ran.append(a) or 0.0)
    assert cli.main(["book", "--profile", "paper", "--book-dir", str(tmp_path)]) == 2
    assert ran == []  # no notebook ran
    assert "FAIL" in capsys.readouterr().out


# 9. The GPU is free for the next arm: metric models released after each evaluation -----------------------------

def test_metric_models_are_released_after_evaluation(smoke_profile):
    from medrl_lib.experiments import runs
    from medrl_lib.data.splits import make_splits
    from medrl_lib.training.standins import ensure_start_model
    from medrl_lib.training.train import load_policy

    _, test = make_splits(smoke_profile)
    scorers = runs.metric_scorers(smoke_profile)
    model, processor = load_policy(smoke_profile, ensure_start_model(smoke_profile))
    runs._evaluate(model, processor, smoke_profile, test.select(range(4)))
    assert runs._SCORERS == {}  # nothing cached in the notebook's kernel between arms
    assert scorers["perplexity"]._model is None  # the loaded reference LM was dropped
    assert next(model.parameters()).device.type == "cpu"


# 10. One path setting per dataset ---------------------------------------------------------------------------

def test_one_path_per_dataset():
    with pytest.raises(ConfigError, match="data.path"):
        load_profile("paper", overrides={"data.path": "/data/pmc"})
    p = load_profile("paper", overrides={"data.pmc_vqa_path": "/data/pmc", "data.huatuo_path": "/data/huatuo"})
    assert (p.data.pmc_vqa_path, p.data.huatuo_path) == ("/data/pmc", "/data/huatuo")


def test_e6_reads_the_huatuo_path_when_pmc_vqa_is_local(monkeypatch):
    from medrl_lib.experiments import study
    from medrl_lib.data import huatuo, pmc_vqa

    read = []
    monkeypatch.setattr(pmc_vqa, "load_pmc_vqa", lambda src, **k: read.append(("pmc", src)) or 1 / 0)
    monkeypatch.setattr(huatuo, "load_huatuo_eval", lambda src, **k: read.append(("huatuo", src)) or 1 / 0)
    local = {"data.pmc_vqa_path": "/data/pmc", "data.huatuo_path": "/data/huatuo"}
    for group in ("zhu", "ood"):
        with pytest.raises(ZeroDivisionError):
            study.splits("paper", group, local)
    assert read == [("pmc", "/data/pmc"), ("huatuo", "/data/huatuo")]
    # E6's sizes come from the profile (MedVLM-R1's 600 / 300 on the paper profile)
    p = study.arm_profile("paper", "ood-grpo")
    assert (p.data.source, p.data.train_size, p.data.test_per_modality) == ("huatuo-eval", 600, 300)


# 11. A single process keeps fp32 master weights -------------------------------------------------------------

def test_single_process_trains_float32_weights(monkeypatch, smoke_profile):
    from medrl_lib.training import train

    seen = {}

    def fake_load(profile, path, *, device=None, dtype=None):
        seen["dtype"] = dtype
        raise RuntimeError("stop")

    monkeypatch.setattr(train, "load_policy", fake_load)
    p = load_profile("smoke", overrides={"model.dtype": "bfloat16", "cache_dir": smoke_profile.cache_dir})
    from medrl_lib.data.splits import make_splits

    with pytest.raises(RuntimeError, match="stop"):
        train.run_grpo(p, "unused", make_splits(p)[0], "out")
    assert seen["dtype"] == "float32"  # bf16 compute under autocast, float32 weights stepped by AdamW
    with pytest.raises(RuntimeError, match="stop"):
        train.run_grpo(p, "unused", make_splits(p)[0], "out", deepspeed="zero2.json")
    assert seen["dtype"] == "bfloat16"  # DeepSpeed keeps the fp32 master copy itself


# 12. make book PROFILE=paper may use the network ------------------------------------------------------------

@pytest.mark.parametrize("profile, offline", [("cpu", True), ("smoke", True), ("rehearsal", True), ("paper", False)])
def test_offline_only_where_nothing_comes_from_the_hub(profile, offline):
    from medrl_lib.cli.main import hub_environment

    assert (hub_environment(profile) == {"HF_HUB_OFFLINE": "1"}) is offline


def test_makefile_exports_offline_only_for_tests():
    makefile = (ROOT / "Makefile").read_text()
    global_exports = [l for l in makefile.splitlines() if l.startswith("export HF_HUB_OFFLINE")]
    assert global_exports == []  # `make book PROFILE=paper` may download
    assert "test test-fast test-vllm: export HF_HUB_OFFLINE := 1" in makefile


@pytest.mark.parametrize("text, says", [
    ("{num_processes: 1}", "--overrides is not JSON"),          # unquoted key: the option named, with an example
    ('["num_processes", 1]', "must be a JSON object"),         # JSON, but not an object of settings
])
def test_book_overrides_bad_input_is_one_line(text, says, capsys, tmp_path):
    from medrl_lib.cli import main as cli

    assert cli.main(["book", "--profile", "rehearsal", "--overrides", text, "--book-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert says in err and len(err.splitlines()) == 1


def test_book_overrides_reach_the_preflight_and_every_notebook(monkeypatch, tmp_path):
    # the rehearsal on one GPU: medrl book --profile rehearsal --overrides '{"num_processes": 1}'
    from medrl_lib.cli import main as cli

    seen = {}
    monkeypatch.setattr(cli, "preflight", lambda name, overrides, log=print: seen.setdefault("check", overrides) or True)
    monkeypatch.setattr(cli, "execute", lambda nb, out, params: seen.setdefault(nb.stem, params["overrides"]) and 0.0)
    assert cli.main(["book", "--profile", "rehearsal", "--overrides", '{"num_processes": 1}', "--only",
                     "01_initialization", "--no-build", "--book-dir", str(tmp_path)]) == 0
    assert seen == {"check": {"num_processes": 1}, "01_initialization": {"num_processes": 1}}


def test_one_gpu_trains_through_the_launcher(monkeypatch):
    # one process on a GPU trains as a rank of the paper's launch (NCCL, ZeRO-2) and leaves the GPU whole;
    # the CPU profiles and one CPU process train in this process
    from medrl_lib.training import engines
    from medrl_lib.experiments import runs

    monkeypatch.setattr(engines, "gpu_count", lambda: 1)
    assert runs.launched(load_profile("rehearsal", {"num_processes": 1}))
    assert not runs.launched(load_profile("cpu"))
    monkeypatch.setattr(engines, "gpu_count", lambda: 0)
    assert not runs.launched(load_profile("rehearsal", {"num_processes": 1}))
    assert runs.launched(load_profile("rehearsal"))  # 2 processes over gloo


@pytest.mark.parametrize("argv, says", [
    (["book", "--profile", "nope"], "no such profile file (profiles: cpu, overnight, paper, rehearsal, rehearsal-today, smoke, today)"),
    (["protocol", "--profile", "cpux"], "did you mean 'cpu'?"),                           # a close match suggested
    (["protocol", "--overrides", '{"grpo.max_steps": -3}'], "'grpo.max_steps' must be positive, got -3"),
    (["check", "--profile", "smoke", "--overrides", '{"grpo.max_step": 3}'], "did you mean 'grpo.max_steps'?"),
])
def test_bad_input_is_one_line_without_a_traceback(argv, says, capsys):
    from medrl_lib.cli import main as cli

    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert says in err and len(err.splitlines()) == 1 and "Traceback" not in err
