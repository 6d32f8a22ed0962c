"""The claims scorecard: each qualitative claim of the two papers, tested on our runs with a 95% interval.

A claim compares two arms on one item-level quantity (correct or not, reasoning tokens). The arms are trained
with the same seeds and scored on the same test items, so the difference of their means gets the seeds-by-items
interval of :func:`medrl_lib.scoring.stats.difference_interval` (seeds and items as crossed random effects, Satterthwaite's
t). The verdict is computed, never typed, from that interval and the paper's own effect ``E`` (its two figures,
:func:`paper_effect`), on the claimed side of zero:

* **holds**: the interval lies entirely on the side the paper claims;
* **reversed**: it lies entirely on the other side;
* **no effect of the paper's size**: it contains 0 and lies inside ``(-E, +E)``: an effect as large as the paper's,
  either way, is excluded;
* **smaller than the paper's**: it contains 0 and excludes ``+E`` (but reaches below ``-E``);
* **inconclusive**: it contains 0 and reaches the paper's effect: the data cannot tell.

Each row also gives the minimum detectable effect (80% power at the observed variances,
:func:`medrl_lib.scoring.stats.detectable_effect`): where it exceeds ``E``, the miniature could not have shown the paper's
effect even if it is real.

>>> verdict(2.0, 9.0, +1), verdict(-9.0, -2.0, +1), verdict(-0.1, 0.2, +1)
('holds', 'reversed', 'inconclusive')
>>> verdict(-3.0, 2.0, +1, 6.5), verdict(-9.0, 2.0, +1, 6.5), verdict(-3.0, 8.0, +1, 6.5)
("no effect of the paper's size", "smaller than the paper's", 'inconclusive')
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from medrl_lib.scoring.metrics import record_well_formed, thinking_length
from medrl_lib.scoring.stats import detectable_effect, difference_interval


@dataclass(frozen=True)
class Claim:
    """One qualitative claim: arm ``a`` differs from arm ``b`` on ``quantity`` in ``direction``."""

    id: str
    """short id, e.g. 'E1'"""
    text: str
    """the claim as the paper makes it"""
    experiment: str
    """the notebook that tests it"""
    a: str
    """the arm the claim favours (or expects larger)"""
    b: str
    """the arm it is compared with"""
    quantity: str
    """'accuracy' (percent of items correct) or 'thinking_length' (reasoning tokens)"""
    direction: int
    """+1: the claim expects a > b; -1: a < b"""
    paper: str
    """the paper's own figure for this comparison (reference only)"""
    paper_a: float
    """the paper's figure for arm ``a`` (percent, or reasoning tokens)"""
    paper_b: float
    """the paper's figure for arm ``b``"""
    modalities: tuple[str, ...] = ()
    """restrict to items of these modalities (empty: all items)"""


#: The claims of Zhu et al. (E1-E5) and MedVLM-R1 (E6). Arms are the run names of the experiments.
CLAIMS: tuple[Claim, ...] = (
    Claim("E1", "Starting GRPO from the instruct model beats starting from the base model in accuracy",
          "01_initialization", "grpo-instruct", "grpo-base", "accuracy", +1, "Z: 58.04 vs 51.56", 58.04, 51.56),
    Claim("E2", "Adding the semantic-alignment reward improves accuracy", "02_semantic_alignment",
          "grpo-sa", "grpo-instruct", "accuracy", +1, "Z: 59.86 vs 58.04", 59.86, 58.04),
    Claim("E3a", "The ECR length reward lengthens the reasoning", "03_length_rewards", "grpo-sa-ecr", "grpo-sa-len",
          "thinking_length", +1, "Z: 338.14 vs 64.42 tokens", 338.14, 64.42),
    Claim("E3b", "The ECR length reward costs accuracy", "03_length_rewards", "grpo-sa-ecr", "grpo-sa-len",
          "accuracy", -1, "Z: 50.17 vs 59.86 (+SA); Zhu's '7.87% drop' is against GRPO, 58.04", 50.17, 59.86),
    Claim("E3c", "CWR costs less accuracy than ECR", "03_length_rewards", "grpo-sa-cwr", "grpo-sa-ecr",
          "accuracy", +1, "Z: 54.68 vs 50.17", 54.68, 50.17),
    Claim("E4a", "Dr.GRPO beats GRPO in accuracy", "04_dr_grpo", "dr-grpo", "grpo-instruct", "accuracy", +1,
          "Z: 61.09 vs 58.04", 61.09, 58.04),
    Claim("E4b", "Dr.GRPO shortens the reasoning (Zhu section 1 (4): 'token efficiency'; Liu et al.)", "04_dr_grpo",
          "dr-grpo", "grpo-instruct",
          "thinking_length", -1, "Z: 76.11 vs 66.41 tokens (longer in Z's table)", 76.11, 66.41),
    Claim("E5a", "GRPO beats full SFT", "05_sft_vs_rl", "grpo-instruct", "sft", "accuracy", +1,
          "Z: 58.04 vs 52.00", 58.04, 52.0),
    Claim("E5b", "GRPO beats LoRA", "05_sft_vs_rl", "grpo-instruct", "lora", "accuracy", +1, "Z: 58.04 vs 45.98",
          58.04, 45.98),
    Claim("E5c", "GRPO beats DPO", "05_sft_vs_rl", "grpo-instruct", "dpo", "accuracy", +1, "Z: 58.04 vs 46.97",
          58.04, 46.97),
    Claim("E6", "Trained on MRI, GRPO generalises to CT and X-ray better than SFT", "06_ood_generalization",
          "ood-grpo", "ood-sft", "accuracy", +1, "M: 69.67 vs 44.17 (mean of CT and X-ray)", 69.67, 44.17,
          ("CT", "X-ray")),
)


def claims_with_arms(claims: Sequence[Claim], runs: dict) -> list[Claim]:
    """The claims of ``claims`` whose two arms are both in ``runs`` (an arm not applicable on a profile is left out
    of it: :func:`medrl_lib.experiments.study.run_arms`).

    >>> [c.id for c in claims_with_arms(CLAIMS[:2], {"grpo-instruct": [], "grpo-sa": []})]
    ['E2']
    """
    return [c for c in claims if c.a in runs and c.b in runs]


def untested_note(claims: Sequence[Claim], runs: dict) -> str:
    """A sentence naming the claims of ``claims`` left untested because an arm of theirs did not run here ('' where
    none).

    >>> untested_note(CLAIMS[:1], {"grpo-instruct": []})
    'Not tested on this profile (an arm not applicable, see the Protocol chapter): E1 (grpo-base).'
    """
    missing = [f"{c.id} ({', '.join(a for a in (c.a, c.b) if a not in runs)})" for c in claims
               if c not in claims_with_arms([c], runs)]
    return f"Not tested on this profile (an arm not applicable, see the Protocol chapter): {', '.join(missing)}." \
        if missing else ""


def item_values(records: Sequence[dict], quantity: str, modalities: Sequence[str] = ()) -> dict[str, float]:
    """Item id -> the item's value of ``quantity``: 'accuracy' (percent: 100 or 0), 'format' (100 when the
    completion is well formed, as ``eval/format/all``) or 'thinking_length' (reasoning tokens)."""
    out = {}
    for r in records:
        if modalities and r["modality"] not in modalities:
            continue
        if quantity == "accuracy":
            out[r["id"]] = 100.0 * bool(r["correct"])
        elif quantity == "format":
            out[r["id"]] = 100.0 * record_well_formed(r)  # the format reward's rule
        elif quantity == "thinking_length":
            (length,) = thinking_length([r])
            if length is not None:  # no reasoning: no length (not 0)
                out[r["id"]] = float(length)
        else:
            raise ValueError(f"unknown quantity {quantity!r}; expected 'accuracy', 'format' or 'thinking_length'")
    return out


def item_matrix(runs: Sequence, quantity: str, modalities: Sequence[str] = (),
                ids: Sequence[str] | None = None) -> tuple[np.ndarray, list[str]]:
    """(seeds, items) array of ``quantity`` (see :func:`item_values`) on the items common to ``runs`` (or on
    ``ids``), and those item ids in column order; ``ValueError`` when there is none."""
    values = [item_values(r.records, quantity, modalities) for r in runs]
    if ids is None:
        ids = sorted(set.intersection(*(set(v) for v in values))) if values else []
    if not ids:
        raise ValueError(f"the runs share no test items of modalities {list(modalities) or 'all'}")
    return np.array([[v[i] for i in ids] for v in values]), list(ids)


#: The verdicts, in the order the scorecard counts them.
VERDICTS = ("holds", "reversed", "smaller than the paper's", "no effect of the paper's size", "inconclusive")


def paper_effect(claim: Claim, b_mean: float) -> float:
    """The paper's effect ``a - b`` in our units: for accuracy, the difference of its two figures (points); for
    reasoning length, its ratio applied to our arm ``b`` (``(paper_a / paper_b - 1) * b_mean`` tokens), since our
    reasoning is shorter than theirs by design.

    >>> round(paper_effect(CLAIMS[0], 40.0), 2), round(paper_effect(CLAIMS[2], 20.0), 1)  # E1; E3a: x5.25
    (6.48, 85.0)
    """
    if claim.quantity == "thinking_length":
        return (claim.paper_a / claim.paper_b - 1.0) * b_mean
    return claim.paper_a - claim.paper_b


def verdict(low: float, high: float, direction: int, paper: float | None = None) -> str:
    """The verdict of an interval ``[low, high]`` of ``a - b`` for the claimed ``direction`` (+1: a > b), given the
    paper's effect ``paper`` (its size is used, whatever its sign; ``None``: only holds / reversed / inconclusive).
    The rules are the module's."""
    lo, hi = sorted((direction * low, direction * high))
    if lo > 0:
        return "holds"
    if hi < 0:
        return "reversed"
    if paper is not None and not math.isnan(paper) and abs(paper) > 0:
        size = abs(paper)
        if -size < lo and hi < size:
            return "no effect of the paper's size"
        if hi < size:
            return "smaller than the paper's"
    return "inconclusive"


def arm_arrays(claim: Claim, runs_a: Sequence, runs_b: Sequence) -> tuple[np.ndarray, np.ndarray] | None:
    """The (seeds, items) arrays of ``claim.quantity`` of its two arms on the items every run of both shares (one
    column order); ``None`` when they share none."""
    try:
        _, ids = item_matrix([*runs_a, *runs_b], claim.quantity, claim.modalities)
    except ValueError:
        return None
    return (item_matrix(runs_a, claim.quantity, claim.modalities, ids)[0],
            item_matrix(runs_b, claim.quantity, claim.modalities, ids)[0])


def evaluate_claim(claim: Claim, runs_a: Sequence, runs_b: Sequence, *, n_boot: int = 2000, seed: int = 0) -> dict:
    """A scorecard row for ``claim`` from the seeds' runs of its two arms (matched by position): the difference
    with its interval and verdict, the paper's effect in our units (``paper_effect``) and the minimum detectable
    effect (``mde``, 80% power)."""
    if not runs_a or len(runs_a) != len(runs_b):
        raise ValueError(f"{claim.id}: need the same, non-zero number of seeds per arm, got {len(runs_a)} and "
                         f"{len(runs_b)}")
    unit = "points" if claim.quantity == "accuracy" else "tokens"
    arrays = arm_arrays(claim, runs_a, runs_b)
    if arrays is None:
        if claim.quantity != "thinking_length":
            raise ValueError(f"{claim.id}: the two arms share no test items")
        nan = float("nan")  # no item has a reasoning in every run of both arms: nothing to compare
        return {"claim": claim.text, "id": claim.id, "paper": claim.paper, "ours": "no shared reasoning",
                "difference [95% CI]": "n/a", "verdict": "inconclusive", "seeds": len(runs_a), "items": 0,
                "diff": nan, "low": nan, "high": nan, "paper_effect": nan, "mde": nan, "unit": unit,
                "quantity": claim.quantity, "direction": claim.direction}
    a, b = arrays
    diff, low, high = difference_interval(a, b, n_boot=n_boot, seed=seed)
    effect = paper_effect(claim, float(b.mean()))
    mde = detectable_effect(a, b)
    return {"claim": claim.text, "id": claim.id, "paper": claim.paper,
            "ours": f"{a.mean():.1f} vs {b.mean():.1f}",
            "difference [95% CI]": f"{diff:+.1f} [{low:+.1f}, {high:+.1f}] {unit}",
            "verdict": verdict(low, high, claim.direction, effect), "seeds": len(runs_a), "items": a.shape[1],
            "diff": diff, "low": low, "high": high, "paper_effect": effect, "mde": mde, "unit": unit,
            "quantity": claim.quantity, "direction": claim.direction}


def power_rows(claims: Sequence[Claim], runs: dict, designs: Sequence[tuple[int, int]] | None = None) -> list[dict]:
    """Per claim, the minimum detectable effect (80% power) at each ``(seeds, items)`` design, projected from the
    variance components observed in its runs (:func:`medrl_lib.scoring.stats.detectable_effect`), beside the paper's
    effect: which numbers of seeds and test items could show it. Items count the whole test split (a claim on some
    modalities gets its share). Default designs: the observed seeds and items, each doubled, and both."""
    if designs is None:
        first = next(rs for rs in runs.values() if rs)
        seeds, items = len(first), len(first[0].records)
        designs = [(seeds, items), (seeds, 2 * items), (2 * seeds, items), (2 * seeds, 2 * items)]
    out = []
    for claim in claims:
        arrays = arm_arrays(claim, runs[claim.a], runs[claim.b])
        if arrays is None:
            continue  # no shared reasoning: nothing to project
        a, b = arrays
        unit = "points" if claim.quantity == "accuracy" else "tokens"
        row = {"id": claim.id, "paper's effect": f"{abs(paper_effect(claim, float(b.mean()))):.1f} {unit}"}
        share = a.shape[1] / max(1, len(runs[claim.a][0].records))  # the claim's share of the test items
        for seeds, items in designs:
            mde = detectable_effect(a, b, seeds=seeds, items=max(2, round(items * share)))
            row[f"{seeds} seeds x {items} items"] = f"{mde:.1f}"
        out.append(row)
    return out
