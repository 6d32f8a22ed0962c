"""The claims scorecard: each qualitative claim of the two papers, tested on our runs with a 95% interval.

A claim compares two arms on one item-level quantity (correct or not, reasoning tokens). The arms are trained
with the same seeds and scored on the same test items, so the difference of their means gets a two-level
bootstrap interval: resample the seeds, then the test items (the same items for both arms), and take the
percentile interval of ``mean(a) - mean(b)`` (:func:`medrl_lib.stats.difference_interval`). The verdict is computed,
never typed:

* **holds**: the interval lies entirely on the side the paper claims;
* **reversed**: it lies entirely on the other side;
* **inconclusive**: it contains 0.

>>> import numpy as np
>>> a = [[1.0] * 50 + [0.0] * 50] * 3; b = [[0.0] * 100] * 3
>>> lo, hi = difference_interval(np.array(a), np.array(b), n_boot=200, seed=0)[1:]
>>> verdict(lo, hi, +1), verdict(-hi, -lo, +1), verdict(-0.1, 0.2, +1)
('holds', 'reversed', 'inconclusive')
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .metrics import record_well_formed, thinking_length
from .stats import difference_interval


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
    modalities: tuple[str, ...] = ()
    """restrict to items of these modalities (empty: all items)"""


#: The claims of Zhu et al. (E1-E5) and MedVLM-R1 (E6). Arms are the run names of the experiments.
CLAIMS: tuple[Claim, ...] = (
    Claim("E1", "Starting GRPO from the instruct model beats starting from the base model in accuracy",
          "01_initialization", "grpo-instruct", "grpo-base", "accuracy", +1, "Z: 58.04 vs 51.56"),
    Claim("E2", "Adding the semantic-alignment reward improves accuracy", "02_semantic_alignment",
          "grpo-sa", "grpo-instruct", "accuracy", +1, "Z: 59.86 vs 58.04"),
    Claim("E3a", "The ECR length reward lengthens the reasoning", "03_length_rewards", "grpo-sa-ecr", "grpo-sa",
          "thinking_length", +1, "Z: 338.14 vs 64.42 tokens"),
    Claim("E3b", "The ECR length reward costs accuracy", "03_length_rewards", "grpo-sa-ecr", "grpo-sa",
          "accuracy", -1, "Z: 50.17 vs 59.86 (+SA); Zhu's '7.87% drop' is against GRPO, 58.04"),
    Claim("E3c", "CWR costs less accuracy than ECR", "03_length_rewards", "grpo-sa-cwr", "grpo-sa-ecr",
          "accuracy", +1, "Z: 54.68 vs 50.17"),
    Claim("E4a", "Dr.GRPO beats GRPO in accuracy", "04_dr_grpo", "dr-grpo", "grpo-instruct", "accuracy", +1,
          "Z: 61.09 vs 58.04"),
    Claim("E4b", "Dr.GRPO shortens the reasoning (Zhu section 1 (4): 'token efficiency'; Liu et al.)", "04_dr_grpo",
          "dr-grpo", "grpo-instruct",
          "thinking_length", -1, "Z: 76.11 vs 66.41 tokens (longer in Z's table)"),
    Claim("E5a", "GRPO beats full SFT", "05_sft_vs_rl", "grpo-instruct", "sft", "accuracy", +1,
          "Z: 58.04 vs 52.00"),
    Claim("E5b", "GRPO beats LoRA", "05_sft_vs_rl", "grpo-instruct", "lora", "accuracy", +1, "Z: 58.04 vs 45.98"),
    Claim("E5c", "GRPO beats DPO", "05_sft_vs_rl", "grpo-instruct", "dpo", "accuracy", +1, "Z: 58.04 vs 46.97"),
    Claim("E6", "Trained on MRI, GRPO generalises to CT and X-ray better than SFT", "06_ood_generalization",
          "ood-grpo", "ood-sft", "accuracy", +1, "M: 69.67 vs 44.17 (mean of CT and X-ray)", ("CT", "X-ray")),
)


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


def verdict(low: float, high: float, direction: int) -> str:
    """'holds', 'reversed' or 'inconclusive' for an interval of a - b and the claimed direction."""
    if direction * low > 0 and direction * high > 0:
        return "holds"
    if direction * low < 0 and direction * high < 0:
        return "reversed"
    return "inconclusive"


def evaluate_claim(claim: Claim, runs_a: Sequence, runs_b: Sequence, *, n_boot: int = 2000, seed: int = 0) -> dict:
    """A scorecard row for ``claim`` from the seeds' runs of its two arms (matched by position)."""
    if not runs_a or len(runs_a) != len(runs_b):
        raise ValueError(f"{claim.id}: need the same, non-zero number of seeds per arm, got {len(runs_a)} and "
                         f"{len(runs_b)}")
    try:
        _, ids = item_matrix([*runs_a, *runs_b], claim.quantity, claim.modalities)
    except ValueError:
        if claim.quantity != "thinking_length":
            raise ValueError(f"{claim.id}: the two arms share no test items") from None
        nan = float("nan")  # no item has a reasoning in every run of both arms: nothing to compare
        return {"claim": claim.text, "id": claim.id, "paper": claim.paper, "ours": "no shared reasoning",
                "difference [95% CI]": "n/a", "verdict": "inconclusive", "seeds": len(runs_a), "items": 0,
                "diff": nan, "low": nan, "high": nan}
    a, _ = item_matrix(runs_a, claim.quantity, claim.modalities, ids)
    b, _ = item_matrix(runs_b, claim.quantity, claim.modalities, ids)
    diff, low, high = difference_interval(a, b, n_boot=n_boot, seed=seed)
    unit = "points" if claim.quantity == "accuracy" else "tokens"
    return {"claim": claim.text, "id": claim.id, "paper": claim.paper,
            "ours": f"{a.mean():.1f} vs {b.mean():.1f}",
            "difference [95% CI]": f"{diff:+.1f} [{low:+.1f}, {high:+.1f}] {unit}",
            "verdict": verdict(low, high, claim.direction), "seeds": len(runs_a), "items": len(ids),
            "diff": diff, "low": low, "high": high}
