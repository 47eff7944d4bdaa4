"""Event-level quantile metrics with unit clustering (docs/api.md §6; Deng, Knoblich & Lu 2018).

A quantile metric's arm estimate is the q-quantile Q̂ of the values of *all events* of the
arm's units (e.g. p95 over every model call), with PostgreSQL's ``percentile_cont`` / numpy's
``linear`` definition. Events of one unit are correlated, so the i.i.d. order-statistic interval
is too narrow; the unit is the independent draw. Deng et al. (2018, §"quantile metrics"):

1. Ī = Σᵢ Sᵢ / Σᵢ Nᵢ, where Nᵢ is unit i's number of events and Sᵢ the number of them at or
   below Q̂, is a ratio of per-unit means, so its variance follows from the delta method for
   ratios over units: σ² = (s²_S − 2r·cov_SN + r²·s²_N) / (n·μ_N²), r = ΣS/ΣN (≈ q).
2. P(X ≤ Q) has standard error σ, so by inverting it the quantile's interval is the pair of
   event quantiles at probabilities q ± z·σ: [Q̂(q − zσ), Q̂(q + zσ)] (the order-statistic
   interval that GrowthBook's quantile metrics also use, at 95 %).
3. The standard error of Q̂ is the interval's half-width over z: SE = (U − L) / (2z), i.e. the
   density 1/f(Q) estimated from the data by the width of the order-statistic interval.

The interval in step 2 is computed once at ``DENSITY_LEVEL`` (95 %) only to estimate f(Q); the
engine then treats Q̂ as an estimate with variance SE², like any mean, at whatever level and
method (fixed, sequential, the guardrails' one-sided always-valid test) the comparison needs.

The engine's inputs are sufficient statistics (`VariantStats`); `as_variant_stats` expresses
an arm as the unique (n, Σy, Σy²) whose mean is Q̂ and whose variance of the mean s²/n is SE²,
with n = the arm's analysed units, so every comparison rule applies unchanged. No skewness is
given (Σy³ None): the heavy-tail rule is about means of skewed per-unit values, not quantiles.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from analysis.stats.inputs import VariantStats
from analysis.stats.moments import ratio_delta_variance, sample_covariance, sample_variance

# Level of the order-statistic interval that estimates the density at the quantile.
DENSITY_LEVEL = 0.95
DENSITY_Z = NormalDist().inv_cdf(1 - (1 - DENSITY_LEVEL) / 2)


@dataclass(frozen=True, slots=True)
class QuantileCounts:
    """Step 1's inputs for one arm, against that arm's own Q̂.

    ``units`` analysed units (those without events count, with N = S = 0); ``events`` ΣN;
    ``events_sq`` ΣN²; ``below`` ΣS; ``below_sq`` ΣS²; ``below_events`` ΣS·N; ``estimate`` Q̂
    (None without events).
    """

    units: int
    events: int
    events_sq: float
    below: int
    below_sq: float
    below_events: float
    estimate: float | None


def indicator_sd(counts: QuantileCounts) -> float | None:
    """σ of Ī = ΣS/ΣN by the delta method over units; None when undefined (< 2 units or no
    events)."""
    n = counts.units
    if n < 2 or counts.events == 0:
        return None
    mean_s, mean_n = counts.below / n, counts.events / n
    per_unit = ratio_delta_variance(
        mean_s,
        mean_n,
        sample_variance(n, counts.below, counts.below_sq),
        sample_variance(n, counts.events, counts.events_sq),
        sample_covariance(n, counts.below, counts.events, counts.below_events),
    )
    return math.sqrt(per_unit / n)


def interval_probabilities(q: float, sd: float) -> tuple[float, float]:
    """Step 2: the probabilities whose event quantiles bound Q̂, clipped to [0, 1]."""
    return max(0.0, q - DENSITY_Z * sd), min(1.0, q + DENSITY_Z * sd)


def standard_error(lower: float, upper: float) -> float:
    """Step 3: SE of Q̂ from its order-statistic interval [lower, upper]."""
    return max(0.0, upper - lower) / (2.0 * DENSITY_Z)


@dataclass(frozen=True, slots=True)
class QuantileArm:
    """One arm of a quantile metric: units, events, Q̂ and its clustered standard error."""

    key: str
    units: int
    events: int
    estimate: float | None
    standard_error: float | None


def as_variant_stats(arm: QuantileArm) -> VariantStats:
    """The arm as sufficient statistics with mean Q̂ and variance of the mean SE².

    With n units: Σy = n·Q̂ and Σy² = (Σy)²/n + (n − 1)·n·SE², so s² = n·SE² and s²/n = SE².
    Without an estimate (no events) or a standard error (fewer than two units) the arm keeps
    its units and a zero spread, which the engine reports as not ready / undefined.
    """
    n = arm.units
    if n == 0 or arm.estimate is None:
        return VariantStats(key=arm.key, n=n, sum=0.0, sum_squares=0.0)
    total = n * arm.estimate
    spread = 0.0
    if arm.standard_error is not None and n > 1:
        spread = (n - 1) * n * arm.standard_error**2
    return VariantStats(key=arm.key, n=n, sum=total, sum_squares=total * total / n + spread)


def linear_quantile(sorted_values: np.ndarray, probability: float) -> float:
    """numpy's ``linear`` / PostgreSQL's ``percentile_cont`` on values already sorted."""
    h = (len(sorted_values) - 1) * probability
    low = math.floor(h)
    high = min(low + 1, len(sorted_values) - 1)
    return float(sorted_values[low] + (h - low) * (sorted_values[high] - sorted_values[low]))


def quantile_arm_from_events(
    key: str, q: float, values: np.ndarray, unit_index: np.ndarray, units: int
) -> QuantileArm:
    """Steps 1–3 from raw events: ``values[j]`` belongs to unit ``unit_index[j]`` (0 ≤ index <
    ``units``; units without events simply have no entries).

    The database computes the same from its rows (`analysis.selectors`); this form serves
    simulations, which hold events in memory.
    """
    values = np.asarray(values, dtype=float)
    unit_index = np.asarray(unit_index, dtype=np.int64)
    if values.size == 0:
        return QuantileArm(key, units, 0, None, None)
    estimate = float(np.quantile(values, q))
    sizes = np.bincount(unit_index, minlength=units).astype(float)
    below = np.bincount(unit_index, weights=(values <= estimate), minlength=units)
    counts = QuantileCounts(
        units=units,
        events=int(values.size),
        events_sq=float(sizes @ sizes),
        below=round(float(below.sum())),
        below_sq=float(below @ below),
        below_events=float(below @ sizes),
        estimate=estimate,
    )
    sd = indicator_sd(counts)
    if sd is None:
        return QuantileArm(key, units, int(values.size), estimate, None)
    low, high = np.quantile(values, interval_probabilities(q, sd))
    return QuantileArm(key, units, int(values.size), estimate, standard_error(low, high))
