"""The claims scorecard: intervals and verdicts computed from per-item records."""

import pytest

import numpy as np

from medrl_lib.experiments.results import Run
from medrl_lib.scoring.claims import CLAIMS, VERDICTS, Claim, evaluate_claim, item_matrix, item_values, paper_effect, verdict


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


@pytest.mark.parametrize("low, high, direction, paper, expected", [
    pytest.param(1.0, 5.0, +1, 6.0, "holds", id="holds-below-paper"),  # excludes 0 on the claimed side: holds first
    pytest.param(-5.0, -1.0, +1, 6.0, "reversed", id="reversed"),  # excludes 0 on the other side
    pytest.param(-3.0, 4.0, +1, 6.0, "no effect of the paper's size", id="inside-both"),  # inside (-6, +6)
    pytest.param(-9.0, 4.0, +1, 6.0, "smaller than the paper's", id="excludes-paper-only"),  # below +6, past -6
    pytest.param(-3.0, 8.0, +1, 6.0, "inconclusive", id="reaches-paper"),  # the paper's +6 is inside
    pytest.param(-4.0, 3.0, -1, 6.0, "no effect of the paper's size", id="claimed-decrease-inside"),  # oriented
    pytest.param(-4.0, 9.0, -1, 6.0, "smaller than the paper's", id="claimed-decrease-excludes"),  # -4 > -6: no drop of 6
    pytest.param(-3.0, 4.0, +1, -6.0, "no effect of the paper's size", id="paper-sign-ignored"),  # size, not sign
    pytest.param(-3.0, 4.0, +1, float("nan"), "inconclusive", id="no-paper-effect"),  # NaN: three verdicts only
    pytest.param(-6.0, 4.0, +1, 6.0, "smaller than the paper's", id="at-minus-paper"),  # -6 itself is not excluded
])
def test_replication_verdicts(low, high, direction, paper, expected):
    assert verdict(low, high, direction, paper) == expected
    assert expected in VERDICTS


def test_paper_effect_is_points_for_accuracy_and_a_ratio_for_length():
    e1 = next(c for c in CLAIMS if c.id == "E1")
    e3a = next(c for c in CLAIMS if c.id == "E3a")
    assert paper_effect(e1, 12.0) == pytest.approx(58.04 - 51.56)  # our b arm's level does not matter
    assert paper_effect(e3a, 30.0) == pytest.approx((338.14 / 64.42 - 1) * 30.0)  # x5.25 of our b arm's length


def test_scorecard_row_carries_the_paper_effect_and_the_detectable_effect():
    claim = Claim("X", "a beats b", "e", "a", "b", "accuracy", +1, "ref", 60.0, 50.0)
    rng = np.random.default_rng(0)
    a = [_run(list(rng.random(200) < 0.55)) for _ in range(3)]
    b = [_run(list(rng.random(200) < 0.50)) for _ in range(3)]
    row = evaluate_claim(claim, a, b)
    assert row["paper_effect"] == pytest.approx(10.0) and row["unit"] == "points"
    assert 7.0 < row["mde"] < 20.0  # independent coin flips on 3 x 200 items: about 2.8 x 70.7 / sqrt(600) = 8.1
    assert row["verdict"] in VERDICTS


def test_evaluate_claim_uses_only_the_claims_modalities():
    claim = Claim("X", "a beats b out of domain", "e", "a", "b", "accuracy", +1, "ref", 60.0, 50.0, ("CT",))
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


def test_power_rows_project_the_detectable_effect_to_other_designs():
    from medrl_lib.scoring.claims import power_rows

    claim = Claim("X", "a beats b", "e", "a", "b", "accuracy", +1, "ref", 60.0, 50.0)
    rng = np.random.default_rng(0)
    runs = {"a": [_run(list(rng.random(200) < 0.55)) for _ in range(3)],
            "b": [_run(list(rng.random(200) < 0.50)) for _ in range(3)]}
    (row,) = power_rows([claim], runs, [(3, 200), (3, 800), (12, 200)])
    small, more_items, more_seeds = (float(row[k]) for k in ("3 seeds x 200 items", "3 seeds x 800 items",
                                                             "12 seeds x 200 items"))
    assert row["paper's effect"] == "10.0 points"
    assert more_items < small and more_seeds < small  # both shrink it; coin flips: items and seeds alike


def test_power_rows_default_designs_double_the_observed_seeds_and_items():
    from medrl_lib.scoring.claims import power_rows

    claim = Claim("X", "a beats b", "e", "a", "b", "accuracy", +1, "ref", 60.0, 50.0)
    rng = np.random.default_rng(1)
    runs = {"a": [_run(list(rng.random(100) < 0.6)) for _ in range(3)],
            "b": [_run(list(rng.random(100) < 0.5)) for _ in range(3)]}
    (row,) = power_rows([claim], runs)
    assert list(row)[2:] == ["3 seeds x 100 items", "3 seeds x 200 items", "6 seeds x 100 items",
                             "6 seeds x 200 items"]  # read from the runs: 3 seeds, 100 items each
