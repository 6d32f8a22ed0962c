"""Statistics of the study: accuracy, percentile-bootstrap intervals, and summaries over training seeds.

Neither paper (Zhu et al. 2025; Pan et al. 2025, MedVLM-R1) reports confidence intervals or seeds; here every figure
carries a 95% interval (the book's Methods page, ``book/methods.md``):

* one evaluation: the percentile bootstrap over its test items (:func:`bootstrap_ci`), and of the difference of two
  arms on the same items (:func:`paired_difference_ci`) or on different ones (:func:`unpaired_difference_ci`);
* several seeds of two arms: the two-level bootstrap over seeds, then items (:func:`difference_interval` on shared
  items, the claims scorecard; :func:`gap_interval` on different items of the same seeds, the calibration checks);
* one metric over seeds: the Student-t interval of its mean (:func:`aggregate_seeds`, :func:`t_half_width`).

Conventions: statistics are pure functions of plain lists and arrays; ``None`` and NaN mean *missing*: they are
excluded and counted (``n`` is the number of values used). Every bootstrap draws its resamples from
``numpy.random.default_rng(seed)``, so an interval depends only on its inputs, ``n_boot``, ``seed`` and ``level``;
its bounds are the ``(1 - level)/2`` and ``(1 + level)/2`` quantiles (linear interpolation) of the resampled
statistics.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from .checks import check_lengths, positive_int

__all__ = [
    "Interval",
    "SeedSummary",
    "accuracy",
    "aggregate_seeds",
    "bootstrap_ci",
    "by_group",
    "difference_interval",
    "gap_interval",
    "paired_difference_ci",
    "t_half_width",
    "unpaired_difference_ci",
]

# =============================================================================================
# Accuracy, overall and by group
# =============================================================================================


def accuracy(correct: Sequence[bool]) -> float:
    """Percentage of true values in ``correct``; NaN for an empty sequence.

    >>> accuracy([True, False, True, True]), accuracy([False]), accuracy([])
    (75.0, 0.0, nan)
    """
    if len(correct) == 0:
        return math.nan
    return 100.0 * sum(bool(c) for c in correct) / len(correct)


def by_group(
    values: Sequence[Any], groups: Sequence[Hashable], fn: Callable[[list[Any]], float]
) -> dict[Hashable, float]:
    """``fn`` of the values of each group (groups in sorted order), plus ``"all"``: ``fn`` of every value.

    ``ValueError`` if the lengths differ or a group is itself named ``"all"``.

    >>> by_group([True, False, True, True], ["CT", "CT", "MRI", "MRI"], accuracy)
    {'CT': 50.0, 'MRI': 100.0, 'all': 75.0}
    """
    check_lengths(values=values, groups=groups)
    names = sorted(set(groups), key=str)
    if "all" in names:
        raise ValueError("a group named 'all' would collide with the overall key 'all'")
    out: dict[Hashable, float] = {g: fn([v for v, h in zip(values, groups) if h == g]) for g in names}
    out["all"] = fn(list(values))
    return out


# =============================================================================================
# One evaluation: the percentile bootstrap over its items
# =============================================================================================


@dataclass(frozen=True)
class Interval:
    """A point estimate with a confidence interval."""

    value: float
    """the statistic on the observed values"""
    low: float
    """lower bound of the interval"""
    high: float
    """upper bound of the interval"""
    n: int
    """number of (non-missing) values the statistic used"""


_NAN_INTERVAL: Final = Interval(math.nan, math.nan, math.nan, 0)
_MAX_CELLS: Final = 1 << 22  # resampled values held at once by the bootstrap (32 MB of float64)


def _observed(values: Sequence[float | None] | np.ndarray) -> np.ndarray:
    """The values as a float array without missing ones (``None`` and NaN).

    >>> _observed([1, None, float("nan"), True]).tolist()
    [1.0, 1.0]
    """
    x = np.asarray(values, dtype=float).ravel()
    return x[~np.isnan(x)]


def _check_level(level: float) -> None:
    """``ValueError`` unless ``0 < level < 1``."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie strictly between 0 and 1, got {level!r}")


def _check_boot(n_boot: int, level: float) -> None:
    """``ValueError`` unless ``n_boot`` is a positive integer and ``0 < level < 1``."""
    positive_int("n_boot", n_boot)
    _check_level(level)


def _boot_stats(x: np.ndarray, stat: Callable[..., Any], n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """``stat`` of ``n_boot`` resamples of ``x`` (with replacement), in chunks of at most ``_MAX_CELLS`` values."""
    rows = max(1, _MAX_CELLS // len(x))
    chunks = []
    for start in range(0, n_boot, rows):
        index = rng.integers(0, len(x), size=(min(rows, n_boot - start), len(x)))
        chunks.append(np.asarray(stat(x[index], axis=1), dtype=float))
    return np.concatenate(chunks)


def _percentiles(stats: np.ndarray, level: float) -> tuple[float, float]:
    """The ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of ``stats`` (linear interpolation)."""
    low, high = np.quantile(stats, [(1.0 - level) / 2.0, (1.0 + level) / 2.0])
    return float(low), float(high)


def bootstrap_ci(
    values: Sequence[float | None] | np.ndarray,
    stat: Callable[..., Any] = np.mean,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> Interval:
    """Percentile-bootstrap interval of ``stat`` over the items of ``values``.

    Missing values (``None``, NaN) are dropped first; ``n`` counts the rest. The ``n_boot`` resamples draw
    ``n`` items with replacement each, as one seeded index matrix (``numpy.random.default_rng(seed)``), so
    the interval depends only on the values, ``stat``, ``n_boot``, ``seed`` and ``level``. ``stat`` is a
    numpy reduction taking ``axis`` (``np.mean``, ``np.median``, ...). The bounds are the ``(1 - level)/2``
    and ``(1 + level)/2`` quantiles of the resampled statistics. No value → all-NaN interval with ``n=0``;
    a constant vector → a zero-width interval.

    >>> bootstrap_ci([2.0, 2.0, None, 2.0])
    Interval(value=2.0, low=2.0, high=2.0, n=3)
    >>> bootstrap_ci([float("nan")])
    Interval(value=nan, low=nan, high=nan, n=0)
    >>> ci = bootstrap_ci([0.0, 1.0] * 50, seed=1)
    >>> ci.value, 0.39 < ci.low < 0.45 < 0.5 < 0.55 < ci.high < 0.61, ci.n
    (0.5, True, 100)
    """
    _check_boot(n_boot, level)
    x = _observed(values)
    if x.size == 0:
        return _NAN_INTERVAL
    stats = _boot_stats(x, stat, n_boot, np.random.default_rng(seed))
    low, high = _percentiles(stats, level)
    return Interval(float(stat(x)), low, high, int(x.size))


def paired_difference_ci(
    a: Sequence[float | None] | np.ndarray,
    b: Sequence[float | None] | np.ndarray,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> Interval:
    """Bootstrap interval of ``mean(a) - mean(b)`` for two arms scored on the **same** items.

    ``a[i]`` and ``b[i]`` belong to item ``i``; the items are resampled jointly, which is the bootstrap
    of the per-item differences ``a[i] - b[i]`` (the mean of differences equals the difference of means).
    An item missing in either arm is dropped from both; ``n`` counts the pairs used. ``ValueError`` if the
    lengths differ. Identical arms give ``[0, 0]``.

    >>> paired_difference_ci([1, 0, 1, 1], [1, 0, 1, 1])
    Interval(value=0.0, low=0.0, high=0.0, n=4)
    >>> paired_difference_ci([3, 5, None], [1, 3, 0])  # every remaining pair differs by 2
    Interval(value=2.0, low=2.0, high=2.0, n=2)
    """
    check_lengths(a=a, b=b)
    diff = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    return bootstrap_ci(diff, np.mean, n_boot=n_boot, seed=seed, level=level)


def unpaired_difference_ci(
    a: Sequence[float | None] | np.ndarray,
    b: Sequence[float | None] | np.ndarray,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> Interval:
    """Bootstrap interval of ``mean(a) - mean(b)`` for two **different** sets of items.

    Each side is resampled on its own (missing values dropped), from one seeded generator: ``a``'s
    resamples first, then ``b``'s. ``n`` is the number of values used on both sides together; if either
    side has none, the interval is all NaN with ``n=0``.

    >>> unpaired_difference_ci([3.0, 3.0, 3.0], [1.0, 1.0])
    Interval(value=2.0, low=2.0, high=2.0, n=5)
    >>> unpaired_difference_ci([1.0], [None])
    Interval(value=nan, low=nan, high=nan, n=0)
    """
    _check_boot(n_boot, level)
    xa, xb = _observed(a), _observed(b)
    if xa.size == 0 or xb.size == 0:
        return _NAN_INTERVAL
    rng = np.random.default_rng(seed)
    stats = _boot_stats(xa, np.mean, n_boot, rng) - _boot_stats(xb, np.mean, n_boot, rng)
    low, high = _percentiles(stats, level)
    return Interval(float(xa.mean() - xb.mean()), low, high, int(xa.size + xb.size))


# =============================================================================================
# Several seeds of two arms: the two-level bootstrap over seeds, then items
# =============================================================================================


def _two_level_means(values: np.ndarray, seeds: np.ndarray, items: np.ndarray) -> np.ndarray:
    """The mean of each resample of a (seeds, items) array: row ``k`` takes seeds ``seeds[k]`` (B, S) and, within
    every drawn seed, items ``items[k]`` (B, I); returns (B,)."""
    return values[seeds[:, :, None], items[:, None, :]].mean(axis=(1, 2))


def difference_interval(a: np.ndarray, b: np.ndarray, *, n_boot: int = 2000, seed: int = 0,
                        level: float = 0.95) -> tuple[float, float, float]:
    """(mean(a) - mean(b), low, high): two-level bootstrap over seeds (rows) and shared items (columns).

    ``a`` and ``b`` are (seeds, items) arrays of two arms trained with the same seeds and scored on the same items
    (column ``j`` is one item in both). Each resample draws the seeds, then the items, with replacement, the same
    rows and columns for both arms, and takes the mean of ``a - b`` over them: the seeds' spread and the items'
    both widen the interval.

    >>> a = np.array([[1.0] * 50 + [0.0] * 50] * 3); b = np.zeros((3, 100))
    >>> diff, low, high = difference_interval(a, b, n_boot=200)
    >>> diff, 0.35 < low < 0.5 < high < 0.65, difference_interval(a, a, n_boot=50)
    (0.5, True, (0.0, 0.0, 0.0))
    """
    _check_boot(n_boot, level)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"a and b must be (seeds, items) arrays of one shape, got {a.shape} and {b.shape}")
    rng = np.random.default_rng(seed)
    n_seeds, n_items = a.shape
    seeds = rng.integers(0, n_seeds, size=(n_boot, n_seeds))
    items = rng.integers(0, n_items, size=(n_boot, n_items))
    diff = a - b
    low, high = _percentiles(_two_level_means(diff, seeds, items), level)
    return float(diff.mean()), low, high


def gap_interval(inside: np.ndarray, outside: np.ndarray, *, n_boot: int = 2000, seed: int = 0,
                 level: float = 0.95) -> tuple[float, float, float]:
    """(mean(inside) - mean(outside), low, high) for (seeds, items) arrays on different items of the same seeds:
    resample seeds (rows, shared), then the items of each array independently.

    >>> inside = np.array([[100.0] * 40 + [0.0] * 10] * 3); outside = np.array([[100.0] * 20 + [0.0] * 30] * 3)
    >>> diff, low, high = gap_interval(inside, outside, n_boot=200, seed=0)
    >>> round(diff, 1), low > 0
    (40.0, True)
    """
    _check_boot(n_boot, level)
    if inside.ndim != 2 or outside.ndim != 2 or len(inside) != len(outside):
        raise ValueError(f"need (seeds, items) arrays with the same seeds, got {inside.shape} and {outside.shape}")
    rng = np.random.default_rng(seed)
    n_seeds = len(inside)
    seeds = rng.integers(0, n_seeds, size=(n_boot, n_seeds))
    items_in = rng.integers(0, inside.shape[1], size=(n_boot, inside.shape[1]))
    items_out = rng.integers(0, outside.shape[1], size=(n_boot, outside.shape[1]))
    boot = _two_level_means(inside, seeds, items_in) - _two_level_means(outside, seeds, items_out)
    low, high = _percentiles(boot, level)
    return float(inside.mean() - outside.mean()), low, high


# =============================================================================================
# One metric over seeds: the Student-t interval of its mean
# =============================================================================================


@dataclass(frozen=True)
class SeedSummary:
    """A metric summarised over training seeds."""

    mean: float
    """mean over seeds"""
    std: float
    """sample standard deviation over seeds (ddof=1); 0.0 for a single seed"""
    n: int
    """number of seeds (non-missing values)"""
    low: float
    """lower bound of the t-based interval of the mean; NaN for fewer than two seeds"""
    high: float
    """upper bound of the t-based interval of the mean; NaN for fewer than two seeds"""


def aggregate_seeds(values: Sequence[float | None], level: float = 0.95) -> SeedSummary:
    """Mean, standard deviation and Student-t interval of the mean of one metric over seeds.

    ``mean ± t_{(1 + level)/2, n - 1} · std / sqrt(n)`` with ``std`` of ddof 1. Missing values (``None``,
    NaN) are dropped. One seed: ``std = 0.0`` and NaN bounds (no spread can be estimated from one run);
    no seed: everything NaN, ``n = 0``.

    >>> s = aggregate_seeds([1.0, 2.0, 3.0])  # t(0.975, 2) = 4.3027, std 1
    >>> s.mean, s.std, s.n, round(s.low, 4), round(s.high, 4)
    (2.0, 1.0, 3, -0.4841, 4.4841)
    >>> aggregate_seeds([58.0])
    SeedSummary(mean=58.0, std=0.0, n=1, low=nan, high=nan)
    """
    _check_level(level)
    x = _observed(values)
    if x.size == 0:
        return SeedSummary(math.nan, math.nan, 0, math.nan, math.nan)
    mean = float(x.mean())
    if x.size == 1:
        return SeedSummary(mean, 0.0, 1, math.nan, math.nan)
    std = float(x.std(ddof=1))
    half = float(t_half_width(std, x.size, level))
    return SeedSummary(mean, std, int(x.size), mean - half, mean + half)


def t_half_width(std: Any, n: Any, level: float = 0.95) -> Any:
    """Half-width of the Student-t ``level`` interval of a mean: ``t_{(1 + level)/2, n - 1} · std / sqrt(n)``.

    ``std`` (ddof 1) and ``n`` (values, at least 2) may be numbers or numpy arrays of them (elementwise).

    >>> round(float(t_half_width(1.0, 3)), 4)  # t(0.975, 2) = 4.3027, over sqrt(3)
    2.4841
    """
    from scipy.stats import t

    _check_level(level)
    return t.ppf((1.0 + level) / 2.0, np.subtract(n, 1)) * std / np.sqrt(n)
