"""The Transfer chapter's tables, figure and paragraph: every arm scored on the panel (:mod:`medrl_lib.data.panel`).

Input: ``{row: [panel Run per seed]}`` as :func:`medrl_lib.experiments.study.transfer` returns it (a panel run's records carry
``id``, ``correct`` and ``benchmark``). Accuracies are in percent. An arm's accuracy on a benchmark is its mean over
seeds and items with the study's interval (seed and item noise, :func:`medrl_lib.scoring.stats.difference_interval` against
zero); a difference between two rows is taken on the items both scored, the same seeds' runs matched by position
(a zero-shot row, one run, stands for every seed), with the same interval and the scorecard's verdict
(:func:`medrl_lib.scoring.claims.verdict`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from medrl_lib.experiments.report import MISSING
from medrl_lib.scoring.claims import verdict
from medrl_lib.scoring.stats import difference_interval

#: The papers' rankings the chapter tests on each benchmark: (what is claimed, row a, row b): a above b.
RANKINGS: tuple[tuple[str, str, str], ...] = (
    ("RL above SFT (Zhu: instruct + GRPO vs full SFT)", "zhu/grpo-instruct", "zhu/sft"),
    ("RL above SFT (MedVLM-R1: GRPO vs SFT on MRI)", "ood/ood-grpo", "ood/ood-sft"),
    ("Dr.GRPO above GRPO", "zhu/dr-grpo", "zhu/grpo-instruct"),
    ("instruct above base (GRPO from each)", "zhu/grpo-instruct", "zhu/grpo-base"),
)


def _matrix(runs: Sequence, benchmark: str, ids: Sequence[str] | None = None) -> tuple[np.ndarray, list[str]]:
    """(seeds, items) array of 100 x correct on ``benchmark`` (columns: ``ids``, default the items every run scored)."""
    per_run = [{r["id"]: 100.0 * r["correct"] for r in run.records if r["benchmark"] == benchmark} for run in runs]
    if ids is None:
        shared = set(per_run[0]).intersection(*per_run[1:]) if per_run else set()
        ids = sorted(shared)
    return np.array([[scores[i] for i in ids] for scores in per_run], dtype=float).reshape(len(runs), len(ids)), list(ids)


def pair(runs_a: Sequence, runs_b: Sequence, benchmark: str) -> tuple[np.ndarray, np.ndarray]:
    """The (seeds, items) arrays of two rows on the items both scored; a one-run row is repeated to the other's
    seeds."""
    _, ids_a = _matrix(runs_a, benchmark)
    _, ids_b = _matrix(runs_b, benchmark)
    ids = sorted(set(ids_a) & set(ids_b))
    a, b = _matrix(runs_a, benchmark, ids)[0], _matrix(runs_b, benchmark, ids)[0]
    if len(a) != len(b):
        a, b = (np.repeat(a, len(b), axis=0), b) if len(a) == 1 else (a, np.repeat(b, len(a), axis=0))
    return a, b


def difference(runs_a: Sequence, runs_b: Sequence, benchmark: str) -> dict:
    """``{"diff", "low", "high", "items", "verdict"}`` of a − b on ``benchmark`` (NaN and 'n/a' without shared items).

    >>> from types import SimpleNamespace as R
    >>> a = [R(records=[{"id": str(i), "correct": i < 80, "benchmark": "x"} for i in range(100)])]
    >>> b = [R(records=[{"id": str(i), "correct": i < 50, "benchmark": "x"} for i in range(100)])]
    >>> d = difference(a, b, "x"); d["diff"], d["verdict"], d["items"]
    (30.0, 'holds', 100)
    """
    a, b = pair(runs_a, runs_b, benchmark)
    if a.shape[1] == 0:
        return {"diff": math.nan, "low": math.nan, "high": math.nan, "items": 0, "verdict": "n/a"}
    diff, low, high = difference_interval(a, b)
    return {"diff": diff, "low": low, "high": high, "items": a.shape[1], "verdict": verdict(low, high, +1)}


def accuracy(runs: Sequence, benchmark: str) -> dict:
    """``{"value", "low", "high", "items", "seeds"}``: the row's accuracy on ``benchmark`` with its interval."""
    a, _ = _matrix(runs, benchmark)
    if a.size == 0:
        return {"value": math.nan, "low": math.nan, "high": math.nan, "items": 0, "seeds": len(runs)}
    value, low, high = difference_interval(a, np.zeros_like(a))
    return {"value": value, "low": low, "high": high, "items": a.shape[1], "seeds": len(runs)}


def transfer_frame(panel: dict[str, list], benchmarks: Sequence[str], rows: dict[str, tuple]) -> pd.DataFrame:
    """One line per row and benchmark: accuracy with its interval, and the difference (with interval) to the row's
    start and to its supervised baseline (``rows``: :data:`medrl_lib.experiments.study.TRANSFER_ROWS`)."""
    lines = []
    for row, runs in panel.items():
        _, start, sft = rows[row]
        for name in benchmarks:
            acc = accuracy(runs, name)
            line = {"row": row, "benchmark": name, **{f"accuracy_{k}": v for k, v in acc.items()}}
            for label, other in (("start", start), ("sft", sft)):
                d = difference(runs, panel[other], name) if other in panel else None
                for k in ("diff", "low", "high", "verdict"):
                    line[f"vs_{label}_{k}"] = d[k] if d else (MISSING if k == "verdict" else math.nan)
            lines.append(line)
    return pd.DataFrame(lines)


def _cell(value: float, low: float, high: float, signed: bool = False) -> str:
    """``"61.2 [55.0, 67.1]"`` (``signed``: ``"+3.1 [-1.0, +7.2]"``); :data:`MISSING` for NaN."""
    if value is None or math.isnan(value):
        return MISSING
    fmt = "{:+.1f}" if signed else "{:.1f}"
    bounds = "" if math.isnan(low) else f" [{fmt.format(low)}, {fmt.format(high)}]"
    return fmt.format(value) + bounds


def transfer_table(frame: pd.DataFrame, labels: dict[str, str], rows: dict[str, tuple], what: str = "accuracy") -> pd.DataFrame:
    """Rows × benchmarks: ``what`` 'accuracy' (with its interval), 'vs_start' or 'vs_sft' (difference in points with its
    interval)."""
    cells = {}
    for _, line in frame.iterrows():
        label = labels.get(rows[line["row"]][0], line["row"])
        if what == "accuracy":
            text = _cell(line["accuracy_value"], line["accuracy_low"], line["accuracy_high"])
        else:
            text = _cell(line[f"{what}_diff"], line[f"{what}_low"], line[f"{what}_high"], signed=True)
        cells.setdefault(label, {})[line["benchmark"]] = text
    table = pd.DataFrame(cells).T
    if what != "accuracy":
        table = table[table.ne(MISSING).any(axis=1)]
    table.index.name = "arm"
    return table


def plot_transfer(frame: pd.DataFrame, labels: dict[str, str], rows: dict[str, tuple]):
    """Heatmap of each row's difference to its start (points) per benchmark; the trained rows only."""
    import matplotlib.pyplot as plt

    trained = frame[frame["vs_start_diff"].notna()]
    grid = trained.pivot(index="row", columns="benchmark", values="vs_start_diff")
    grid = grid.loc[[r for r in rows if r in grid.index], list(dict.fromkeys(frame["benchmark"]))]
    fig, ax = plt.subplots(figsize=(1.6 + 1.5 * grid.shape[1], 0.9 + 0.42 * grid.shape[0]))
    bound = max(5.0, float(np.nanmax(np.abs(grid.to_numpy())))) if grid.size else 5.0
    image = ax.imshow(grid.to_numpy(), cmap="RdBu", vmin=-bound, vmax=bound, aspect="auto")
    ax.set_xticks(range(grid.shape[1]), grid.columns, rotation=30, ha="right")
    ax.set_yticks(range(grid.shape[0]), [labels.get(rows[r][0], r) for r in grid.index])
    for (i, j), value in np.ndenumerate(grid.to_numpy()):
        ax.text(j, i, MISSING if np.isnan(value) else f"{value:+.1f}", ha="center", va="center", fontsize=8)
    fig.colorbar(image, ax=ax, label="points vs its start model")
    ax.set_title("Change in panel accuracy from the start model")
    fig.tight_layout()
    return fig


def rankings_frame(panel: dict[str, list], benchmarks: Sequence[str]) -> pd.DataFrame:
    """Each paper ranking of :data:`RANKINGS` on each benchmark: the difference a − b with its interval and verdict
    ('holds', 'reversed', 'not shown': the interval includes zero); rankings whose rows the panel lacks are left out."""
    lines = []
    for claim, a, b in RANKINGS:
        if a not in panel or b not in panel:
            continue
        for name in benchmarks:
            d = difference(panel[a], panel[b], name)
            lines.append({"ranking": claim, "benchmark": name, "difference [95% CI]": _cell(d["diff"], d["low"], d["high"], True),
                          "verdict": "not shown" if d["verdict"] == "inconclusive" else d["verdict"],
                          "items": d["items"], "diff": d["diff"]})
    return pd.DataFrame(lines)


def untested_rankings(panel: dict[str, list]) -> str:
    """A sentence naming the rankings of :data:`RANKINGS` the panel cannot test (a row not applicable on the profile,
    e.g. no base model), '' where every one is tested.

    >>> untested_rankings({"zhu/grpo-instruct": [], "zhu/sft": [], "ood/ood-grpo": [], "ood/ood-sft": [],
    ...                    "zhu/dr-grpo": []})
    'Not tested on this profile (a row not applicable, see the Protocol chapter): instruct above base (GRPO from each).'
    """
    missing = [claim for claim, a, b in RANKINGS if a not in panel or b not in panel]
    return (f"Not tested on this profile (a row not applicable, see the Protocol chapter): {'; '.join(missing)}."
            if missing else "")


def transfer_summary(rankings: pd.DataFrame, synthetic: bool) -> str:
    """The chapter's closing paragraph, computed: per ranking, on which benchmarks it holds, is reversed or is not
    shown at this profile's seeds and items."""
    if rankings.empty:
        return "No ranking could be tested: the panel lacks the rows it compares."
    where = "the synthetic panel" if synthetic else "the panel"
    parts = []
    for claim, lines in rankings.groupby("ranking", sort=False):
        groups = {v: list(lines.loc[lines["verdict"] == v, "benchmark"]) for v in ("holds", "reversed")}
        rest = [b for b in lines["benchmark"] if b not in groups["holds"] + groups["reversed"]]
        said = []
        if groups["holds"]:
            said.append(f"holds on {', '.join(groups['holds'])}")
        if groups["reversed"]:
            said.append(f"is reversed on {', '.join(groups['reversed'])}")
        if rest:
            said.append(f"is not shown on {', '.join(rest)} (the interval includes zero)")
        parts.append(f"- **{claim}** {'; '.join(said)}.")
    held, reversed_ = (int((rankings["verdict"] == v).sum()) for v in ("holds", "reversed"))
    head = (f"Of {len(rankings)} ranking-by-benchmark tests on {where}, {held} {'holds' if held == 1 else 'hold'} "
            f"(the 95% interval of the difference above zero), {reversed_} {'is' if reversed_ == 1 else 'are'} "
            "reversed and the rest are not shown at this profile's seeds and items.")
    return head + "\n\n" + "\n".join(parts)


def panel_description(profile, panel: dict[str, list]) -> str:
    """The panel's source and benchmarks in a few lines: what each changes (synthetic) or where it comes from, the
    cap per benchmark and the items the first row scored on it."""
    from medrl_lib.data.panel import SYNTHETIC_BENCHMARKS

    s = profile.panel
    if not s.benchmarks:
        return "This profile names no panel (`panel.benchmarks` is empty)."
    first = next(iter(panel.values()))[0].metrics if panel else {}
    if s.source == "synthetic":
        head = ("**A synthetic panel**, generated by the package (`medrl_lib.data.panel`): the training items' three "
                "imaging styles with other question styles and image statistics. It stands in for no real benchmark.")
    else:
        head = ("**The HuatuoGPT-Vision evaluation data** (`FreedomIntelligence/Medical_Multimodal_Evaluation_Data`), "
                "closed-form items of each benchmark named below (open questions dropped and counted by the loader); "
                "items whose image a run trained on are left out of that run's scores.")
    lines = [head, "", f"At most {s.per_benchmark} items per benchmark, drawn with seed {s.seed}.", ""]
    for name in s.benchmarks:
        n = first.get(f"panel/accuracy/{name}/n")
        what = SYNTHETIC_BENCHMARKS.get(name, "as published") if s.source == "synthetic" else "as published"
        lines.append(f"- `{name}`: {what}; {MISSING if n is None else int(n)} items scored.")
    return "\n".join(lines)
