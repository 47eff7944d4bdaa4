"""From running totals to one arm's estimate and per-unit variance.

- mean metric: ȳ = Σy/n, s² = (Σy² − (Σy)²/n)/(n − 1);
- proportion: p = Σy/n, s² = p(1 − p) (the contract's Bernoulli variance);
- ratio metric Σ M / Σ D (Deng, Knoblich & Lu 2018, delta method), with per-unit means μ_M, μ_D:
  Var = s²_M/μ_D² − 2·cov_MD·μ_M/μ_D³ + μ_M²·s²_D/μ_D⁴, the variance of the ratio of means is
  that divided by n. Units are the randomisation unit, so the ratio's numerator and denominator
  are correlated within a unit, which is why the covariance term is there.

``variance`` is always per unit: the variance of the arm's estimate is ``variance / units``.
An arm whose estimate is undefined comes back as ``Undefined(reason)`` instead of raising.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from analysis.stats.inputs import VariantStats


@dataclass(frozen=True, slots=True)
class ArmMoments:
    """An arm's point estimate and its per-unit variance."""

    units: int
    mean: float
    variance: float

    @property
    def variance_of_mean(self) -> float:
        return self.variance / self.units


@dataclass(frozen=True, slots=True)
class Undefined:
    """A quantity the data cannot define; ``reason`` says why, in a stable snake_case code."""

    reason: str


def sample_variance(n: int, total: float, total_sq: float) -> float:
    """Unbiased variance from totals. Clamped: cancellation can leave a tiny negative."""
    return max(0.0, (total_sq - total * total / n) / (n - 1))


def sample_covariance(n: int, total_x: float, total_y: float, total_xy: float) -> float:
    """Unbiased covariance from totals (may be negative, so no clamp)."""
    return (total_xy - total_x * total_y / n) / (n - 1)


def ratio_delta_variance(
    mean_numerator: float,
    mean_denominator: float,
    var_numerator: float,
    var_denominator: float,
    cov_numerator_denominator: float,
) -> float:
    """Per-unit delta-method variance of μ_M/μ_D (divide by n for the ratio of means)."""
    m, d = mean_numerator, mean_denominator
    # Factored through r = μ_M/μ_D so no power of a small μ_D above the second appears:
    # Var = (s²_M − 2r·cov_MD + r²·s²_D) / μ_D². Returns inf when even that overflows.
    try:
        r = m / d
        variance = (
            var_numerator - 2.0 * r * cov_numerator_denominator + r * r * var_denominator
        ) / (d * d)
    except (OverflowError, ZeroDivisionError):
        return math.inf
    # Mathematically a variance of a linear combination, so ≥ 0; clamp float noise.
    return max(0.0, variance)


def arm_moments(metric_type: str, variant: VariantStats) -> ArmMoments | Undefined:
    """The arm's estimate (mean, proportion or ratio) and its per-unit variance."""
    n = variant.n
    # A variance needs two units; one unit is a point, not a spread.
    if n < 2:
        return Undefined("too_few_units")
    if metric_type == "proportion":
        p = variant.sum / n
        return ArmMoments(units=n, mean=p, variance=max(0.0, p * (1.0 - p)))
    assert variant.sum_squares is not None  # validated: required for means and ratios
    if metric_type == "mean":
        return ArmMoments(
            units=n,
            mean=variant.sum / n,
            variance=sample_variance(n, variant.sum, variant.sum_squares),
        )
    d_sum, d_sq, cross = (
        variant.denominator_sum,
        variant.denominator_sum_squares,
        variant.cross_sum,
    )
    assert d_sum is not None and d_sq is not None and cross is not None  # validated for ratio
    if d_sum == 0:
        # No denominator at all (e.g. no sessions): the ratio has no value.
        return Undefined("zero_denominator")
    mean_m, mean_d = variant.sum / n, d_sum / n
    variance = ratio_delta_variance(
        mean_m,
        mean_d,
        sample_variance(n, variant.sum, variant.sum_squares),
        sample_variance(n, d_sum, d_sq),
        sample_covariance(n, variant.sum, d_sum, cross),
    )
    if not math.isfinite(variance) or not math.isfinite(variant.sum / d_sum):
        # A denominator so close to 0 that the ratio's variance overflows a float.
        return Undefined("ratio_overflow")
    return ArmMoments(units=n, mean=variant.sum / d_sum, variance=variance)
