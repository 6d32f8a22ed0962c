"""Coverage of the seeds-by-items interval, by simulation: two arms with a known difference, training noise between
seeds and noise between items, scored as right or wrong on shared items as the study's arms are.

The model of one arm's scores: item ``i`` has a difficulty ``z[i] ~ N(0, item_sd)`` shared by both arms; the arm's
run with seed ``s`` shifts every item by ``u[s] ~ N(0, seed_sd)`` (training noise: one seed's model is better
overall) and each item by ``e[s, i] ~ N(0, interaction_sd)`` (what one run happens to get right); the item is
correct with probability ``sigmoid(logit(base) + arm_shift + z[i] + u[s] + e[s, i])``. The true difference is the
expected accuracy difference over items and seeds (:func:`true_difference`).

Used by ``tests/test_coverage.py`` and ``benchmarks/interval_coverage.py``; the Methods page reports the figures.

>>> s = Scenario(seeds=3, items=50)
>>> a, b = simulate(s, np.random.default_rng(0))
>>> a.shape, sorted(set(a.ravel().tolist()) | set(b.ravel().tolist()))
((3, 50), [0.0, 100.0])
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from medrl_lib.scoring.stats import difference_interval


@dataclass(frozen=True)
class Scenario:
    """One simulated design: two arms on shared items, trained with the same number of seeds."""

    seeds: int = 3
    """training seeds per arm"""
    items: int = 300
    """shared test items"""
    base: float = 0.6
    """accuracy of arm b on an average item"""
    shift: float = 0.2
    """arm a's advantage on the logit scale (0: no true difference)"""
    item_sd: float = 1.5
    """spread of item difficulty (logit scale), shared by both arms"""
    seed_sd: float = 0.3
    """training noise between seeds (logit scale): large near 0.3 (about 7 points of accuracy), small near 0.03"""
    interaction_sd: float = 0.5
    """noise of one run on one item (logit scale)"""


def _probabilities(s: Scenario, z: np.ndarray, rng: np.random.Generator, shift: float) -> np.ndarray:
    """(seeds, items) probabilities of a right answer for one arm."""
    logit = np.log(s.base / (1.0 - s.base)) + shift
    u = rng.normal(0.0, s.seed_sd, size=(s.seeds, 1))
    e = rng.normal(0.0, s.interaction_sd, size=(s.seeds, s.items))
    return 1.0 / (1.0 + np.exp(-(logit + z[None, :] + u + e)))


def simulate(s: Scenario, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Scores (100 right, 0 wrong) of arms a and b, each a (seeds, items) array on the same items."""
    z = rng.normal(0.0, s.item_sd, size=s.items)
    pa, pb = _probabilities(s, z, rng, s.shift), _probabilities(s, z, rng, 0.0)
    return 100.0 * (rng.random(pa.shape) < pa), 100.0 * (rng.random(pb.shape) < pb)


def true_difference(s: Scenario) -> float:
    """The expected accuracy difference a - b (points) of the scenario: item, seed and run noise add up to one
    normal shift ``x ~ N(0, item_sd² + seed_sd² + interaction_sd²)`` on the logit scale, integrated exactly by
    Gauss-Hermite quadrature.

    >>> true_difference(Scenario(shift=0.0))
    0.0
    """
    nodes, weights = np.polynomial.hermite_e.hermegauss(80)
    sd = float(np.sqrt(s.item_sd ** 2 + s.seed_sd ** 2 + s.interaction_sd ** 2))
    logit = np.log(s.base / (1.0 - s.base))

    def expected(shift: float) -> float:
        return float((weights / (1.0 + np.exp(-(logit + shift + sd * nodes)))).sum() / weights.sum())

    return 100.0 * (expected(s.shift) - expected(0.0))


def coverage(s: Scenario, trials: int = 1000, seed: int = 0, level: float = 0.95,
             interval: Callable[..., tuple[float, float, float]] | None = None, **kwargs) -> dict[str, float]:
    """Share of ``trials`` simulated studies whose interval contains the true difference, and the mean width.

    ``interval(a, b, level=level, **kwargs)`` defaults to :func:`medrl_lib.scoring.stats.difference_interval`."""
    fn = interval or difference_interval
    truth = true_difference(s)
    rng = np.random.default_rng(seed)
    hits, widths = 0, []
    for _ in range(trials):
        a, b = simulate(s, rng)
        _, low, high = fn(a, b, level=level, **kwargs)
        hits += low <= truth <= high
        widths.append(high - low)
    return {"coverage": hits / trials, "width": float(np.mean(widths)), "truth": truth}
