"""Tests for medrl_lib.scoring.stats: accuracy, the bootstrap intervals over items and over seeds x items, and the summaries
over seeds."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from medrl_lib.scoring.stats import (
    Interval,
    accuracy,
    aggregate_seeds,
    bootstrap_ci,
    by_group,
    difference_interval,
    gap_interval,
    paired_difference_ci,
    t_half_width,
    unpaired_difference_ci,
)

NAN = float("nan")


def same(a: float, b: float) -> bool:
    """Equal, or both NaN."""
    return (math.isnan(a) and math.isnan(b)) or a == b


# ---------------------------------------------------------------------------------------------
# accuracy and by_group
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("correct", "expected"),
    [
        ([True, True, False, False], 50.0),  # half right
        ([True], 100.0),  # one item, right
        ([False, False, False], 0.0),  # all wrong
        ([1, 0, 0, 0], 25.0),  # ints count as bools
        ([], NAN),  # nothing to score: undefined, not 0
    ],
)
def test_accuracy(correct: list[Any], expected: float) -> None:
    assert same(accuracy(correct), expected)


def test_by_group() -> None:
    values = [True, False, True, True, False]
    groups = ["MRI", "MRI", "CT", "X-ray", "X-ray"]
    # CT 1/1, MRI 1/2, X-ray 1/2, all 3/5; groups sorted, "all" last
    assert by_group(values, groups, accuracy) == {"CT": 100.0, "MRI": 50.0, "X-ray": 50.0, "all": 60.0}
    assert list(by_group(values, groups, accuracy)) == ["CT", "MRI", "X-ray", "all"]
    assert by_group([1.0, 3.0], ["a", "a"], lambda v: float(np.mean(v))) == {"a": 2.0, "all": 2.0}  # any fn
    with pytest.raises(ValueError, match="length mismatch"):
        by_group([True], ["a", "b"], accuracy)
    with pytest.raises(ValueError, match="'all'"):
        by_group([True], ["all"], accuracy)


# ---------------------------------------------------------------------------------------------
# bootstrap intervals
# ---------------------------------------------------------------------------------------------


def test_bootstrap_matches_a_hand_computation() -> None:
    # the same index matrix drawn by hand: row means, then the 2.5% and 97.5% quantiles
    values = np.array([3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0])
    index = np.random.default_rng(7).integers(0, len(values), size=(500, len(values)))
    low, high = np.quantile(values[index].mean(axis=1), [0.025, 0.975])
    assert bootstrap_ci(values, n_boot=500, seed=7) == Interval(float(values.mean()), float(low), float(high), 8)


def test_bootstrap_is_deterministic_in_the_seed() -> None:
    values = np.random.default_rng(0).normal(size=50)
    assert bootstrap_ci(values, seed=3) == bootstrap_ci(values, seed=3)  # same seed, same interval
    assert bootstrap_ci(values, seed=3) != bootstrap_ci(values, seed=4)  # another seed moves the bounds
    assert bootstrap_ci(values, seed=3).value == bootstrap_ci(values, seed=4).value  # but not the point value


@pytest.mark.parametrize(
    "values",
    [
        np.random.default_rng(1).normal(5.0, 2.0, size=40),  # symmetric
        np.random.default_rng(2).exponential(3.0, size=60),  # skewed
        np.random.default_rng(3).integers(0, 2, size=30).astype(float) * 100,  # accuracy-like 0/100
        np.random.default_rng(4).integers(1, 11, size=25).astype(float),  # 1-10 scores
    ],
)
def test_bootstrap_interval_contains_the_point_value(values: np.ndarray) -> None:
    for stat in (np.mean, np.median):
        ci = bootstrap_ci(values, stat)
        assert ci.low <= ci.value <= ci.high and ci.low < ci.high and ci.n == len(values)


def test_bootstrap_width_shrinks_with_n() -> None:
    rng = np.random.default_rng(0)
    widths = []
    for n in (25, 100, 400, 1600):
        ci = bootstrap_ci(rng.integers(0, 2, size=n).astype(float))
        widths.append(ci.high - ci.low)
    assert all(a > b for a, b in zip(widths, widths[1:]))  # strictly narrower with more items
    assert widths[0] / widths[-1] == pytest.approx(8.0, rel=0.3)  # about sqrt(1600 / 25) = 8


def test_bootstrap_large_input_is_chunked_and_matches_the_normal_approximation() -> None:
    # 5000 items × 1000 resamples exceed one chunk of resampled values
    values = np.random.default_rng(5).integers(0, 2, size=5000).astype(float)
    ci = bootstrap_ci(values)
    half = 1.96 * values.std() / math.sqrt(len(values))
    assert (ci.high - ci.low) / 2 == pytest.approx(half, rel=0.15)
    assert ci.low <= ci.value <= ci.high


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([4.0] * 10, Interval(4.0, 4.0, 4.0, 10)),  # constant: zero width
        ([0.1] * 7, Interval(0.1, 0.1, 0.1, 7)),  # constant non-dyadic float: still exactly zero width
        ([1.0, NAN, 1.0, None], Interval(1.0, 1.0, 1.0, 2)),  # NaN and None dropped, n counts the rest
        ([], Interval(NAN, NAN, NAN, 0)),  # empty
        ([NAN, None], Interval(NAN, NAN, NAN, 0)),  # nothing observed
        ([True, True], Interval(1.0, 1.0, 1.0, 2)),  # bools are 0/1
    ],
)
def test_bootstrap_known_intervals(values: list[Any], expected: Interval) -> None:
    ci = bootstrap_ci(values)
    assert ci.n == expected.n
    for got, want in ((ci.value, expected.value), (ci.low, expected.low), (ci.high, expected.high)):
        assert same(got, want) or got == pytest.approx(want, rel=1e-15)  # a mean of 0.1s may be off by an ulp
    assert same(ci.low, ci.high) or ci.low < ci.high
    if expected.n and expected.low == expected.high:
        assert ci.low == ci.high  # exactly zero width: every resample has the same statistic


def test_bootstrap_nan_are_excluded_not_counted_as_zero() -> None:
    values = list(np.random.default_rng(0).normal(size=30))
    with_nan = values[:10] + [NAN] * 5 + values[10:]
    assert bootstrap_ci(with_nan) == bootstrap_ci(values)  # the same resamples of the same observed values


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_boot": 0}, "n_boot"),  # at least one resample
        ({"n_boot": 2.5}, "n_boot"),  # an integer
        ({"level": 1.0}, "level"),  # 100% interval: unbounded
        ({"level": 0.0}, "level"),  # empty interval
    ],
)
def test_bootstrap_validation(kwargs: dict[str, Any], match: str) -> None:
    for fn in (lambda: bootstrap_ci([1.0, 2.0], **kwargs), lambda: unpaired_difference_ci([1.0], [2.0], **kwargs),
               lambda: paired_difference_ci([1.0], [2.0], **kwargs)):
        with pytest.raises(ValueError, match=match):
            fn()


def test_paired_difference() -> None:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 2, size=200).astype(float)
    assert paired_difference_ci(base, base) == Interval(0.0, 0.0, 0.0, 200)  # identical arms: [0, 0]
    assert paired_difference_ci([3.0, 5.0, 7.0], [1.0, 3.0, 5.0]) == Interval(2.0, 2.0, 2.0, 3)  # constant gap
    # a pair with a missing side is dropped from both arms
    assert paired_difference_ci([1.0, NAN, 0.0, 1.0], [0.0, 1.0, None, 0.0]) == Interval(1.0, 1.0, 1.0, 2)
    # arms that agree on most items: the paired interval is much narrower than the unpaired one
    other = base.copy()
    other[:10] = 1.0 - other[:10]
    paired, unpaired = paired_difference_ci(base, other), unpaired_difference_ci(base, other)
    assert paired.value == pytest.approx(unpaired.value)
    assert (paired.high - paired.low) < 0.5 * (unpaired.high - unpaired.low)
    assert paired.low <= paired.value <= paired.high
    with pytest.raises(ValueError, match="length mismatch"):
        paired_difference_ci([1.0], [1.0, 2.0])


def test_unpaired_difference() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(1.0, 1.0, size=300), rng.normal(0.0, 1.0, size=100)
    ci = unpaired_difference_ci(a, b, seed=5)
    assert ci == unpaired_difference_ci(a, b, seed=5)  # deterministic
    assert ci.n == 400 and ci.value == pytest.approx(a.mean() - b.mean())
    assert ci.low < ci.value < ci.high and ci.low < 1.0 < ci.high  # covers the true difference here
    assert unpaired_difference_ci([2.0, 2.0], [0.5, 0.5, 0.5]) == Interval(1.5, 1.5, 1.5, 5)  # constant arms
    assert unpaired_difference_ci([], [1.0]).n == 0 and math.isnan(unpaired_difference_ci([], [1.0]).value)


# ---------------------------------------------------------------------------------------------
# seeds
# ---------------------------------------------------------------------------------------------


T1, T2 = 12.706204736174698, 4.302652729911275  # Student t quantiles 0.975 with 1 and 2 degrees of freedom


@pytest.mark.parametrize(
    ("values", "mean", "std", "n", "low", "high"),
    [
        ([1.0, 2.0, 3.0], 2.0, 1.0, 3, 2.0 - T2 / math.sqrt(3), 2.0 + T2 / math.sqrt(3)),  # half-width t · 1 / sqrt3
        ([0.0, 2.0], 1.0, math.sqrt(2), 2, 1.0 - T1, 1.0 + T1),  # half-width t · sqrt2 / sqrt2
        ([5.0, 5.0, 5.0, 5.0], 5.0, 0.0, 4, 5.0, 5.0),  # no spread: zero width
        ([58.0], 58.0, 0.0, 1, NAN, NAN),  # one seed: std 0, no interval
        ([58.0, NAN, None], 58.0, 0.0, 1, NAN, NAN),  # missing runs dropped
        ([], NAN, NAN, 0, NAN, NAN),  # no seed at all
    ],
)
def test_aggregate_seeds(values: list[Any], mean: float, std: float, n: int, low: float, high: float) -> None:
    s = aggregate_seeds(values)
    assert s.n == n
    for got, want in ((s.mean, mean), (s.std, std), (s.low, low), (s.high, high)):
        assert (math.isnan(got) and math.isnan(want)) or got == pytest.approx(want, rel=1e-9, abs=1e-12)


def test_t_half_width_is_the_seed_interval() -> None:
    s = aggregate_seeds([1.0, 2.0, 3.0, 6.0])
    assert float(t_half_width(s.std, s.n)) == pytest.approx(s.high - s.mean, rel=1e-12)
    widths = t_half_width(np.array([1.0, math.sqrt(2)]), np.array([3, 2]))  # elementwise over arrays
    assert widths == pytest.approx([T2 / math.sqrt(3), T1])
    with pytest.raises(ValueError, match="level"):
        t_half_width(1.0, 3, level=1.0)


# ---------------------------------------------------------------------------------------------
# two-level bootstrap: seeds, then items
# ---------------------------------------------------------------------------------------------


def test_interval_of_a_sure_difference_excludes_zero_and_is_centred():
    a = np.array([[100.0] * 60 + [0.0] * 40] * 3)
    b = np.array([[100.0] * 30 + [0.0] * 70] * 3)
    diff, low, high = difference_interval(a, b, n_boot=500, seed=1)
    assert diff == pytest.approx(30.0) and 0 < low < 30 < high


def test_identical_arms_give_zero_width_interval():
    a = np.random.default_rng(0).integers(0, 2, size=(3, 50)).astype(float)
    assert difference_interval(a, a.copy(), n_boot=200) == (0.0, 0.0, 0.0)


def test_seed_spread_widens_the_interval():
    items = 200
    steady = np.array([[100.0] * 110 + [0.0] * 90] * 3)
    noisy = np.array([[100.0] * 70 + [0.0] * 130, [100.0] * 150 + [0.0] * 50, [100.0] * 110 + [0.0] * 90])
    base = np.zeros((3, items))
    w_steady = np.subtract(*difference_interval(steady, base, n_boot=1000)[2:0:-1])
    w_noisy = np.subtract(*difference_interval(noisy, base, n_boot=1000)[2:0:-1])
    assert w_noisy > w_steady


def test_gap_interval_rejects_unmatched_seeds():
    with pytest.raises(ValueError, match="same seeds"):
        gap_interval(np.zeros((3, 10)), np.zeros((2, 10)))


@pytest.mark.parametrize("fn", [difference_interval, gap_interval])
def test_two_level_validation(fn: Any) -> None:
    a = np.zeros((3, 10))
    with pytest.raises(ValueError, match="n_boot"):
        fn(a, a, n_boot=0)
    with pytest.raises(ValueError, match="level"):
        fn(a, a, level=1.0)
