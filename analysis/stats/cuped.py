"""CUPED: use each unit's pre-exposure value of the metric to remove noise.

Deng, Xu, Kohavi & Walker (2013). X is the metric in a lookback window before exposure, so the
treatment cannot move it; whatever part of Y it predicts is noise we can subtract:

    θ = cov(Y, X) / var(X), pooled within arms over all variants,
    adjusted mean  ȳ_adj = ȳ − θ·(x̄ − x̄_pooled),
    adjusted per-unit variance  s²_Y + θ²·s²_X − 2θ·cov_XY.

Pooling *within* arms (Σ of each arm's centred cross products over Σ of each arm's centred
squares) keeps a treatment effect on Y out of θ and makes the adjusted difference equal, to the
last digit, the treatment coefficient of the regression Y ~ arm dummies + X. Subtracting
θ·x̄_pooled instead of nothing changes no difference between arms; it only keeps the adjusted
means on the scale of the raw ones. The relative effect divides the adjusted difference by the
*unadjusted* control mean (the contract), because that is the baseline users know.
"""

from __future__ import annotations

from collections.abc import Sequence

from analysis.stats.inputs import VariantStats
from analysis.stats.moments import ArmMoments, Undefined, sample_covariance, sample_variance


def cuped_theta(variants: Sequence[VariantStats]) -> float | Undefined:
    """θ = pooled within-arm cov(Y, X) / pooled within-arm var(X)."""
    centred_cross = 0.0
    centred_squares = 0.0
    for v in variants:
        if not v.has_covariate:
            return Undefined("cuped_missing_covariate")
        assert v.covariate_sum is not None and v.covariate_sum_squares is not None
        assert v.cross_sum is not None
        if v.n == 0:
            continue
        centred_cross += v.cross_sum - v.covariate_sum * v.sum / v.n
        centred_squares += max(0.0, v.covariate_sum_squares - v.covariate_sum**2 / v.n)
    # A constant covariate (e.g. every unit is new, so X = 0) predicts nothing.
    if centred_squares <= 0.0:
        return Undefined("cuped_zero_covariate_variance")
    return centred_cross / centred_squares


def pooled_covariate_mean(variants: Sequence[VariantStats]) -> float:
    units = sum(v.n for v in variants)
    return sum(v.covariate_sum or 0.0 for v in variants) / units if units else 0.0


def cuped_adjusted_moments(
    raw: ArmMoments, variant: VariantStats, theta: float, covariate_mean: float
) -> ArmMoments:
    """Shift the arm's mean by θ·(x̄ − x̄_pooled) and shrink its per-unit variance."""
    n = variant.n
    assert variant.covariate_sum is not None and variant.covariate_sum_squares is not None
    assert variant.cross_sum is not None
    var_x = sample_variance(n, variant.covariate_sum, variant.covariate_sum_squares)
    cov_xy = sample_covariance(n, variant.covariate_sum, variant.sum, variant.cross_sum)
    # raw.variance is s²_Y (p(1 − p) for a proportion, per the contract).
    variance = raw.variance + theta**2 * var_x - 2.0 * theta * cov_xy
    mean = raw.mean - theta * (variant.covariate_sum / n - covariate_mean)
    return ArmMoments(units=n, mean=mean, variance=max(0.0, variance))
