"""Figures computed from stored runs: the seed band and the reward panels."""

import math

import pandas as pd
import pytest

from medrl_lib.experiments.report import plot_rewards, seed_band
from medrl_lib.experiments.results import Run


def _run(rewards):
    log = [{"step": i + 1, "reward": r, "rewards/format_reward/mean": r / 2} for i, r in enumerate(rewards)]
    return Run(path=None, config={}, metrics={}, log_history=log)


@pytest.mark.parametrize("values, mean, half", [
    pytest.param([1.0, 2.0, 3.0], 2.0, 2.484, id="three-seeds"),  # t(0.975, 2) * 1 / sqrt(3)
    pytest.param([5.0], 5.0, 0.0, id="one-seed"),  # no spread to estimate: the band is the line
    pytest.param([4.0, 4.0], 4.0, 0.0, id="equal-seeds"),  # zero spread
])
def test_seed_band(values, mean, half):
    row = seed_band(pd.DataFrame({"arm": "a", "component": "r", "step": 1, "value": values})).iloc[0]
    assert row["mean"] == pytest.approx(mean) and row["high"] - row["mean"] == pytest.approx(half, abs=1e-3)
    assert row["mean"] - row["low"] == pytest.approx(half, abs=1e-3)


def test_plot_rewards_draws_one_panel_per_logged_component():
    runs = {"grpo": [_run([0.1, 0.5, 0.9]), _run([0.2, 0.4, 1.0])], "sft": _run([0.3, 0.3, 0.3])}
    fig = plot_rewards(runs, window=1, keys={"reward": "total", "rewards/format_reward/mean": "format",
                                             "rewards/missing/mean": "absent"})
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == ["total", "format"]
    assert len(visible[0].lines) == 2 and list(visible[0].lines[1].get_ydata()) == [0.3, 0.3, 0.3]


def test_plot_rewards_without_logs_says_so():
    with pytest.raises(ValueError, match="no training log"):
        plot_rewards({"a": Run(path=None, config={}, metrics={})})


@pytest.mark.parametrize("config, rate, expected", [
    pytest.param({"kind": "grpo"}, 0.0, "never produced", id="grpo-no-format"),  # 0% under the reasoning prompt
    pytest.param({"kind": "sft", "settings": {"sft": {"target": "plain"}}}, 0.0, "plain prompt",
                 id="plain-sft"),  # a bare letter is what it was asked for
    pytest.param({"kind": "sft", "settings": {"sft": {"target": "reasoning"}}}, 0.0, "never produced",
                 id="reasoning-sft"),  # asked for the format and never gave it
    pytest.param({"kind": "grpo"}, 100.0, "accuracy 50.0%.", id="well-formed"),  # no note
])
def test_format_summary_notes(config, rate, expected):
    from medrl_lib.experiments.report import format_summary

    run = Run(path=None, config=config, metrics={"eval/format/all": rate, "eval/accuracy/all": 50.0})
    assert expected in format_summary({"arm": [run]})


@pytest.mark.parametrize("verdicts, expected", [
    pytest.param(["holds"], "Of 1 claim tested here (3 seeds per arm): 1 holds, 0 reversed", id="one-holds"),  # singular
    pytest.param(["holds", "holds", "inconclusive"], "2 hold, 0 reversed, 0 smaller than the paper's, "
                 "0 no effect of the paper's size, 1 inconclusive", id="counts"),  # plural, every verdict counted
    pytest.param(["reversed"], "Not shown by the miniature: C0.", id="reversed-not-shown"),  # only 'holds' is shown
    pytest.param(["holds", "no effect of the paper's size"], "Absent at the paper's size (the interval excludes it, "
                 "either way): C1.", id="absent"),  # the equivalence verdict is named
    pytest.param(["smaller than the paper's"], "Smaller than the paper's: C0.", id="smaller"),
])
def test_claims_summary_counts(verdicts, expected):
    from medrl_lib.experiments.report import claims_summary

    rows = [{"id": f"C{i}", "verdict": v, "seeds": 3} for i, v in enumerate(verdicts)]
    assert expected in claims_summary(rows)


@pytest.mark.parametrize("mde, effect, flagged", [
    (8.0, 6.5, True),    # the study detects 8 points at best, the paper saw 6.5: too small a study
    (3.0, 6.5, False),   # it detects 3: it could have shown the paper's effect
    (8.0, -9.7, False),  # the size counts, not the sign
])
def test_claims_summary_flags_claims_the_study_is_too_small_for(mde, effect, flagged):
    from medrl_lib.experiments.report import claims_summary, claims_table

    rows = [{"id": "E1", "verdict": "inconclusive", "seeds": 3, "mde": mde, "paper_effect": effect, "unit": "points",
             "claim": "c", "paper": "p", "ours": "o", "difference [95% CI]": "d", "items": 10}]
    assert ("Too small a study for the paper's effect" in claims_summary(rows)) is flagged
    table = claims_table(rows)
    assert table.loc["E1", "detectable (80% power)"] == f"{mde:.1f} points"
    assert table.loc["E1", "paper's effect"] == f"{effect:+.1f} points"


def test_runs_table_one_row_per_run_trained_or_loaded():
    from medrl_lib.experiments.report import runs_table

    def run(seed, reused, acc):
        config = {} if seed is None else {"seed": seed}
        return Run(path=None, config=config, metrics={"eval/accuracy/all": acc, "time/train_s": 12.34,
                                                      "time/wall_s": 20.0}, log_history=[], reused=reused)

    table = runs_table({"zero-shot": [run(None, True, 40.0)], "grpo": [run(0, False, 61.25), run(1, True, 58.0)]},
                       {"grpo": "instruct + GRPO"})
    assert list(table.index) == [("zero-shot", "-"), ("instruct + GRPO", 0), ("instruct + GRPO", 1)]
    assert list(table["this build"]) == ["loaded", "run", "loaded"]  # a zero-shot run has no seed
    assert list(table["accuracy (%)"]) == [40.0, 61.2, 58.0] and table["train (s)"].iloc[1] == 12.3


def test_machines_table_counts_runs_per_cpu(tmp_path):
    import json

    from medrl_lib.config import load_profile
    from medrl_lib.experiments.results import machines_table

    p = load_profile("smoke", {"results_dir": str(tmp_path)})
    machines = [("CPU A", ["avx2", "fma"]), ("CPU A", ["avx2", "fma"]), ("CPU B", ["avx512f"])]
    for k, (model, flags) in enumerate(machines):
        run = tmp_path / "smoke" / "zhu" / "arm" / f"seed{k}"
        run.mkdir(parents=True)
        (run / "provenance.json").write_text(json.dumps({"cpu_model": model, "vector_extensions": flags,
                                                         "torch_threads": 2, "cpu_count": 2}))
    table = machines_table(p)
    assert sorted(zip(table["CPU"], table["vector extensions"], table["runs"])) == [
        ("CPU A", "avx2 fma", 2), ("CPU B", "avx512f", 1)]  # two runs on one machine, one on another


def test_design_table_reads_the_length_experiments_room_from_its_arm():
    from medrl_lib.experiments import study
    from medrl_lib.config import load_profile
    from medrl_lib.experiments.report import design_table

    p = load_profile("cpu")
    e3 = study.arm_profile("cpu", "grpo-sa-ecr")
    table = design_table(p, e3, list(range(600)), list(range(600)))[p.name]
    assert table["completion cap (tokens), E3"] == str(p.length_rewards["grpo.max_completion_length"])
    assert table["completion cap (tokens), E1, E2, E4-E6"] == str(p.grpo.max_completion_length)
    assert int(table["completion cap (tokens), E3"]) > int(table["length target of ECR / CWR (tokens), E3"])
    assert table["seeds per arm"] == str(len(p.seeds))


def test_e3_baseline_is_e2s_run_where_the_profile_gives_e3_no_settings():
    from medrl_lib.experiments import study

    assert study.stored_arm("cpu", "grpo-sa-len") == "grpo-sa-len"  # cpu: E3 has its own room, its own +SA
    assert study.stored_arm("cpu", "grpo-sa-len", {"length_rewards": {}}) == "grpo-sa"  # none: E2's run, shared
    assert study.arm_profile("cpu", "grpo-sa").grpo.max_completion_length != \
        study.arm_profile("cpu", "grpo-sa-len").grpo.max_completion_length


def test_reference_rows_name_rows_of_the_papers_tables():
    from medrl_lib.experiments import study
    from medrl_lib.experiments.reference import MEDVLM_R1_TABLE1, ZHU_TABLE1

    assert set(study.ZHU_ROWS.values()) <= set(ZHU_TABLE1)
    assert set(study.OOD_ROWS.values()) <= set(MEDVLM_R1_TABLE1)
    assert set(study.OOD_ROWS) - {"zero-shot"} == {a for a, (_, group, _) in study.ARMS.items() if group == "ood"}


@pytest.mark.parametrize("accuracies, mean", [
    ([50.0, 60.0, 70.0], 60.0),   # the mean over seeds
    ([42.5], 42.5),               # one run: its accuracy
])
def test_mean_accuracy_over_seeds(accuracies, mean):
    from medrl_lib.experiments.report import mean_accuracy

    runs = [Run(path=None, config={}, metrics={"eval/accuracy/all": a}, records=[]) for a in accuracies]
    assert mean_accuracy(runs) == pytest.approx(mean)
    assert math.isnan(mean_accuracy([]))  # no runs: not a number, never 0
