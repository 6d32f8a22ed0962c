"""Calibration of a scale profile: is the miniature a fair stand-in for the papers' setting?

Four checks, each computed from stored runs with a 95% interval and a verdict ('met' or 'not met'); nothing is
typed by hand. They say whether the experiments *can* show the papers' effects, not whether they do (that is the
claims scorecard):

* **C1** the instruct model's zero-shot accuracy on MRI lies above chance and below a ceiling (room to improve);
* **C2** a model trained on MRI alone is less accurate on CT and X-ray than on MRI (the modality styles differ);
* **C3** GRPO from the instruct model raises held-out accuracy and format within the profile's budget;
* **C4** GRPO from the base model learns the answer format at all.

"Format" is the share of well-formed completions under the format reward's rule (both blocks, in order, nothing
outside: :func:`medrl_lib.scoring.metrics.record_well_formed`), not the share with a ``<think>`` block.

Intervals: a start model is one greedy evaluation, so a gain is the paired difference of a trained arm's seeds
and the start on the same items (:func:`medrl_lib.scoring.stats.difference_interval` against the start repeated per
seed); the modality gap of C2 compares different items of the same seeds (:func:`medrl_lib.scoring.stats.gap_interval`:
the seeds' gaps plus each group's item variance, Satterthwaite's t).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from medrl_lib.scoring.claims import CLAIMS, item_matrix
from medrl_lib.scoring.stats import difference_interval, gap_interval

#: C1's ceiling (accuracy %): the start model's interval must end below it to leave room for fine-tuning.
CEILING = 90.0

#: Check -> the scorecard claims (``medrl_lib.scoring.claims.CLAIMS`` ids) whose verdict rests on it: every claim needs
#: room to improve (C1) and a GRPO that learns (C3); the OOD claim needs modalities that differ (C2); the
#: initialisation claim a base start that can learn at all (C4).
RESTS_ON: dict[str, tuple[str, ...]] = {"C1": tuple(c.id for c in CLAIMS), "C2": ("E6",),
                                        "C3": tuple(c.id for c in CLAIMS), "C4": ("E1",)}


def gain_interval(after: Sequence, start, quantity: str = "accuracy", *, n_boot: int = 2000,
                  seed: int = 0) -> tuple[float, float, float, float, float]:
    """(mean after, mean start, gain, low, high): the trained seeds against the start model on the same items;
    ``quantity`` as in :func:`medrl_lib.scoring.claims.item_values` ('format': the format reward's rule)."""
    a, ids = item_matrix(after, quantity)
    b, _ = item_matrix([start], quantity, ids=ids)
    b = np.repeat(b, len(a), axis=0)                                       # (S, I): the start, once per seed
    diff, low, high = difference_interval(a, b, n_boot=n_boot, seed=seed)
    return float(a.mean()), float(b.mean()), diff, low, high


def _row(check: str, text: str, criterion: str, ours: str, met: bool) -> dict:
    return {"check": check, "what": text, "criterion": criterion, "ours": ours,
            "verdict": "met" if met else "not met"}


def calibration_rows(*, ood_start, instruct_start, base_start, grpo_instruct: Sequence, grpo_base: Sequence | None,
                     mri_trained: dict[str, Sequence], chance: dict[str, float], in_domain: Sequence[str] = ("MRI",),
                     ceiling: float = CEILING, n_boot: int = 2000, seed: int = 0) -> list[dict]:
    """The four checks (C1-C4) as rows: what is checked, the criterion, our figure with its interval, verdict.

    ``ood_start`` is the instruct model's zero-shot run on E6's test items (with MRI among them);
    ``instruct_start``/``base_start`` are zero-shot runs on the test items of the GRPO arms;
    ``grpo_instruct``/``grpo_base`` the seeds of GRPO from each start (``base_start`` and ``grpo_base`` None where
    the profile has no base model: C4 is then left out); ``mri_trained`` maps a label to the seeds
    of an arm trained on ``in_domain`` modalities only; ``chance`` is the uniform-guess accuracy per modality
    (``random_guess_accuracy``)."""
    rows = []
    m = ood_start.metrics
    acc, low, high = m["eval/accuracy/mri"], m.get("eval/accuracy/mri/low"), m.get("eval/accuracy/mri/high")
    if low is None or high is None:
        raise ValueError("the instruct start's metrics carry no interval for eval/accuracy/mri")
    rows.append(_row("C1", "instruct zero-shot accuracy on MRI lies above chance and below the ceiling",
                     f"95% CI above chance ({chance['MRI']:.1f}%) and below {ceiling:.0f}%",
                     f"{acc:.1f}% [{low:.1f}, {high:.1f}]", low > chance["MRI"] and high < ceiling))
    for label, runs in mri_trained.items():
        outside = sorted({r["modality"] for run in runs for r in run.records} - set(in_domain))
        a, _ = item_matrix(runs, "accuracy", tuple(in_domain))
        b, _ = item_matrix(runs, "accuracy", tuple(outside))
        diff, lo, hi = gap_interval(a, b, n_boot=n_boot, seed=seed)
        rows.append(_row("C2", f"{label}, trained on {'/'.join(in_domain)} only, is less accurate on "
                               f"{' and '.join(outside)}", "95% CI of the gap above 0",
                         f"{a.mean():.1f}% vs {b.mean():.1f}%: gap {diff:+.1f} [{lo:+.1f}, {hi:+.1f}] points", lo > 0))
    for quantity, what in (("accuracy", "accuracy"), ("format", "format share")):
        after, before, diff, lo, hi = gain_interval(grpo_instruct, instruct_start, quantity, n_boot=n_boot, seed=seed)
        rows.append(_row("C3", f"GRPO from the instruct model raises held-out {what}", "95% CI of the gain above 0",
                         f"{before:.1f}% -> {after:.1f}%: {diff:+.1f} [{lo:+.1f}, {hi:+.1f}] points", lo > 0))
    if grpo_base is None or base_start is None:
        return rows
    after, before, diff, lo, hi = gain_interval(grpo_base, base_start, "format", n_boot=n_boot, seed=seed)
    rows.append(_row("C4", "GRPO from the base model learns the answer format", "95% CI of the gain above 0",
                     f"{before:.1f}% -> {after:.1f}%: {diff:+.1f} [{lo:+.1f}, {hi:+.1f}] points", lo > 0))
    return rows


def calibration_summary(rows: Sequence[dict]) -> str:
    """One sentence, computed from the rows: which checks are met and which are not."""
    met = sorted({r["check"] for r in rows if r["verdict"] == "met"} -
                 {r["check"] for r in rows if r["verdict"] != "met"})
    missed = sorted({r["check"] for r in rows if r["verdict"] != "met"})
    text = f"Calibration checks met in full: {', '.join(met) or 'none'}."
    if missed:
        claims = {c for m in missed for c in RESTS_ON.get(m, ())}
        text += f" Not met (in at least one row): {', '.join(missed)}"
        if claims == set(RESTS_ON["C1"]):
            text += "; every claim rests on it: no verdict below can be read as the papers' effect."
        elif claims:
            text += (f"; the verdict of {', '.join(sorted(claims))} rests on it and cannot be read as the papers' "
                     "effect on this profile.")
        else:
            text += "."
    return text


def calibration_table(rows: Sequence[dict]):
    """The checks as a table indexed by check id."""
    import pandas as pd

    return pd.DataFrame(list(rows)).set_index("check")
