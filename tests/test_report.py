"""Figures computed from stored runs: the seed band and the reward panels."""

import pandas as pd
import pytest

from medrl_lib.report import plot_rewards, seed_band
from medrl_lib.results import Run


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
    from medrl_lib.report import format_summary

    run = Run(path=None, config=config, metrics={"eval/format/all": rate, "eval/accuracy/all": 50.0})
    assert expected in format_summary({"arm": [run]})


@pytest.mark.parametrize("verdicts, expected", [
    pytest.param(["holds"], "Of 1 claim tested here (3 seeds per arm): 1 holds, 0 reversed", id="one-holds"),  # singular
    pytest.param(["holds", "holds", "inconclusive"], "2 hold, 0 reversed, 1 inconclusive", id="counts"),  # plural
    pytest.param(["reversed"], "Not shown by the miniature: C0.", id="reversed-not-shown"),  # only 'holds' is shown
])
def test_claims_summary_counts(verdicts, expected):
    from medrl_lib.report import claims_summary

    rows = [{"id": f"C{i}", "verdict": v, "seeds": 3} for i, v in enumerate(verdicts)]
    assert expected in claims_summary(rows)


def test_runs_table_one_row_per_run_trained_or_loaded():
    from medrl_lib.report import runs_table

    def run(seed, reused, acc):
        config = {} if seed is None else {"seed": seed}
        return Run(path=None, config=config, metrics={"eval/accuracy/all": acc, "time/train_s": 12.34,
                                                      "time/wall_s": 20.0}, log_history=[], reused=reused)

    table = runs_table({"zero-shot": [run(None, True, 40.0)], "grpo": [run(0, False, 61.25), run(1, True, 58.0)]},
                       {"grpo": "instruct + GRPO"})
    assert list(table.index) == [("zero-shot", "-"), ("instruct + GRPO", 0), ("instruct + GRPO", 1)]
    assert list(table["this build"]) == ["loaded", "run", "loaded"]  # a zero-shot run has no seed
    assert list(table["accuracy (%)"]) == [40.0, 61.2, 58.0] and table["train (s)"].iloc[1] == 12.3
