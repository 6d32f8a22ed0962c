"""Figures (seaborn) and tables for the book, all computed from stored runs."""

from __future__ import annotations

from typing import Sequence

import pandas as pd

from .results import Run

#: Training-log keys shown in the reward figure, with their labels.
REWARD_KEYS = {"reward": "total reward", "rewards/format_reward/mean": "format", "rewards/accuracy_reward/mean": "accuracy"}


def training_frame(runs: dict[str, Run], keys: Sequence[str] | None = None) -> pd.DataFrame:
    """Long table (arm, step, metric, value) of the training logs of ``runs`` (name -> run)."""
    rows = []
    for name, run in runs.items():
        for entry in run.log_history:
            if "step" not in entry:
                continue
            for key in keys or [k for k in entry if k != "step"]:
                if key in entry and isinstance(entry[key], (int, float)):
                    rows.append({"run": name, "step": entry["step"], "metric": key, "value": float(entry[key])})
    return pd.DataFrame(rows, columns=["run", "step", "metric", "value"])


def smooth(df: pd.DataFrame, window: int) -> pd.DataFrame:
    """Rolling mean of ``value`` per (run, metric) over ``window`` logged steps."""
    if df.empty or window <= 1:
        return df
    out = df.sort_values("step").copy()
    out["value"] = out.groupby(["run", "metric"])["value"].transform(lambda s: s.rolling(window, min_periods=1).mean())
    return out


def plot_rewards(runs: dict[str, Run], window: int = 5, keys: dict[str, str] | None = None):
    """Reward components over training steps (smoothed), one panel per component."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    keys = keys or REWARD_KEYS
    df = smooth(training_frame(runs, list(keys)), window)
    if df.empty:
        raise ValueError("no training log in these runs: nothing to plot")
    df["component"] = df["metric"].map(keys)
    grid = sns.relplot(data=df, x="step", y="value", hue="run", col="component", kind="line", height=3,
                       aspect=1.2, facet_kws={"sharey": False})
    grid.set_titles("{col_name}")
    grid.set_axis_labels("GRPO step", f"mean reward (rolling {window})")
    plt.close(grid.figure)
    return grid.figure


def with_interval(metrics: dict, key: str, digits: int = 1) -> str:
    """``value [low, high]`` for a metric with a stored 95% interval, else the value alone.

    >>> with_interval({"a": 50.0, "a/low": 40.0, "a/high": 60.0}, "a")
    '50.0 [40.0, 60.0]'
    """
    value = metrics.get(key)
    if value is None:
        return ""
    low, high = metrics.get(f"{key}/low"), metrics.get(f"{key}/high")
    if low is None or high is None:
        return f"{value:.{digits}f}"
    return f"{value:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def accuracy_table(runs: dict[str, Run], modalities: Sequence[str], reference: dict[str, dict[str, float]] | None = None,
                   reference_rows: dict[str, str] | None = None, extra_rows: dict[str, dict[str, float]] | None = None):
    """Accuracy (%) per modality with its bootstrap 95% interval and the average over modalities, one row per
    run; the paper's figures in labelled columns beside them. ``reference_rows`` maps our row name to the
    paper's row name in ``reference``."""
    rows = {}
    for name, run in runs.items():
        row = {m: with_interval(run.metrics, f"eval/accuracy/{m.lower()}") for m in modalities}
        row["average"] = f"{sum(run.metrics[f'eval/accuracy/{m.lower()}'] for m in modalities) / len(modalities):.1f}"
        rows[name] = row
    for name, vals in (extra_rows or {}).items():
        rows[name] = {**{m: f"{vals[m]:.1f}" for m in modalities},
                      "average": f"{sum(vals[m] for m in modalities) / len(modalities):.1f}"}
    df = pd.DataFrame(rows).T[[*modalities, "average"]]
    df.columns = pd.MultiIndex.from_product([["ours: accuracy % [95% CI]"], df.columns])
    if reference and reference_rows:
        ref = pd.DataFrame({ours: reference.get(theirs, {}) for ours, theirs in reference_rows.items()}).T
        ref = ref.reindex(index=df.index, columns=[*modalities, "average"])
        ref.columns = pd.MultiIndex.from_product([["paper (reference)"], ref.columns])
        df = pd.concat([df, ref], axis=1)
    return df


def ood_summary(start: Run, trained: Sequence[Run], modalities: Sequence[str], train_modalities: Sequence[str]) -> str:
    """A sentence per modality, computed from the runs: accuracy of the start model and after training (mean of seeds)."""
    lines = []
    for m in modalities:
        key = f"eval/accuracy/{m.lower()}"
        before = start.metrics[key]
        after = [r.metrics[key] for r in trained]
        mean = sum(after) / len(after)
        where = "in domain" if m in train_modalities else "out of domain"
        change = "rose" if mean > before else "fell" if mean < before else "did not change"
        lines.append(f"- **{m}** ({where}): {before:.1f}% before training; after GRPO {mean:.1f}% "
                     f"(mean of {len(after)} seed{'s' if len(after) > 1 else ''}): accuracy {change} by "
                     f"{abs(mean - before):.1f} points.")
    note = ("One seed gives no interval: differences of a few points are within item-sampling noise."
            if len(trained) < 2 else "")
    return "\n".join(lines + ([f"\n*{note}*"] if note else []))
