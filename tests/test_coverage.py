"""The seeds-by-items interval holds its level at 3 and 5 seeds: a simulation with known effects, training noise
between seeds and noise between items (medrl_lib.scoring.coverage). The full grid is benchmarks/interval_coverage.py."""

import numpy as np
import pytest

from medrl_lib.scoring.coverage import Scenario, coverage, simulate, true_difference
from medrl_lib.scoring.stats import detectable_effect, difference_interval, variance_components

LARGE, SMALL = 0.5, 0.0  # training noise between seeds on the logit scale: about 12 points of accuracy, and none


@pytest.mark.parametrize("seeds", [3, 5])  # the book's 3 seeds and the overnight profile's 5
def test_coverage_holds_at_few_seeds_when_seed_noise_is_large(seeds):
    s = Scenario(seeds=seeds, seed_sd=LARGE)
    ours = coverage(s, trials=1500, seed=seeds)
    assert ours["coverage"] >= 0.93
    boot = coverage(s, trials=300, seed=seeds, method="bootstrap", n_boot=500)
    assert boot["coverage"] < 0.91  # the two-level percentile bootstrap this replaced falls short here


@pytest.mark.parametrize("seeds", [3, 5])
def test_no_widening_when_seed_noise_is_small(seeds):
    s = Scenario(seeds=seeds, seed_sd=SMALL)
    ours = coverage(s, trials=600, seed=seeds)
    boot = coverage(s, trials=200, seed=seeds, method="bootstrap", n_boot=500)
    assert 0.93 <= ours["coverage"] <= 0.99
    assert ours["width"] <= {3: 1.3, 5: 1.0}[seeds] * boot["width"]  # the bootstrap over-covers here (~100%)


def test_true_difference_matches_a_large_simulation():
    s = Scenario(seeds=200, items=3000, seed_sd=LARGE)
    a, b = simulate(s, np.random.default_rng(1))
    assert (a.mean() - b.mean()) == pytest.approx(true_difference(s), abs=1.5)


@pytest.mark.parametrize("seed_var, item_var, resid_var", [
    (0.0, 0.0, 1.0),  # noise only
    (4.0, 0.0, 1.0),  # a seed effect
    (0.0, 2.0, 1.0),  # an item effect
    (4.0, 2.0, 1.0),  # both
])
def test_variance_components_recover_known_variances(seed_var, item_var, resid_var):
    rng = np.random.default_rng(0)
    est = [variance_components(rng.normal(0, np.sqrt(seed_var), (40, 1)) + rng.normal(0, np.sqrt(item_var), (1, 400))
                               + rng.normal(0, np.sqrt(resid_var), (40, 400))) for _ in range(20)]
    assert np.mean([e.seed for e in est]) == pytest.approx(seed_var, abs=0.4)
    assert np.mean([e.item for e in est]) == pytest.approx(item_var, abs=0.1)
    assert np.mean([e.residual for e in est]) == pytest.approx(resid_var, abs=0.02)


def test_one_seed_covers_item_noise_only_and_one_item_seed_noise_only():
    rng = np.random.default_rng(0)
    one_seed = rng.integers(0, 2, (1, 400)) * 100.0
    diff, low, high = difference_interval(one_seed, np.zeros_like(one_seed))
    assert low < diff < high and high - low == pytest.approx(2 * 1.966 * one_seed.std(ddof=1) / 20, rel=0.01)
    one_item = np.array([[1.0], [3.0], [5.0]])
    diff, low, high = difference_interval(one_item, np.zeros_like(one_item))
    assert (diff, round(high - diff, 3)) == (3.0, round(4.3027 * 2 / np.sqrt(3), 3))  # the t interval over seeds


def test_detectable_effect_shrinks_with_seeds_and_items():
    rng = np.random.default_rng(0)
    a = rng.normal(0, 3, (3, 1)) + rng.integers(0, 2, (3, 300)) * 100.0
    b = rng.integers(0, 2, (3, 300)) * 100.0
    base = detectable_effect(a, b)
    assert detectable_effect(a, b, seeds=6) < base and detectable_effect(a, b, items=1200) < base
    assert detectable_effect(a, b, power=0.5) < base  # less power asks for less


def test_unknown_interval_method_is_refused():
    with pytest.raises(ValueError, match="satterthwaite"):
        difference_interval(np.zeros((3, 5)), np.zeros((3, 5)), method="jackknife")


def test_gap_interval_covers_on_different_items_of_the_same_seeds():
    from medrl_lib.scoring.stats import gap_interval

    s = Scenario(seeds=3, items=150, seed_sd=LARGE)
    truth, rng, hits, trials = true_difference(s), np.random.default_rng(7), 0, 800
    for _ in range(trials):
        inside, _ = simulate(s, rng)   # arm a on one set of items
        _, outside = simulate(s, rng)  # arm b on another
        _, low, high = gap_interval(inside, outside)
        hits += low <= truth <= high
    # 0.92 measured (the bootstrap it replaced: 0.90): Satterthwaite's plug-in degrees of freedom are liberal when
    # the 3 seeds' term dominates; the scorecard's difference_interval, tested above, holds 0.93
    assert hits / trials >= 0.91
