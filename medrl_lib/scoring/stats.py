"""Statistics of the study: accuracy, percentile-bootstrap intervals, and summaries over training seeds.

Neither paper (Zhu et al. 2025; Pan et al. 2025, MedVLM-R1) reports confidence intervals or seeds; here every figure
carries a 95% interval (the book's Methods page, ``book/methods.md``):

* one evaluation: the percentile bootstrap over its test items (:func:`bootstrap_ci`), and of the difference of two
  arms on the same items (:func:`paired_difference_ci`) or on different ones (:func:`unpaired_difference_ci`);
* several seeds of two arms on shared items: seeds and items as crossed random effects with Satterthwaite's t
  (:func:`difference_interval`, the claims scorecard and the calibration gains; :func:`variance_components`,
  :func:`detectable_effect` for power); on different items of the same seeds, the two-level bootstrap over seeds,
  then items (:func:`gap_interval`, the calibration's modality gap);
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

from medrl_lib.common.checks import check_lengths, positive_int

__all__ = [
    "INTERVAL_METHODS",
    "Interval",
    "SeedSummary",
    "accuracy",
    "aggregate_seeds",
    "bootstrap_ci",
    "by_group",
    "detectable_effect",
    "difference_interval",
    "gap_interval",
    "paired_difference_ci",
    "t_half_width",
    "unpaired_difference_ci",
    "variance_components",
    "VarianceComponents",
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
# Several seeds of two arms on shared items: seeds and items as crossed random effects
# =============================================================================================


@dataclass(frozen=True)
class VarianceComponents:
    """The variance of a (seeds, items) array of per-item differences, split as a two-way crossed random-effects
    model ``d[s, i] = effect + u[s] + v[i] + w[s, i]`` (seed, item, and seed-by-item noise)."""

    seeds: int
    """number of seeds (rows)"""
    items: int
    """number of items (columns)"""
    seed: float
    """variance of the seed effect ``u`` (training noise between seeds); 0 where the estimate is negative"""
    item: float
    """variance of the item effect ``v`` (items easier for one arm than the other); 0 where negative"""
    residual: float
    """variance of the seed-by-item noise ``w``"""

    def variance_of_mean(self, seeds: int | None = None, items: int | None = None) -> float:
        """Variance of the mean difference at ``seeds`` x ``items`` (default: as observed)."""
        s, i = seeds or self.seeds, items or self.items
        return self.seed / s + self.item / i + self.residual / (s * i)

    def dof(self, seeds: int | None = None, items: int | None = None) -> float:
        """Satterthwaite's degrees of freedom of :meth:`variance_of_mean` at ``seeds`` x ``items``: the variance is
        the seeds' term (expected row mean square over ``seeds * items``, ``seeds - 1`` degrees of freedom) plus the
        items' (``item / items``, ``items - 1``)."""
        s, i = seeds or self.seeds, items or self.items
        return _satterthwaite([((self.residual + i * self.seed) / (s * i), s - 1), (self.item / i, i - 1)])


def _satterthwaite(terms: Sequence[tuple[float, float]]) -> float:
    """Degrees of freedom of a sum of independent variance estimates ``(value, dof)`` (Satterthwaite 1946)."""
    total = sum(v for v, _ in terms)
    denom = sum(v * v / d for v, d in terms if v > 0 and d > 0)
    return total * total / denom if denom > 0 else math.inf


def _mean_variance(diff: np.ndarray) -> tuple[float, float]:
    """(variance, degrees of freedom) of the mean of a (seeds, items) array of differences: the variance of the
    seeds' means over ``seeds`` (seed and run noise together, never truncated) plus the item variance over
    ``items`` (:func:`variance_components`; the seeds share the items, so their means cannot show it). One seed:
    the items' spread alone; one item: the seeds' alone."""
    n_seeds, n_items = diff.shape
    vc = variance_components(diff)
    if n_seeds == 1:
        terms = [(vc.residual / n_items, n_items - 1)]
    else:
        terms = [(float(diff.mean(axis=1).var(ddof=1)) / n_seeds, n_seeds - 1), (vc.item / n_items, n_items - 1)]
    return sum(v for v, _ in terms), _satterthwaite(terms)


def variance_components(diff: np.ndarray) -> VarianceComponents:
    """Method-of-moments (ANOVA) estimates of the seed, item and residual variances of a (seeds, items) array of
    per-item differences ``a - b`` (Searle, Casella & McCulloch 1992, ch. 4), negative estimates set to 0.

    With one seed the seed variance cannot be estimated and is 0 (the interval then covers item noise only);
    likewise the item variance with one item.

    >>> vc = variance_components(np.array([[1.0, 3.0], [3.0, 5.0], [5.0, 7.0]]))  # rows 2, 4, 6; columns 3, 5
    >>> vc.seed, vc.item, vc.residual
    (4.0, 2.0, 0.0)
    """
    d = np.asarray(diff, dtype=float)
    if d.ndim != 2 or d.size == 0:
        raise ValueError(f"need a non-empty (seeds, items) array, got shape {d.shape}")
    n_seeds, n_items = d.shape
    grand = d.mean()
    rows, cols = d.mean(axis=1), d.mean(axis=0)
    ms_rows = n_items * float(((rows - grand) ** 2).sum()) / (n_seeds - 1) if n_seeds > 1 else 0.0
    ms_cols = n_seeds * float(((cols - grand) ** 2).sum()) / (n_items - 1) if n_items > 1 else 0.0
    if n_seeds > 1 and n_items > 1:
        resid = d - rows[:, None] - cols[None, :] + grand
        ms_err = float((resid ** 2).sum()) / ((n_seeds - 1) * (n_items - 1))
    else:  # one seed (or one item): the seed-by-item noise is what the other margin shows
        ms_err = ms_cols if n_items > 1 else ms_rows
        ms_cols, ms_rows = (ms_err, 0.0) if n_seeds == 1 else (0.0, ms_err)
    seed_var = max(0.0, (ms_rows - ms_err) / n_items) if n_seeds > 1 else 0.0
    item_var = max(0.0, (ms_cols - ms_err) / n_seeds) if n_items > 1 else 0.0
    return VarianceComponents(n_seeds, n_items, seed_var, item_var, ms_err)


#: The interval methods of :func:`difference_interval`.
INTERVAL_METHODS: Final = ("satterthwaite", "bootstrap")


def difference_interval(a: np.ndarray, b: np.ndarray, *, n_boot: int = 2000, seed: int = 0,
                        level: float = 0.95, method: str = "satterthwaite") -> tuple[float, float, float]:
    """(mean(a) - mean(b), low, high) for two arms trained with the same seeds (rows) and scored on the same items
    (columns): column ``j`` is one item in both arrays.

    ``method="satterthwaite"`` (the default, the study's interval): the per-item differences ``a - b`` follow a
    two-way crossed random-effects model, seed + item + seed-by-item noise (:func:`variance_components`). The
    variance of the mean is estimated as the variance of the seeds' mean differences over ``seeds`` (seed and run
    noise, not truncated at zero) plus the item variance over ``items``, and the interval is
    ``diff ± t_{(1+level)/2, ν} · sqrt(V)`` with ``ν`` Satterthwaite's degrees of freedom (Satterthwaite 1946).
    When the seeds disagree, ``ν`` falls towards ``seeds - 1`` and the interval is the t interval over seeds that
    few seeds call for; when items dominate, ``ν`` is large and it is the items' normal interval. Closed form: ``n_boot`` and ``seed`` are validated and unused, kept so
    the bootstrap is one keyword away.

    ``method="bootstrap"``: the two-level percentile bootstrap (resample the seeds, then the items, the same ones for
    both arms); it under-covers at 3 seeds when the seed noise is large (``benchmarks/interval_coverage.py``).

    >>> a = np.array([[1.0] * 50 + [0.0] * 50] * 3); b = np.zeros((3, 100))
    >>> diff, low, high = difference_interval(a, b)
    >>> diff, 0.35 < low < 0.5 < high < 0.65, difference_interval(a, a)
    (0.5, True, (0.0, 0.0, 0.0))
    """
    _check_boot(n_boot, level)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"a and b must be (seeds, items) arrays of one shape, got {a.shape} and {b.shape}")
    if method not in INTERVAL_METHODS:
        raise ValueError(f"unknown interval method {method!r}; expected one of {', '.join(INTERVAL_METHODS)}")
    diff = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    mean = float(diff.mean())
    if method == "bootstrap":
        rng = np.random.default_rng(seed)
        n_seeds, n_items = a.shape
        seeds = rng.integers(0, n_seeds, size=(n_boot, n_seeds))
        items = rng.integers(0, n_items, size=(n_boot, n_items))
        low, high = _percentiles(_two_level_means(diff, seeds, items), level)
        return mean, low, high
    half = _t_half(*_mean_variance(diff), level)
    return mean, mean - half, mean + half


def _t_half(variance: float, dof: float, level: float) -> float:
    """``t_{(1+level)/2, dof} · sqrt(variance)``; 0 for no variance."""
    if variance <= 0.0:
        return 0.0
    from scipy.stats import t

    return float(t.ppf((1.0 + level) / 2.0, dof) * math.sqrt(variance))


def detectable_effect(a: np.ndarray, b: np.ndarray, *, seeds: int | None = None, items: int | None = None,
                      level: float = 0.95, power: float = 0.8) -> float:
    """The minimum detectable effect: the smallest true difference that :func:`difference_interval` (two-sided,
    ``level``) excludes 0 for with probability ``power`` (Bloom 1995), from the variance components of ``a - b``
    (:class:`VarianceComponents`: the residual, pooled over every seed and item, steadies the few seeds' estimate),
    at ``seeds`` x ``items`` (default: as observed): ``(t_{(1+level)/2, ν} + t_{power, ν}) · sqrt(V)``.

    >>> rng = np.random.default_rng(0); a = rng.integers(0, 2, (3, 300)) * 100.0; b = rng.integers(0, 2, (3, 300)) * 100.0
    >>> round(detectable_effect(a, b), 1), round(detectable_effect(a, b, items=1200), 1)
    (13.1, 6.5)
    """
    _check_level(level)
    _check_level(power)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"a and b must be (seeds, items) arrays of one shape, got {a.shape} and {b.shape}")
    vc = variance_components(np.asarray(a, dtype=float) - np.asarray(b, dtype=float))
    var, dof = vc.variance_of_mean(seeds, items), vc.dof(seeds, items)
    if var <= 0.0:
        return 0.0
    from scipy.stats import t

    return float((t.ppf((1.0 + level) / 2.0, dof) + t.ppf(power, dof)) * math.sqrt(var))


def _two_level_means(values: np.ndarray, seeds: np.ndarray, items: np.ndarray) -> np.ndarray:
    """The mean of each resample of a (seeds, items) array: row ``k`` takes seeds ``seeds[k]`` (B, S) and, within
    every drawn seed, items ``items[k]`` (B, I); returns (B,)."""
    return values[seeds[:, :, None], items[:, None, :]].mean(axis=(1, 2))


def gap_interval(inside: np.ndarray, outside: np.ndarray, *, n_boot: int = 2000, seed: int = 0,
                 level: float = 0.95, method: str = "satterthwaite") -> tuple[float, float, float]:
    """(mean(inside) - mean(outside), low, high) for (seeds, items) arrays on different items of the same seeds.

    ``method="satterthwaite"`` (default): the gap of seed ``s`` is ``g[s] = mean(inside[s]) - mean(outside[s])``;
    its variance is ``var(g) / seeds`` (seed and run noise) plus each side's item variance over its items
    (:func:`variance_components`), with Satterthwaite's degrees of freedom, as :func:`difference_interval`.
    ``method="bootstrap"``: resample seeds (rows, shared), then the items of each array independently.

    >>> inside = np.array([[100.0] * 40 + [0.0] * 10] * 3); outside = np.array([[100.0] * 20 + [0.0] * 30] * 3)
    >>> diff, low, high = gap_interval(inside, outside)
    >>> round(diff, 1), low > 0
    (40.0, True)
    """
    _check_boot(n_boot, level)
    if inside.ndim != 2 or outside.ndim != 2 or len(inside) != len(outside):
        raise ValueError(f"need (seeds, items) arrays with the same seeds, got {inside.shape} and {outside.shape}")
    if method not in INTERVAL_METHODS:
        raise ValueError(f"unknown interval method {method!r}; expected one of {', '.join(INTERVAL_METHODS)}")
    inside, outside = np.asarray(inside, dtype=float), np.asarray(outside, dtype=float)
    gap = float(inside.mean() - outside.mean())
    n_seeds = len(inside)
    if method == "bootstrap":
        rng = np.random.default_rng(seed)
        seeds = rng.integers(0, n_seeds, size=(n_boot, n_seeds))
        items_in = rng.integers(0, inside.shape[1], size=(n_boot, inside.shape[1]))
        items_out = rng.integers(0, outside.shape[1], size=(n_boot, outside.shape[1]))
        boot = _two_level_means(inside, seeds, items_in) - _two_level_means(outside, seeds, items_out)
        low, high = _percentiles(boot, level)
        return gap, low, high
    per_seed = inside.mean(axis=1) - outside.mean(axis=1)
    terms = [(float(per_seed.var(ddof=1)) / n_seeds if n_seeds > 1 else 0.0, n_seeds - 1)]
    for side in (inside, outside):
        vc = variance_components(side)
        if n_seeds == 1:  # no seed spread to see: the items' own spread stands for everything
            terms.append((vc.residual / side.shape[1], side.shape[1] - 1))
        else:
            terms.append((vc.item / side.shape[1], side.shape[1] - 1))
    half = _t_half(sum(v for v, _ in terms), _satterthwaite(terms), level)
    return gap, gap - half, gap + half


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
