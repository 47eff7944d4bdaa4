"""CUPED against OLS with the covariate; ratio metrics against a direct linearisation and a
bootstrap on the raw units."""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm

from analysis.stats import analyze, arm_moments, cuped_theta
from tests.analysis.stats.helpers import variant_from_values


def _cuped_experiment(seed: int, arms: int = 2, n: int = 4000):
    rng = np.random.default_rng(seed)
    data = []
    for arm in range(arms):
        covariate = rng.gamma(2.0, 5.0, size=n + 37 * arm)
        outcome = 3.0 + 0.8 * covariate + rng.normal(0, 4.0, covariate.size) + 0.5 * arm
        data.append((outcome, covariate))
    return data


@pytest.mark.parametrize("arms", [2, 3])
def test_cuped__correlated_covariate__effect_equals_ols_treatment_coefficient(arms: int) -> None:
    # Given outcomes strongly predicted by a pre-exposure covariate
    data = _cuped_experiment(seed=8, arms=arms)
    variants = [variant_from_values(f"v{i}", y, x) for i, (y, x) in enumerate(data)]
    # When analysed with CUPED
    result = analyze("mean", "fixed", variants, correction="none")
    assert result.cuped is True
    # Then OLS of Y on arm dummies and the centred covariate is the oracle
    y = np.concatenate([d[0] for d in data])
    x = np.concatenate([d[1] for d in data])
    arm = np.concatenate([np.full(d[0].size, i) for i, d in enumerate(data)])
    dummies = [(arm == i).astype(float) for i in range(1, arms)]
    design = sm.add_constant(np.column_stack([*dummies, x - x.mean()]))
    fit = sm.OLS(y, design).fit()
    for i, comparison in enumerate(result.comparisons, start=1):
        # Point estimate: exact algebra (θ pooled within arms is the OLS slope)
        assert comparison.absolute_effect == pytest.approx(fit.params[i], rel=1e-9)
        # Standard error: ours is Welch-style per arm, OLS assumes one residual variance
        ours = (comparison.absolute_ci[1] - comparison.absolute_ci[0]) / 2
        theirs = fit.bse[i] * 1.959964  # df ≈ 8000: t quantile equals z to 1e-4
        assert ours == pytest.approx(theirs, rel=0.03)
    # And relative effect = adjusted difference / unadjusted control mean
    first = result.comparisons[0]
    assert first.relative_effect == pytest.approx(
        first.absolute_effect / data[0][0].mean(), rel=1e-12
    )


def test_cuped__correlated_covariate__interval_much_narrower_than_unadjusted() -> None:
    # Given the same data analysed with and without CUPED
    variants = [
        variant_from_values(f"v{i}", y, x) for i, (y, x) in enumerate(_cuped_experiment(4))
    ]
    with_cuped = analyze("mean", "fixed", variants).comparisons[0]
    without = analyze("mean", "fixed", variants, cuped=False).comparisons[0]

    # Then the variance falls by about 1 − corr², here over half
    def width(c):
        return c.absolute_ci[1] - c.absolute_ci[0]

    assert width(with_cuped) < 0.7 * width(without)


def test_cuped_theta__from_totals__equals_pooled_within_arm_regression_slope() -> None:
    # Given two arms / When θ is computed from totals / Then it is the within-arm slope
    data = _cuped_experiment(2)
    theta = cuped_theta([variant_from_values(f"v{i}", y, x) for i, (y, x) in enumerate(data)])
    centred_y = np.concatenate([y - y.mean() for y, _ in data])
    centred_x = np.concatenate([x - x.mean() for _, x in data])
    assert theta == pytest.approx((centred_x @ centred_y) / (centred_x @ centred_x), rel=1e-9)


def test_cuped__covariate_missing_in_one_arm__unadjusted_with_note() -> None:
    # Given covariate sums for the control only
    data = _cuped_experiment(5)
    variants = [variant_from_values("c", *data[0]), variant_from_values("t", data[1][0])]
    # When analysed / Then the analysis runs unadjusted and says why
    result = analyze("mean", "fixed", variants)
    assert result.cuped is False
    assert result.notes == ["cuped_missing_covariate"]
    assert result.comparisons[0].p_value is not None


def test_cuped__constant_covariate__unadjusted_with_note() -> None:
    # Given a covariate that is 0 for everyone (all new users)
    rng = np.random.default_rng(1)
    variants = [variant_from_values(k, rng.normal(size=100), np.zeros(100)) for k in ("c", "t")]
    # When / Then
    result = analyze("mean", "sequential", variants)
    assert (result.cuped, result.notes) == (False, ["cuped_zero_covariate_variance"])


def _ratio_data(seed: int, n: int):
    rng = np.random.default_rng(seed)
    sessions = rng.poisson(4.0, size=n) + 1.0
    clicks = rng.binomial(sessions.astype(int), 0.3).astype(float)
    return clicks, sessions


def test_ratio_moments__raw_units__delta_variance_equals_linearisation() -> None:
    # Given clicks and sessions per unit
    clicks, sessions = _ratio_data(3, 5000)
    moments = arm_moments("ratio", variant_from_values("c", clicks, denominator=sessions))
    # When / Then: the ratio of sums, and the variance of its linearisation
    # (M − r·D)/μ_D per unit — a different route to the same first-order variance
    ratio = clicks.sum() / sessions.sum()
    linearised = (clicks - ratio * sessions) / sessions.mean()
    assert moments.mean == pytest.approx(ratio, rel=1e-12)
    assert moments.variance == pytest.approx(linearised.var(ddof=1), rel=1e-9)


def test_ratio_moments__raw_units__variance_of_mean_matches_bootstrap() -> None:
    # Given one arm of 2,000 units
    clicks, sessions = _ratio_data(9, 2000)
    moments = arm_moments("ratio", variant_from_values("c", clicks, denominator=sessions))
    # When 4,000 bootstrap resamples of units are drawn (independent oracle)
    rng = np.random.default_rng(10)
    index = rng.integers(0, clicks.size, size=(4000, clicks.size))
    ratios = clicks[index].sum(axis=1) / sessions[index].sum(axis=1)
    # Then the delta-method variance of the ratio is within bootstrap noise (~5%)
    assert moments.variance_of_mean == pytest.approx(ratios.var(ddof=1), rel=0.1)


def test_analyze__ratio_metric__welch_on_delta_variances() -> None:
    # Given two arms of a ratio metric
    c_clicks, c_sessions = _ratio_data(1, 3000)
    t_clicks, t_sessions = _ratio_data(2, 3100)
    variants = [
        variant_from_values("c", c_clicks, denominator=c_sessions),
        variant_from_values("t", t_clicks, denominator=t_sessions),
    ]
    # When analysed
    comparison = analyze("ratio", "fixed", variants).comparisons[0]
    # Then Δ is the difference of ratios of sums, with a finite interval around it
    expected = t_clicks.sum() / t_sessions.sum() - c_clicks.sum() / c_sessions.sum()
    assert comparison.absolute_effect == pytest.approx(expected, rel=1e-12)
    assert comparison.absolute_ci[0] < expected < comparison.absolute_ci[1]


def test_analyze__ratio_with_zero_denominator__undefined_reason() -> None:
    # Given a treatment with no sessions at all
    clicks, sessions = _ratio_data(1, 100)
    zeros = np.zeros(100)
    variants = [
        variant_from_values("c", clicks, denominator=sessions),
        variant_from_values("t", zeros, denominator=zeros),
    ]
    # When / Then
    comparison = analyze("ratio", "fixed", variants).comparisons[0]
    assert (comparison.absolute_effect, comparison.reason) == (None, "zero_denominator")
