"""The claims scorecard: intervals and verdicts computed from per-item records."""

import pytest

from medrl_lib.claims import CLAIMS, Claim, evaluate_claim, item_matrix, item_values, verdict
from medrl_lib.results import Run


def _run(correct, tokens=None, modality="MRI"):
    tokens = tokens or [10] * len(correct)
    recs = [{"id": f"i{k}", "modality": modality, "correct": c, "reasoning_tokens": t, "reasoning": "r" if c else None,
             "well_formed": c} for k, (c, t) in enumerate(zip(correct, tokens))]
    return Run(path=None, config={}, metrics={}, records=recs)


@pytest.mark.parametrize("low, high, direction, expected", [
    pytest.param(1.0, 5.0, +1, "holds", id="above-zero"),  # a > b as claimed
    pytest.param(-5.0, -1.0, +1, "reversed", id="below-zero"),  # b > a: the opposite of the claim
    pytest.param(-1.0, 5.0, +1, "inconclusive", id="straddles"),  # interval contains 0
    pytest.param(-5.0, -1.0, -1, "holds", id="claimed-decrease"),  # claim expects a < b, and it is
    pytest.param(0.0, 3.0, +1, "inconclusive", id="touches-zero"),  # an endpoint at 0 is not a difference
])
def test_verdict(low, high, direction, expected):
    assert verdict(low, high, direction) == expected


def test_evaluate_claim_uses_only_the_claims_modalities():
    claim = Claim("X", "a beats b out of domain", "e", "a", "b", "accuracy", +1, "ref", ("CT",))
    a = [_run([True] * 20, modality="CT")]
    b = [_run([False] * 20, modality="CT")]
    row = evaluate_claim(claim, a, b, n_boot=200)
    assert row["verdict"] == "holds" and row["items"] == 20 and row["diff"] == 100.0
    mri_only = [_run([True] * 20, modality="MRI")]
    with pytest.raises(ValueError, match="share no test items"):
        evaluate_claim(claim, mri_only, mri_only, n_boot=10)


def test_item_values_and_bad_quantity():
    run = _run([True, False], tokens=[5, 7])
    assert item_values(run.records, "accuracy") == {"i0": 100.0, "i1": 0.0}
    assert item_values(run.records, "thinking_length") == {"i0": 5.0}  # i1 has no reasoning: no length, not 0
    assert item_values(run.records, "format") == {"i0": 100.0, "i1": 0.0}  # the format reward's rule
    with pytest.raises(ValueError, match="perplexity"):
        item_values(run.records, "perplexity")


def test_length_claim_without_shared_reasoning_is_inconclusive():
    claim = next(c for c in CLAIMS if c.id == "E3a")
    row = evaluate_claim(claim, [_run([False, False])], [_run([True, True])], n_boot=10)
    assert (row["verdict"], row["items"], row["ours"]) == ("inconclusive", 0, "no shared reasoning")


def test_every_claim_names_a_known_experiment_and_direction():
    assert {c.experiment for c in CLAIMS} == {"01_initialization", "02_semantic_alignment", "03_length_rewards",
                                              "04_dr_grpo", "05_sft_vs_rl", "06_ood_generalization"}
    assert all(c.direction in (-1, 1) and c.a != c.b for c in CLAIMS)


def test_item_matrix_keeps_the_shared_items_in_one_column_order():
    a = _run([True, False, True])
    b = Run(path=None, config={}, metrics={}, records=[dict(r) for r in a.records[1:]][::-1])  # i2, i1
    m, ids = item_matrix([a, b], "accuracy")
    assert ids == ["i1", "i2"] and m.tolist() == [[0.0, 100.0], [0.0, 100.0]]
    with pytest.raises(ValueError, match="share no test items"):
        item_matrix([a], "accuracy", modalities=("CT",))
