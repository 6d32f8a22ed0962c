"""Report: the book's figures (matplotlib, seaborn), tables and computed sentences, all from stored runs."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd

from medrl_lib.experiments.results import Run

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


def _as_lists(runs: dict) -> dict[str, list[Run]]:
    return {k: (v if isinstance(v, (list, tuple)) else [v]) for k, v in runs.items()}


def seed_band(df: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Mean of ``value`` over seeds per (arm, component, step), with a Student-t ``level`` interval (``low``,
    ``high``; equal to the mean where only one seed logged the step).

    >>> df = pd.DataFrame({"arm": "a", "component": "r", "step": 1, "value": [1.0, 2.0, 3.0]})
    >>> row = seed_band(df).iloc[0]
    >>> float(row["mean"]), round(float(row["high"] - row["mean"]), 2)
    (2.0, 2.48)
    """
    from scipy import stats

    g = df.groupby(["arm", "component", "step"])["value"].agg(["mean", "std", "count"]).reset_index()
    dof = (g["count"] - 1).clip(lower=1)
    half = stats.t.ppf(0.5 + level / 2, dof) * g["std"].fillna(0.0) / np.sqrt(g["count"])
    half = half.where(g["count"] > 1, 0.0)
    return g.assign(low=g["mean"] - half, high=g["mean"] + half)


def plot_rewards(runs: dict, window: int = 5, keys: dict[str, str] | None = None, labels: dict | None = None):
    """Reward components over training steps (rolling mean; band = 95% t-interval over seeds), one panel each.

    ``runs`` maps a name to a run or to the runs of its seeds."""
    import matplotlib.pyplot as plt

    keys = keys or REWARD_KEYS
    frames = []
    for name, rs in _as_lists(runs).items():
        for seed, run in enumerate(rs):
            df = smooth(training_frame({f"{name}/{seed}": run}, list(keys)), window)
            df["arm"] = (labels or {}).get(name, name)
            frames.append(df)
    df = pd.concat(frames) if frames else pd.DataFrame()
    if df.empty:
        raise ValueError("no training log in these runs: nothing to plot")
    df = df[df["metric"].isin(keys)]
    df["component"] = df["metric"].map(keys)
    band = seed_band(df)
    components = [c for c in dict.fromkeys(keys.values()) if c in set(band["component"])]
    arms = list(dict.fromkeys(df["arm"]))
    ncol = min(3, len(components))
    nrow = -(-len(components) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.64 * ncol, 2.8 * nrow), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, comp in zip(axes.flat, components):
        for i, arm in enumerate(arms):
            b = band[(band["component"] == comp) & (band["arm"] == arm)].sort_values("step")
            if b.empty:
                continue
            color = colors[i % len(colors)]
            ax.plot(b["step"], b["mean"], color=color, label=arm)
            ax.fill_between(b["step"], b["low"], b["high"], color=color, alpha=0.2, linewidth=0)
        ax.set_title(comp)
        ax.set_xlabel("training step")
        ax.set_ylabel(f"mean over completions (rolling {window})")
    for ax in axes.flat[len(components):]:
        ax.set_visible(False)
    handles, names = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, title="arm")
    fig.tight_layout()
    plt.close(fig)
    return fig


def per_seed_frame(runs: dict, labels: dict | None = None, metrics: Sequence[str] = ("accuracy/all",)) -> pd.DataFrame:
    """One row per (arm, seed) with the runs' ``eval/<metric>`` values."""
    rows = []
    for name, rs in _as_lists(runs).items():
        for seed, run in enumerate(rs):
            rows.append({"arm": (labels or {}).get(name, name), "seed": seed,
                         **{m: run.metrics.get(f"eval/{m}", float("nan")) for m in metrics}})
    return pd.DataFrame(rows)


def plot_accuracy(runs: dict, labels: dict | None = None, chance: float | None = None):
    """Accuracy per arm: each seed as a dot, the mean with a 95% interval over seeds (bootstrap) as a bar."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    df = per_seed_frame(runs, labels)
    fig, ax = plt.subplots(figsize=(1.2 + 1.1 * df["arm"].nunique(), 3.2))
    sns.barplot(data=df, x="arm", y="accuracy/all", errorbar=("ci", 95), ax=ax, alpha=0.6, color="tab:blue")
    sns.stripplot(data=df, x="arm", y="accuracy/all", ax=ax, color="black", size=4)
    if chance is not None:
        ax.axhline(chance, ls="--", color="grey", lw=1, label=f"random guess {chance:.1f}%")
        ax.legend(loc="lower right", fontsize=8)
    ax.set(xlabel="", ylabel="held-out accuracy (%)")
    ax.tick_params(axis="x", rotation=20)
    fig.tight_layout()
    plt.close(fig)
    return fig


def plot_length_vs_accuracy(runs: dict, labels: dict | None = None):
    """Reasoning length against accuracy, one dot per (arm, seed)."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    df = per_seed_frame(runs, labels, ("accuracy/all", "thinking_length"))
    fig, ax = plt.subplots(figsize=(5, 3.4))
    sns.scatterplot(data=df, x="thinking_length", y="accuracy/all", hue="arm", s=60, ax=ax)
    ax.set(xlabel="mean reasoning length (tokens)", ylabel="held-out accuracy (%)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    plt.close(fig)
    return fig


#: How every table of the book shows a missing value (a metric a profile does not compute, a paper that does not say).
MISSING = "—"


def mean_std(s, digits: int = 2) -> str:
    """``mean ± std`` over seeds (the mean alone for one seed), :data:`MISSING` where the mean is NaN.

    >>> from medrl_lib.scoring.stats import aggregate_seeds
    >>> mean_std(aggregate_seeds([1.0, 3.0])), mean_std(aggregate_seeds([2.0])), mean_std(aggregate_seeds([float("nan")]))
    ('2.00 ± 1.41', '2.00', '—')
    """
    if s.mean != s.mean:
        return MISSING
    return f"{s.mean:.{digits}f}" if s.n < 2 else f"{s.mean:.{digits}f} ± {s.std:.{digits}f}"


def number(value: float, digits: int = 1) -> str:
    """``value`` with ``digits`` decimals, :data:`MISSING` where it is NaN or None.

    >>> number(51.555), number(float("nan")), number(None)
    ('51.6', '—', '—')
    """
    return MISSING if value is None or value != value else f"{value:.{digits}f}"


def setup_tables() -> None:
    """Show every DataFrame a notebook displays with :data:`MISSING` in its empty cells (pandas would print ``NaN``)."""
    from IPython import get_ipython

    shell = get_ipython()
    if shell is not None:
        shell.display_formatter.formatters["text/html"].for_type(
            pd.DataFrame, lambda df: df.to_html(na_rep=MISSING))


#: Zhu Table 1's columns: our metric key -> column label.
ZHU_COLUMNS = {"accuracy/all": "accuracy", "similarity": "similarity", "perplexity": "perplexity",
               "thinking_reward": "thinking reward", "thinking_length": "thinking length"}


def metrics_table(runs: dict, labels: dict | None = None, reference: dict | None = None,
                  reference_rows: dict | None = None) -> pd.DataFrame:
    """Zhu Table 1 layout: every metric as mean ± std over seeds, and the paper's figures in labelled columns."""
    from medrl_lib.scoring.stats import aggregate_seeds

    rows = {}
    for name, rs in _as_lists(runs).items():
        row = {}
        for key, col in ZHU_COLUMNS.items():
            row[col] = mean_std(aggregate_seeds([r.metrics.get(f"eval/{key}", float("nan")) for r in rs]))
        row["seeds"] = len(rs)
        rows[(labels or {}).get(name, name)] = row
    df = pd.DataFrame(rows).T
    df.columns = pd.MultiIndex.from_product([["ours: mean ± std over seeds"], df.columns])
    if reference and reference_rows:
        ref = pd.DataFrame({(labels or {}).get(ours, ours): reference.get(theirs, {})
                            for ours, theirs in reference_rows.items() if ours in runs}).T
        ref = ref.reindex(index=df.index, columns=["accuracy", "similarity", "perplexity", "thinking_reward",
                                                   "thinking_length"])
        ref.columns = pd.MultiIndex.from_product([["paper (reference)"], [c.replace("_", " ") for c in ref.columns]])
        df = pd.concat([df, ref], axis=1)
    return df


def ood_heatmap(runs: dict, modalities: Sequence[str], labels: dict | None = None,
                extra_rows: dict[str, dict[str, float]] | None = None):
    """Accuracy (%) per arm (rows) and test modality (columns), mean over seeds."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    data = {}
    for name, rs in _as_lists(runs).items():
        data[(labels or {}).get(name, name)] = {
            m: sum(r.metrics[f"eval/accuracy/{m.lower()}"] for r in rs) / len(rs) for m in modalities}
    for name, vals in (extra_rows or {}).items():
        data[name] = {m: vals[m] for m in modalities}
    df = pd.DataFrame(data).T[list(modalities)]
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(modalities), 0.9 + 0.5 * len(df)))
    sns.heatmap(df, annot=True, fmt=".1f", cmap="viridis", vmin=0, vmax=100, ax=ax,
                cbar_kws={"label": "accuracy (%)"})
    ax.set(xlabel="test modality (trained on MRI)", ylabel="")
    fig.tight_layout()
    plt.close(fig)
    return fig


def sample_grid(ds, per_modality: int = 4):
    """A grid of example images, one row per modality, each titled with its question type and answer."""
    import json

    import matplotlib.pyplot as plt

    mods = sorted(set(ds["modality"]))
    fig, axes = plt.subplots(len(mods), per_modality, figsize=(2.1 * per_modality, 2.3 * len(mods)), squeeze=False)
    for i, mod in enumerate(mods):
        idx = [k for k, m in enumerate(ds["modality"]) if m == mod][:per_modality]
        for j, k in enumerate(idx):
            row = ds[k]
            facts = json.loads(row["facts"])
            ax = axes[i][j]
            ax.imshow(row["image"], cmap="gray")
            ax.set_title(f"{mod}: {facts.get('question_type', '')}\nanswer: {row['options'][ord(row['answer']) - 65]}",
                         fontsize=8)
            ax.axis("off")
    fig.tight_layout()
    plt.close(fig)
    return fig


def balance_plot(ds):
    """Option-count and answer-letter balance of a dataset, per modality."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    df = pd.DataFrame({"modality": ds["modality"], "options": [len(o) for o in ds["options"]],
                       "answer": ds["answer"]})
    fig, axes = plt.subplots(1, 2, figsize=(9, 3))
    sns.countplot(data=df, x="options", hue="modality", ax=axes[0])
    axes[0].set(xlabel="number of options", ylabel="items")
    sns.countplot(data=df.sort_values("answer"), x="answer", hue="modality", ax=axes[1])
    axes[1].set(xlabel="gold letter", ylabel="items")
    fig.tight_layout()
    plt.close(fig)
    return fig


def claims_table(rows: Sequence[dict]) -> pd.DataFrame:
    """The scorecard: claim, the paper's figure, ours with its interval, the paper's effect and the smallest effect
    this profile detects (80% power) in the same units, and the computed verdict."""
    out = []
    for r in rows:
        row = {c: r[c] for c in ["id", "claim", "paper", "ours", "difference [95% CI]"]}
        unit = r.get("unit", "")
        effect, mde = r.get("paper_effect", math.nan), r.get("mde", math.nan)
        row["paper's effect"] = "n/a" if math.isnan(effect) else f"{effect:+.1f} {unit}"
        row["detectable (80% power)"] = "n/a" if math.isnan(mde) else f"{mde:.1f} {unit}"
        row.update({c: r[c] for c in ["verdict", "seeds", "items"]})
        out.append(row)
    return pd.DataFrame(out).set_index("id")


def power_table(claims, runs: dict) -> pd.DataFrame:
    """The detectable effect of every claim at other numbers of seeds and test items
    (:func:`medrl_lib.scoring.claims.power_rows`, its default designs), indexed by claim."""
    from medrl_lib.scoring.claims import power_rows

    return pd.DataFrame(power_rows(claims, runs)).set_index("id")


def with_interval(metrics: dict, key: str, digits: int = 1) -> str:
    """``value [low, high]`` for a metric with a stored 95% interval, else the value alone.

    >>> with_interval({"a": 50.0, "a/low": 40.0, "a/high": 60.0}, "a")
    '50.0 [40.0, 60.0]'
    """
    value = metrics.get(key)
    if value is None or value != value:
        return MISSING
    low, high = metrics.get(f"{key}/low"), metrics.get(f"{key}/high")
    if low is None or high is None or low != low or high != high:
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
        row["average"] = number(sum(run.metrics[f"eval/accuracy/{m.lower()}"] for m in modalities) / len(modalities))
        rows[name] = row
    for name, vals in (extra_rows or {}).items():
        rows[name] = {**{m: number(vals[m]) for m in modalities},
                      "average": number(sum(vals[m] for m in modalities) / len(modalities))}
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


def training_keys(runs: dict) -> dict[str, str]:
    """The reward components logged by these runs (``rewards/<name>/mean``), labelled, plus the total."""
    found: dict[str, str] = {}
    for rs in _as_lists(runs).values():
        for run in rs:
            for entry in run.log_history:
                for k in entry:
                    if k.startswith("rewards/") and k.endswith("/mean"):
                        found[k] = k.split("/")[1].replace("_reward", "")
    return {"reward": "total reward", **dict(sorted(found.items()))}


def claims_summary(rows: Sequence[dict]) -> str:
    """The count of each verdict and which claims the miniature shows, could not have shown at the paper's size,
    or shows absent at that size: computed from the rows."""
    from medrl_lib.scoring.claims import VERDICTS

    counts = {v: sum(r["verdict"] == v for r in rows) for v in VERDICTS}
    seeds = sorted({r["seeds"] for r in rows})
    parts = [f"{n} {'hold' if v == 'holds' and n != 1 else v}" for v, n in counts.items()]
    text = (f"Of {len(rows)} claim{'s' if len(rows) != 1 else ''} tested here ({'/'.join(map(str, seeds))} seeds "
            f"per arm): {', '.join(parts)}.")
    for verdict, what in (("holds", "Shown by the miniature"),
                          ("no effect of the paper's size", "Absent at the paper's size (the interval excludes it, "
                                                            "either way)"),
                          ("smaller than the paper's", "Smaller than the paper's")):
        ids = [r["id"] for r in rows if r["verdict"] == verdict]
        if ids:
            text += f" {what}: {', '.join(ids)}."
    notshown = [r["id"] for r in rows if r["verdict"] != "holds"]
    if notshown:
        text += f" Not shown by the miniature: {', '.join(notshown)}."
    weak = [r["id"] for r in rows if not math.isnan(r.get("mde", math.nan))
            and not math.isnan(r.get("paper_effect", math.nan)) and r["mde"] > abs(r["paper_effect"])]
    if weak:
        text += (f" Too small a study for the paper's effect (detectable effect at 80% power above it): "
                 f"{', '.join(weak)}.")
    return text


def ood_table(runs: dict, modalities: Sequence[str], labels: dict | None = None, reference: dict | None = None,
              reference_rows: dict | None = None, chance: dict | None = None) -> pd.DataFrame:
    """MedVLM-R1 Table 1 layout: accuracy per modality and average, mean ± std over seeds, paper beside."""
    from medrl_lib.scoring.stats import aggregate_seeds

    rows = {}
    cols = [*modalities, "average"]
    for name, rs in _as_lists(runs).items():
        row = {}
        for m in modalities:
            row[m] = mean_std(aggregate_seeds([r.metrics[f"eval/accuracy/{m.lower()}"] for r in rs]))
        avg = aggregate_seeds([sum(r.metrics[f"eval/accuracy/{m.lower()}"] for m in modalities) / len(modalities)
                               for r in rs])
        row["average"] = mean_std(avg)
        rows[(labels or {}).get(name, name)] = row
    if chance:
        rows["random guess"] = {**{m: number(chance[m], 2) for m in modalities},
                                "average": number(sum(chance[m] for m in modalities) / len(modalities), 2)}
    df = pd.DataFrame(rows).T[cols]
    df.columns = pd.MultiIndex.from_product([["ours: accuracy %"], df.columns])
    if reference and reference_rows:
        mapping = {(labels or {}).get(k, k): v for k, v in reference_rows.items()}
        if chance:
            mapping["random guess"] = "random guess"
        ref = pd.DataFrame({ours: reference.get(theirs, {}) for ours, theirs in mapping.items()}).T
        ref = ref.reindex(index=df.index, columns=cols)
        ref.columns = pd.MultiIndex.from_product([["paper (reference)"], cols])
        df = pd.concat([df, ref], axis=1)
    return df


def asked_plain(runs: Sequence[Run]) -> bool:
    """Whether every run is a supervised baseline trained on final answers, which ``sft_arm`` asks with the plain
    prompt: a bare letter is its expected answer, not a format failure."""
    from medrl_lib.training.budget import SUPERVISED_METHODS

    return all(r.config.get("kind") in SUPERVISED_METHODS
               and r.config.get("settings", {}).get("sft", {}).get("target") == "plain" for r in runs)


def format_rates(runs: dict) -> dict[str, float]:
    """Arm -> percent of well-formed test completions, mean over seeds. Well-formed is the format reward's rule
    (both blocks, in order, nothing outside: :func:`medrl_lib.scoring.metrics.format_rate` of the run's records); a run
    stored without records falls back to its ``eval/format/all`` metric."""
    from medrl_lib.scoring.metrics import format_rate

    def run_rate(r) -> float:
        return format_rate(r.records) if r.records else r.metrics.get("eval/format/all", float("nan"))

    return {name: sum(run_rate(r) for r in rs) / len(rs) for name, rs in _as_lists(runs).items() if rs}


def mean_accuracy(runs: Sequence[Run]) -> float:
    """Mean over seeds of ``eval/accuracy/all`` (percent); NaN for no runs."""
    return sum(r.metrics.get("eval/accuracy/all", float("nan")) for r in runs) / len(runs) if runs else float("nan")


def format_summary(runs: dict, labels: dict | None = None) -> str:
    """Per arm, the share of well-formed test completions (:func:`format_rates`), as a sentence each, so that an
    accuracy of 0 reads as 'never learned the format' rather than 'always wrong'."""
    lines = []
    for name, rate in format_rates(runs).items():
        rs = _as_lists(runs)[name]
        acc = mean_accuracy(rs)
        note = (" (asked with the plain prompt: a bare letter is the expected answer)" if asked_plain(rs) else
                " (never produced the `<think>`/`<answer>` format)" if rate == 0 else "")
        lines.append(f"- **{(labels or {}).get(name, name)}**: {rate:.0f}% of test completions well-formed, "
                     f"accuracy {acc:.1f}%{note}.")
    return "\n".join(lines)


def loader_table(datasets_by_name: dict) -> pd.DataFrame | str:
    """Rows read, kept and dropped by reason, one column per file read (``{name: dataset}``; splits of one file
    share a column), from the summaries the real-data loaders store (:func:`medrl_lib.data.schema.load_summary`);
    a sentence when none has one (generated data drops nothing)."""
    from medrl_lib.data.schema import load_summary

    columns: dict[str, dict] = {}
    for name, ds in datasets_by_name.items():
        s = load_summary(ds)
        if "rows_read" not in s:
            continue
        col = columns.setdefault(s.get("file", name), {"used by": [], "rows read": s.get("rows_read"),
                                                       "rows kept": s.get("rows_kept")})
        col["used by"].append(name)
        col.update({f"dropped: {reason}": n for reason, n in sorted(s.get("dropped", {}).items()) if n})
    if not columns:
        return "Generated items: no file was read and no row was dropped."
    for col in columns.values():
        col["used by"] = ", ".join(col["used by"])
    return pd.DataFrame(columns).fillna("")


def runs_table(runs: dict, labels: dict | None = None) -> pd.DataFrame:
    """One row per run behind a chapter: arm, seed, whether this build trained it or loaded it from the results
    store, training and wall time, held-out accuracy."""
    rows = []
    for arm, arm_runs in _as_lists(runs).items():
        for run in arm_runs:
            m = run.metrics
            rows.append({"arm": (labels or {}).get(arm, arm), "seed": run.config.get("seed", "-"),
                         "this build": "loaded" if run.reused else "run",
                         "train (s)": m.get("time/train_s"), "wall (s)": m.get("time/wall_s"),
                         "accuracy (%)": m.get("eval/accuracy/all")})
    return pd.DataFrame(rows).round(1).set_index(["arm", "seed"])


def design_table(profile, length_profile, zhu_test, ood_test) -> pd.DataFrame:
    """The study's sizes on ``profile``: seeds, start-model draws, test items per protocol, GRPO steps, and the
    completion cap, length target and evaluation budget of the length experiment (``length_profile``, E3's
    arms) beside the others'."""
    per_seed = getattr(profile.standins, "per_seed", False)
    g, e = profile.grpo, length_profile.grpo
    rows = {
        "seeds per arm": len(profile.seeds),
        "start-model draws": len(profile.seeds) if per_seed and profile.model.kind == "tiny" else 1,
        "test items, E1-E5 (all modalities)": len(zhu_test),
        "test items, E6 (MRI, CT, X-ray)": len(ood_test),
        "GRPO steps": g.max_steps,
        "completion cap (tokens), E1, E2, E4-E6": g.max_completion_length,
        "completion cap (tokens), E3": e.max_completion_length,
        "length target of ECR / CWR (tokens), E3": e.length_target_tokens,
        "evaluation budget (new tokens), E3": length_profile.eval.max_new_tokens,
    }
    return pd.DataFrame({"setting": list(rows), profile.name: [str(v) for v in rows.values()]}).set_index("setting")
