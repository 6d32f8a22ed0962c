"""medrl_lib.ops.estimate: step-time arithmetic, the engine's figure, runs per arm, disk, recorded figures, the CLI."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from medrl_lib.cli.main import main
from medrl_lib.common.files import read_json, write_json
from medrl_lib.config import ConfigError, load_profile
from medrl_lib.ops import estimate as E
from medrl_lib.ops.preflight import profile_parameters
from medrl_lib.training import engines

ROOT = Path(__file__).resolve().parent.parent

#: A small profile whose arithmetic can be done by hand: 2 GPUs, 4 prompts x G=4 a step (8 completions a GPU),
#: L_c = 50 of 100 tokens, L_p = 100 of 200, 20 test items (2 modalities x 10), answers of 30 of 60 tokens.
PROFILE = """
name: est
seeds: [0, 1]
num_processes: 2
medvlm_r1: {num_processes: 1, grpo.max_steps: 10}
data: {source: synthetic, train_size: 40, test_modalities: [MRI, CT], test_per_modality: 10}
model: {kind: tiny, dtype: bfloat16}
grpo: {max_steps: 100, prompts_per_device: 1, gradient_accumulation_steps: 2, num_generations: 4,
       max_completion_length: 100, max_prompt_length: 200, save_steps: 50, save_total_limit: 1,
       keep_final_model: true, rollouts: auto, bf16: true}
sft: {max_steps: 30, dpo_max_steps: 20, per_device_train_batch_size: 4, budget: steps, target: plain, bf16: true}
eval: {max_new_tokens: 60, batch_size: 8, engine: auto}
"""

#: Hand-made figures (tokens/s per GPU) on one GPU.
FIGURES = {"hf": {"generation": 100.0, "evaluation": 50.0}, "vllm": {"generation": 400.0, "evaluation": 200.0},
           "train": {"grpo": 1000.0, "supervised": 2000.0}}


@pytest.fixture(scope="module")
def hand(tmp_path_factory):
    """(profile path, throughput file) of the hand-made profile and figures."""
    d = tmp_path_factory.mktemp("estimate")
    (d / "est.yaml").write_text(PROFILE)
    table = {"gpus": {"H100": {engine: {f: {"value": v, "unit": "tokens/s per GPU", "source": "default: by hand"}
                                        for f, v in figs.items()} for engine, figs in FIGURES.items()}}}
    write_json(d / "throughput.json", table)
    return str(d / "est.yaml"), d / "throughput.json"


@pytest.fixture(scope="module")
def hand_estimates(hand):
    """The hand-made profile's estimate on the 'H100' of the hand-made figures, without vLLM and with it."""
    profile, table = hand
    return {vllm: E.estimate(profile, gpu="H100", vllm=vllm, path=table) for vllm in (False, True)}


@pytest.fixture(scope="module")
def paper():
    """The paper study's estimate on this machine's engines without vLLM, and with it (computed once)."""
    return {False: E.estimate("paper", vllm=False), True: E.estimate("paper", vllm=True)}


def rows_by_arm(est):
    return {(r.group, r.arm): r for r in est.rows}


@pytest.mark.parametrize("kwargs, expected", [
    # Zhu's step on 4 GPUs: 16 completions a GPU of 350 tokens at 100 tokens/s; 16 x (512 + 350) at 5000 tokens/s
    ({"completions": 16, "completion_tokens": 350, "prompt_tokens": 512, "generation": 100.0, "update": 5000.0},
     (56.0, 2.7584)),
    # MedVLM-R1's step on 2 GPUs: 12 completions of 256 tokens
    ({"completions": 12, "completion_tokens": 256, "prompt_tokens": 256, "generation": 64.0, "update": 6144.0},
     (48.0, 1.0)),
    # two policy updates per generation batch (num_iterations 2) double the update, not the generation
    ({"completions": 8, "completion_tokens": 50, "prompt_tokens": 100, "generation": 100.0, "update": 1000.0,
      "iterations": 2}, (4.0, 2.4)),
])
def test_grpo_step_seconds(kwargs, expected):
    assert E.grpo_step_seconds(**kwargs) == pytest.approx(expected)


@pytest.mark.parametrize("vllm, arm, group, engines_, step_s, hours_per_run, gpus", [
    # hf: 8 x 50 / 100 + 8 x 150 / 1000 = 5.2 s; 100 steps + evaluation sharded over 2 GPUs (20 x 30 / (50 x 2) = 6 s)
    (False, "grpo-instruct", "zhu", "hf/sharded", 5.2, 526 / 3600, 2),
    # vllm: 8 x 50 / 400 + 1.2 = 2.2 s; 100 steps + evaluation on one GPU with vLLM (20 x 30 / 200 = 3 s)
    (True, "grpo-instruct", "zhu", "vllm/vllm", 2.2, 223 / 3600, 2),
    # E6 on 1 GPU (medvlm_r1 section): the same 8 completions a GPU, 10 steps; 'auto' on one GPU evaluates with 'hf'
    (False, "ood-grpo", "ood", "hf/hf", 5.2, (52 + 12) / 3600, 1),
    # full SFT: 4 items a GPU x (100 + 8) tokens / 2000 = 0.216 s, 30 steps; plain answers: 20 x 8 / (50 x 2) = 1.6 s
    (False, "sft", "zhu", "-/sharded", 0.216, (6.48 + 1.6) / 3600, 2),
    # DPO: 8/3 the cost of a full-SFT token, 20 steps
    (False, "dpo", "zhu", "-/sharded", 0.576, (11.52 + 1.6) / 3600, 2),
    # zero-shot with the reasoning prompt, sharded over 2 GPUs; with the plain prompt 8 tokens an answer
    (False, "instruct-zero-shot", "zhu", "-/sharded", 0.0, 6 / 3600, 2),
    (False, "zero-shot-instruct", "zhu", "-/sharded", 0.0, 1.6 / 3600, 2),
    # with vLLM a zero-shot evaluation holds one GPU
    (True, "instruct-zero-shot", "zhu", "-/vllm", 0.0, 3 / 3600, 1),
])
def test_arm_arithmetic_and_engine_figures(hand_estimates, vllm, arm, group, engines_, step_s, hours_per_run, gpus):
    row = rows_by_arm(hand_estimates[vllm])[(group, arm)]
    assert row.engines == engines_
    assert row.step_seconds == pytest.approx(step_s)
    assert row.hours_per_run == pytest.approx(hours_per_run)
    assert row.gpus == gpus
    assert row.wall_hours == pytest.approx(row.runs * hours_per_run)
    assert row.gpu_hours == pytest.approx(row.runs * hours_per_run * gpus)


@pytest.mark.parametrize("installed, rollouts, engine, step_s", [
    (True, "auto", "vllm", 2.2),    # the package is there: 'auto' samples with vLLM, the 'vllm' figure
    (False, "auto", "hf", 5.2),     # it is not: HF generate, the 'hf' figure
    (True, "hf", "hf", 5.2),        # the profile asks for HF generate: the 'hf' figure even where vLLM is installed
])
def test_engine_from_this_machine_picks_the_figure(hand, monkeypatch, installed, rollouts, engine, step_s):
    profile, table = hand
    monkeypatch.setattr(engines, "vllm_installed", lambda: installed)
    est = E.estimate(profile, {"grpo.rollouts": rollouts}, gpu="H100", path=table)
    row = rows_by_arm(est)[("zhu", "grpo-instruct")]
    assert row.engines.split("/")[0] == engine
    assert row.step_seconds == pytest.approx(step_s)
    assert any(a.startswith(f"{engine} generation: {FIGURES[engine]['generation']:g} ") for a in est.assumptions)


def test_vllm_asked_where_it_cannot_run_is_a_config_error(hand, monkeypatch):
    profile, table = hand
    monkeypatch.setattr(engines, "vllm_installed", lambda: False)
    with pytest.raises(ConfigError, match="vllm"):
        E.estimate(profile, {"grpo.rollouts": "vllm"}, gpu="H100", path=table)


@pytest.mark.parametrize("profile, trained_arms, seeds, total_runs", [
    # paper: no length_rewards section, so grpo-sa-len reads grpo-sa's runs: 11 arms x 3 seeds + 5 zero-shot rows
    ("paper", 11, 3, 38),
    # cpu: E3 has its own settings, grpo-sa-len is a run of its own: 12 arms x 3 seeds + 5 zero-shot rows
    ("cpu", 12, 3, 41),
])
def test_runs_per_arm(paper, profile, trained_arms, seeds, total_runs):
    est = paper[False] if profile == "paper" else E.estimate(profile, vllm=False)
    trained = [r for r in est.rows if r.method != "zero-shot"]
    assert len(trained) == trained_arms and all(r.runs == seeds for r in trained)
    assert [(r.group, r.arm, r.runs) for r in est.rows if r.method == "zero-shot"] == [
        ("zhu", "instruct-zero-shot", 1), ("zhu", "zero-shot-instruct", 1), ("zhu", "base-zero-shot", 1),
        ("ood", "instruct-zero-shot", 1), ("ood", "zero-shot-instruct", 1)]
    assert est.total("runs") == total_runs
    assert ("grpo-sa-len" in {r.arm for r in est.rows}) == (profile == "cpu")


def test_disk_grows_with_keep_final_model(hand):
    profile, table = hand
    n = profile_parameters(load_profile(profile))[0]
    kept = {keep: rows_by_arm(E.estimate(profile, {"grpo.keep_final_model": keep}, gpu="H100", vllm=False, path=table))
            for keep in (False, True)}
    # 100 steps saving every 50: 2 full checkpoints (16 bytes a parameter) at the peak (save_total_limit 1 and the
    # one being written); E6's 10 steps save none
    for arm, checkpoints in [(("zhu", "grpo-instruct"), 2), (("ood", "ood-grpo"), 0)]:
        # 2 seeds, each keeping its bf16 model (2 bytes a parameter); nothing without keep_final_model
        assert kept[False][arm].disk_kept_gib == 0.0
        assert kept[True][arm].disk_kept_gib == pytest.approx(2 * 2 * n / E.GIB)
        assert kept[True][arm].checkpoints_gib == pytest.approx(checkpoints * 16 * n / E.GIB)
    assert kept[True][("zhu", "sft")].disk_kept_gib == 0.0  # a supervised run keeps no model


def test_paper_disk_is_qwen2_vl_2b(paper):
    est = paper[False]
    row = rows_by_arm(est)[("zhu", "grpo-instruct")]
    n = profile_parameters(load_profile("paper"))[0]  # Qwen2-VL-2B's published architecture, not downloaded
    assert row.disk_kept_gib == pytest.approx(3 * 2 * n / E.GIB)  # 3 seeds x the bf16 model
    assert est.total("disk_kept_gib") == pytest.approx(sum(r.disk_kept_gib for r in est.rows))


def test_defaults_reproduce_their_sources(paper):
    rows = rows_by_arm(paper[False])
    # the A100 'hf' generation default is derived from MedVLM-R1's 300 steps in about 4 hours on 2 A100-80GB
    e6 = rows[("ood", "ood-grpo")]
    assert e6.steps * e6.step_seconds / 3600 == pytest.approx(4.0, rel=0.05)
    # the vLLM default is the speed-up that puts the paper study at the planning assumption's ~350 / ~850 A100-hours
    assert paper[True].total("gpu_hours") / paper[False].total("gpu_hours") == pytest.approx(350 / 850, rel=0.03)


def test_shipped_figures_name_their_source():
    table = E.load_throughput()
    assert {"A100-80GB", "H100", "H200"} <= set(table["gpus"])
    for gpu, by_engine in table["gpus"].items():
        for engine, figures in by_engine.items():
            for figure, entry in figures.items():
                assert entry["value"] > 0 and entry["unit"], (gpu, engine, figure)
                assert entry["source"].startswith(("default: ", "measured by benchmarks/gpu_grpo_step.py on ")), entry


def test_recorded_entry_replaces_the_default(hand, tmp_path):
    profile = hand[0]
    path = tmp_path / "throughput.json"
    write_json(path, E.load_throughput())
    before = E.estimate(profile, vllm=False, path=path)
    source = "measured by benchmarks/gpu_grpo_step.py on 2026-01-01 (test)"
    E.record_throughput("NVIDIA A100-SXM4-80GB", "hf", "generation", 131.2, "completion tokens/s per GPU", source,
                        path=path, step_seconds=60.0, peak_memory_GiB=40.0)
    entry = E.load_throughput(path)["gpus"]["A100-80GB"]["hf"]["generation"]
    assert entry == {"value": 131.2, "unit": "completion tokens/s per GPU", "source": source, "step_seconds": 60.0,
                     "peak_memory_GiB": 40.0}
    assert E.load_throughput(path)["gpus"]["H100"] == E.load_throughput()["gpus"]["H100"]  # the rest untouched
    after = E.estimate(profile, vllm=False, path=path)
    row_before, row_after = rows_by_arm(before)[("zhu", "grpo-instruct")], rows_by_arm(after)[("zhu", "grpo-instruct")]
    default = E.load_throughput()["gpus"]["A100-80GB"]["hf"]["generation"]["value"]
    # 8 completions a GPU of 50 tokens: the generation part of a step changes with the figure, the update does not
    assert row_before.step_seconds - row_after.step_seconds == pytest.approx(8 * 50 * (1 / default - 1 / 131.2))
    assert any(source in a for a in after.assumptions)
    # a new GPU gets its own entry
    E.record_throughput("NVIDIA L40S", "hf", "generation", 50.0, "tokens/s", source, path=path)
    assert E.throughput(E.load_throughput(path), "NVIDIA L40S", "hf", "generation")["value"] == 50.0


def test_unknown_gpu_names_the_known_ones(hand):
    profile, table = hand
    with pytest.raises(KeyError, match="known: H100"):
        E.estimate(profile, gpu="A100-40GB", path=table)


def _table(out: str) -> tuple[list[str], list[list[str]], list[str]]:
    """(header, rows, total row) of the printed table: columns are two spaces apart, numbers with thousands commas."""
    lines = out.splitlines()
    rules = [i for i, line in enumerate(lines) if line.startswith("---")]
    split = lambda line: re.split(r"\s{2,}", line.strip())
    header = split(lines[rules[0] - 1])
    rows = [split(line) for line in lines[rules[0] + 1: rules[1]]]
    total = lines[rules[1] + 1].split()
    return header, rows, total


def test_cli_estimate_total_is_the_sum_of_its_rows(capsys):
    assert main(["estimate", "--profile", "paper"]) == 0
    out = capsys.readouterr().out
    header, rows, total = _table(out)
    assert all(len(r) == len(header) for r in rows)
    number = lambda s: float(s.replace(",", ""))
    # the total row holds: runs, wall h, GPU-h, kept GiB, ckpt GiB (the largest), in that order
    for column, value in zip(["runs", "wall h", "GPU-h", "kept GiB"], total[1:5]):
        i = header.index(column)
        assert number(value) == pytest.approx(sum(number(r[i]) for r in rows), abs=0.05 * len(rows) + 0.5), column
    assert number(total[5]) == max(number(r[header.index("ckpt GiB")]) for r in rows)
    assert "Assumptions:" in out and "mean completion: 50% of grpo.max_completion_length" in out


def test_cli_estimate_errors(capsys, monkeypatch):
    monkeypatch.setattr(engines, "vllm_installed", lambda: False)
    assert main(["estimate", "--profile", "paper", "--gpu", "A100-40GB"]) == 2
    assert "no throughput figures for GPU" in capsys.readouterr().err
    assert main(["estimate", "--profile", "paper", "--overrides", json.dumps({"grpo.rollouts": "vllm"})]) == 2
    assert "--vllm" in capsys.readouterr().err


def test_cli_launch_prints_the_totals(capsys):
    assert main(["launch", "--profile", "cpu"]) == 0
    out = capsys.readouterr().out
    runs = E.estimate("cpu").total("runs")  # every stored run of the cpu study, counted by the estimate itself
    assert runs > 30 and f"estimate (cpu profile on {E.DEFAULT_GPU}): {runs:.0f} runs" in out and "GiB at the peak" in out


@pytest.mark.slow
def test_benchmark_refuses_to_record_rehearsal_figures_into_the_packages_file():
    # recording itself: tests/test_benchmarks.py (one run of the benchmark, two processes)
    # the package's figures are the 2B model's: a rehearsal-scale run may not record into them
    refused = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_grpo_step.py"), "--scale", "rehearsal",
                              "--record"], capture_output=True, text=True, timeout=300, check=False)
    assert refused.returncode != 0 and "--throughput-file" in refused.stderr


def test_cluster_wall_time_shrinks_with_nodes_within_its_bounds(paper):
    est = paper[True]
    hours = {n: E.cluster_wall_hours(est, n) for n in (1, 2, 4, 10, 100)}
    longest = max(r.hours_per_run for r in est.rows)
    assert hours[1] <= est.total("wall_hours") + 1e-9  # 2-GPU runs pair up on a 4-GPU node
    assert hours[1] >= est.total("gpu_hours") / 4 - 1e-9  # no more than 4 GPUs' work an hour
    assert all(hours[a] >= hours[b] for a, b in [(1, 2), (2, 4), (4, 10), (10, 100)])
    assert hours[100] == pytest.approx(longest)  # enough nodes: the longest run alone
    with pytest.raises(ValueError, match="needs 4 GPUs"):
        E.cluster_wall_hours(est, 4, gpus_per_node=2)


def test_cli_estimate_prints_the_wall_time_on_nodes(capsys):
    assert main(["estimate", "--profile", "paper", "--vllm", "--nodes", "1", "4"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"wall time on 1 node\(s\) of 4 A100-80GB: [\d,]+ hours", out)
    assert re.search(r"wall time on 4 node\(s\) of 4 A100-80GB: [\d,]+ hours", out)


def test_readme_cluster_figures_are_the_estimates(paper):
    text = (ROOT / "README.md").read_text()
    para = " ".join(text.split("## Run at paper scale: on a SLURM cluster")[1].split("```")[0].split())
    vllm, plain = paper[True], paper[False]
    nodes = [[round(E.cluster_wall_hours(e, n)) for n in (1, 4, 10)] for e in (vllm, plain)]
    for claim in (f"The paper study is {vllm.total('runs'):.0f} independent runs",
                  f"about {round(vllm.total('gpu_hours'), -1):,.0f} A100-hours with vLLM",
                  f"needs {vllm.total('wall_hours') / 24:.0f} days ({plain.total('wall_hours') / 24:.0f} without vLLM)",
                  "{}, {} and {} hours ({}, {} and {} without vLLM)".format(*nodes[0], *nodes[1])):
        assert claim in para, claim


def test_readme_today_figures_are_the_estimates():
    text = (ROOT / "README.md").read_text()
    para = " ".join(text.split("## Run at paper scale: on a SLURM cluster")[1].split("```")[0].split())
    today = E.estimate("today", vllm=True)
    nodes = [round(E.cluster_wall_hours(today, n)) for n in (1, 4, 10)]
    for claim in (f"The today study is {today.total('runs'):.0f} runs",
                  f"about {round(today.total('gpu_hours'), -1):,.0f} A100-hours with vLLM (`medrl estimate --profile today",
                  "{}, {} and {} hours on 1, 4 and 10 nodes".format(*nodes)):
        assert claim in para, claim
