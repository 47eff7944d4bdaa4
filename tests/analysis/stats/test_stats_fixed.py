"""Fixed-horizon Welch test against scipy and statsmodels run on the raw data."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as scipy_stats
from statsmodels.stats import proportion as sm_proportion
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from analysis.stats import (
    ArmMoments,
    EffectEstimate,
    analyze,
    arm_moments,
    difference_estimate,
    welch_test,
)
from tests.analysis.stats.helpers import variant_from_values

REL = 1e-9


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_welch_test__raw_normal_data__matches_scipy_and_statsmodels(seed: int) -> None:
    # Given two arms of skewed data with different sizes and variances
    rng = np.random.default_rng(seed)
    control = rng.gamma(2.0, 3.0, size=400)
    treatment = rng.gamma(2.2, 4.0, size=523)
    # When the engine analyses their running totals at α = 0.1
    result = analyze(
        "mean",
        "fixed",
        [variant_from_values("c", control), variant_from_values("t", treatment)],
        alpha=0.1,
        cuped=False,
    )
    comparison = result.comparisons[0]
    # Then scipy's Welch t test on the raw values is the oracle for p
    oracle = scipy_stats.ttest_ind(treatment, control, equal_var=False)
    assert comparison.p_value == pytest.approx(oracle.pvalue, rel=REL)
    assert comparison.statistic == pytest.approx(oracle.statistic, rel=REL)
    # And statsmodels' unequal-variance CompareMeans for the interval and effect
    compare = CompareMeans(DescrStatsW(treatment), DescrStatsW(control))
    low, high = compare.tconfint_diff(alpha=0.1, usevar="unequal")
    assert comparison.absolute_effect == pytest.approx(treatment.mean() - control.mean(), rel=REL)
    assert comparison.absolute_ci == pytest.approx((low, high), rel=REL)
    _, p_sm, _ = compare.ttest_ind(usevar="unequal")
    assert comparison.p_value == pytest.approx(p_sm, rel=REL)
    # And the summaries are the numpy mean and unbiased variance
    assert result.variants[1].mean == pytest.approx(treatment.mean(), rel=REL)
    assert result.variants[1].variance == pytest.approx(treatment.var(ddof=1), rel=REL)


def test_welch_test__proportions__statistic_and_interval_match_statsmodels_wald() -> None:
    # Given conversions 0/1 in two arms
    rng = np.random.default_rng(11)
    control = (rng.random(3000) < 0.10).astype(float)
    treatment = (rng.random(3100) < 0.12).astype(float)
    result = analyze(
        "proportion",
        "fixed",
        [variant_from_values("c", control), variant_from_values("t", treatment)],
    )
    comparison = result.comparisons[0]
    # Then the statistic equals statsmodels' Wald difference test (variance p(1 − p)/n)
    counts = (treatment.sum(), control.sum())
    sizes = (treatment.size, control.size)
    wald = sm_proportion.test_proportions_2indep(
        counts[0], sizes[0], counts[1], sizes[1], method="wald"
    )
    assert comparison.statistic == pytest.approx(wald.statistic, rel=REL)
    # And the p-value is the Student t tail with the Welch–Satterthwaite df of p(1 − p)/n
    p_t, p_c = treatment.mean(), control.mean()
    a, b = p_t * (1 - p_t) / sizes[0], p_c * (1 - p_c) / sizes[1]
    df = (a + b) ** 2 / (a**2 / (sizes[0] - 1) + b**2 / (sizes[1] - 1))
    expected_p = 2 * scipy_stats.t.sf(abs(wald.statistic), df)
    assert comparison.p_value == pytest.approx(expected_p, rel=REL)
    # And the interval is statsmodels' Wald interval with the t quantile in place of z
    low, high = sm_proportion.confint_proportions_2indep(
        counts[0], sizes[0], counts[1], sizes[1], method="wald", compare="diff"
    )
    ratio = scipy_stats.t.ppf(0.975, df) / scipy_stats.norm.ppf(0.975)
    centre = p_t - p_c
    assert comparison.absolute_ci == pytest.approx(
        (centre - (centre - low) * ratio, centre + (high - centre) * ratio), rel=REL
    )


def test_relative_effect__delta_method__matches_contract_formula_on_raw_data() -> None:
    # Given raw data in both arms
    rng = np.random.default_rng(5)
    control, treatment = rng.normal(10, 3, 800), rng.normal(10.6, 3.5, 900)
    result = analyze(
        "mean",
        "fixed",
        [variant_from_values("c", control), variant_from_values("t", treatment)],
        cuped=False,
    )
    comparison = result.comparisons[0]
    # Then the relative interval uses Var = s²_T/(m_C² n_T) + s²_C m_T²/(m_C⁴ n_C), t quantile
    m_c, m_t = control.mean(), treatment.mean()
    var = treatment.var(ddof=1) / (m_c**2 * 900) + control.var(ddof=1) * m_t**2 / (m_c**4 * 800)
    oracle = scipy_stats.ttest_ind(treatment, control, equal_var=False)
    quantile = scipy_stats.t.ppf(0.975, oracle.df)
    assert comparison.relative_effect == pytest.approx(m_t / m_c - 1, rel=REL)
    assert comparison.relative_ci == pytest.approx(
        (m_t / m_c - 1 - quantile * var**0.5, m_t / m_c - 1 + quantile * var**0.5), rel=REL
    )


def test_relative_interval__simulated_experiments__covers_true_lift_about_95_percent() -> None:
    # Given 2,000 simulated experiments with a true +5% lift (independent oracle: the truth)
    rng = np.random.default_rng(21)
    covered = 0
    experiments = 2000
    control = rng.exponential(4.0, size=(experiments, 300))
    treatment = rng.exponential(4.2, size=(experiments, 300))
    for c, t in zip(control, treatment, strict=True):
        moments = [ArmMoments(300, float(x.mean()), float(x.var(ddof=1))) for x in (c, t)]
        estimate = difference_estimate(moments[0], moments[1])
        assert isinstance(estimate, EffectEstimate)
        ci = welch_test(estimate).relative_ci
        assert ci is not None
        covered += ci[0] <= 0.05 <= ci[1]
    # Then coverage is 95% within a binomial margin (4 standard errors)
    assert abs(covered / experiments - 0.95) < 4 * (0.95 * 0.05 / experiments) ** 0.5


def test_arm_moments__one_unit__undefined_too_few_units() -> None:
    # Given an arm with a single unit / When / Then: no variance, so undefined, no exception
    moments = arm_moments("mean", variant_from_values("c", np.array([3.0])))
    assert getattr(moments, "reason", None) == "too_few_units"
