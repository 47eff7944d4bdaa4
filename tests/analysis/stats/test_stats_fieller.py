"""Fieller's interval for a relative effect: against root finding, agreeing with the absolute
interval about 0, and covering where the delta method does not."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from scipy import optimize

from analysis.stats.fieller import (
    RatioInterval,
    cuped_ratio_moments,
    fieller_relative_interval,
    plain_ratio_moments,
)
from analysis.stats.inputs import StatsInputError
from analysis.stats.moments import ArmMoments


def _gap(a, b, v_a, v_b, cov, c):
    """(a − r·b)² − c²·Var(a − r·b): the interval is where this is ≤ 0."""
    return lambda r: (a - r * b) ** 2 - c * c * (v_a - 2.0 * r * cov + r * r * v_b)


def _root_outward(f, start: float, direction: float) -> float:
    """The root of f beyond ``start`` (where f ≤ 0), by doubling a step then brentq."""
    step = 1e-6 * (abs(start) + 1.0)
    while f(start + direction * step) <= 0.0:
        step *= 2.0
    return optimize.brentq(f, start, start + direction * step, xtol=1e-300, rtol=1e-13)


def test_fieller_relative_interval__random_inputs__matches_brentq_roots() -> None:
    # Given 500 random numerators, denominators and positive-definite covariance matrices
    rng = np.random.default_rng(1954)
    bounded = unbounded = 0
    for _ in range(500):
        a, b = rng.normal(0.0, 3.0, size=2)
        root = rng.normal(size=(2, 2)) * rng.uniform(0.1, 2.0)
        (v_a, cov), (_, v_b) = root @ root.T
        c = rng.uniform(1.0, 3.0)
        f = _gap(a, b, v_a, v_b, cov, c)
        # When the interval is computed
        interval = fieller_relative_interval(a, b, v_a, v_b, cov, c)
        if b * b - c * c * v_b > 0.0:
            # Then its ends are the roots either side of a/b (where the gap is −c²·Var < 0)
            bounded += 1
            low, high = _root_outward(f, a / b, -1.0), _root_outward(f, a / b, 1.0)
            assert interval.reason is None
            assert interval.low == pytest.approx(low, rel=1e-8, abs=1e-12)
            assert interval.high == pytest.approx(high, rel=1e-8, abs=1e-12)
        else:
            # ... or the set holds arbitrarily large |r|, and it is reported unbounded
            unbounded += 1
            assert interval == RatioInterval(None, None, "relative_unbounded")
            assert min(f(1e9), f(-1e9)) <= 0.0
    assert bounded > 100 and unbounded > 100


@st.composite
def _ratio_inputs(draw):
    """(a, b, V_a, V_b, C, c) with a valid covariance; a sometimes a few ulps from c·√V_a."""
    c = draw(st.floats(min_value=0.5, max_value=4.0))
    v_a = draw(st.floats(min_value=0.0, max_value=1e4) | st.sampled_from([1e-12, 1e-300]))
    v_b = draw(st.floats(min_value=0.0, max_value=1e4))
    rho = draw(st.floats(min_value=-1.0, max_value=1.0))
    b = draw(st.floats(min_value=-1e3, max_value=1e3))
    if draw(st.booleans()):
        a = draw(st.floats(min_value=-1e3, max_value=1e3))
    else:
        # On the edge of the absolute interval, where rounding decides.
        a = c * math.sqrt(v_a)
        for _ in range(draw(st.integers(min_value=-3, max_value=3)) % 7):
            a = math.nextafter(a, math.inf if draw(st.booleans()) else -math.inf)
        a = a if draw(st.booleans()) else -a
    # Subnormal estimates and variances (below 1e-308) come from no data set and lose the
    # ratio's precision.
    assume(a == 0.0 or abs(a) >= 1e-300)
    assume(b == 0.0 or abs(b) >= 1e-150)
    assume(all(v == 0.0 or v >= 1e-300 for v in (v_a, v_b)))
    return a, b, v_a, v_b, rho * math.sqrt(v_a * v_b), c


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(inputs=_ratio_inputs())
@example(inputs=(1.96, 10.0, 1.0, 1.0, -1.0, 1.96))
@example(inputs=(math.nextafter(1.96, 2.0), 10.0, 1.0, 1.0, -1.0, 1.96))
@example(inputs=(-1.96, -10.0, 1.0, 0.5, 0.3, 1.96))
@example(inputs=(0.0, 5.0, 0.0, 1.0, 0.0, 1.96))
def test_fieller_relative_interval__bounded__holds_zero_iff_absolute_interval_does(
    inputs,
) -> None:
    # Given a bounded Fieller interval
    a, b, v_a, v_b, cov, c = inputs
    interval = fieller_relative_interval(a, b, v_a, v_b, cov, c)
    assume(interval.reason is None)
    assert interval.low is not None and interval.high is not None
    # Then 0 is inside it exactly when the absolute interval a ± c·√V_a (computed as
    # welch_test does) holds 0, to the last bit
    half = c * math.sqrt(v_a)
    absolute_holds_zero = a - half <= 0.0 <= a + half
    assert (interval.low <= 0.0 <= interval.high) == absolute_holds_zero
    # ... and it is an interval around the point estimate a/b
    assert interval.low <= interval.high
    tolerance = 1e-9 * (abs(interval.low) + abs(interval.high)) + 1e-300
    assert interval.low - tolerance <= a / b <= interval.high + tolerance


def test_fieller_relative_interval__noisy_denominator__unbounded_with_reason() -> None:
    # Given a control mean within 1.96 standard errors of 0
    interval = fieller_relative_interval(1.0, 2.0, 1.0, 4.0, -1.0, 1.96)
    # Then there is no bounded interval, and the reason says so
    assert interval == RatioInterval(None, None, "relative_unbounded")
    # ... and a denominator exactly 0 with no noise is unbounded too, not a division error
    assert fieller_relative_interval(1.0, 0.0, 1.0, 0.0, 0.0, 1.96).reason == "relative_unbounded"


def test_fieller_relative_interval__impossible_inputs__raise() -> None:
    with pytest.raises(StatsInputError):
        fieller_relative_interval(1.0, 2.0, -1.0, 1.0, 0.0, 1.96)
    with pytest.raises(StatsInputError):
        fieller_relative_interval(math.nan, 2.0, 1.0, 1.0, 0.0, 1.96)


def test_fieller_relative_interval__precise_denominator__approaches_delta_method() -> None:
    # Given a huge sample, where the delta method is accurate
    control, treatment = ArmMoments(10**6, 10.0, 400.0), ArmMoments(10**6, 11.0, 400.0)
    m = plain_ratio_moments(control, treatment)
    interval = fieller_relative_interval(
        m.numerator, m.denominator, m.var_numerator, m.var_denominator, m.covariance, 1.96
    )
    # Then Fieller's interval is the delta-method one, to first order
    variance = (treatment.variance_of_mean + control.variance_of_mean * 1.1**2) / 100.0
    half = 1.96 * math.sqrt(variance)
    assert interval.low == pytest.approx(0.1 - half, rel=1e-3)
    assert interval.high == pytest.approx(0.1 + half, rel=1e-3)


def test_plain_ratio_moments__two_arms__difference_over_control() -> None:
    m = plain_ratio_moments(ArmMoments(100, 10.0, 400.0), ArmMoments(50, 12.0, 100.0))
    assert (m.numerator, m.denominator) == (2.0, 10.0)
    assert (m.var_numerator, m.var_denominator, m.covariance) == (6.0, 4.0, -4.0)


def test_cuped_ratio_moments__theta_zero__is_the_plain_case() -> None:
    control, treatment = ArmMoments(100, 10.0, 400.0), ArmMoments(50, 12.0, 100.0)
    plain = plain_ratio_moments(control, treatment)
    cuped = cuped_ratio_moments(2.0, 6.0, 10.0, 400.0, 123.0, 0.0, 100)
    assert cuped == plain


def test_cuped_ratio_moments__covariance__matches_monte_carlo() -> None:
    # Given many control arms of 40 units with Y and X correlated, and a fixed θ
    rng = np.random.default_rng(2013)
    n, reps, theta = 40, 40_000, 0.7
    sd_y, sd_x, rho = 3.0, 2.0, 0.6
    cov_xy = rho * sd_y * sd_x
    x = rng.normal(0.0, sd_x, size=(reps, n))
    y = (
        5.0
        + (cov_xy / sd_x**2) * x
        + rng.normal(0.0, math.sqrt(sd_y**2 - cov_xy**2 / sd_x**2), (reps, n))
    )
    y_bar, x_bar = y.mean(axis=1), x.mean(axis=1)
    # When cov(Δ_adj, ȳ_C) is estimated by simulation (only the control part of Δ_adj, with
    # a minus sign, varies with ȳ_C)
    simulated = np.cov(-(y_bar - theta * x_bar), y_bar)[0, 1]
    # Then it is the helper's −(s²_Y − θ·cov_XY)/n_C, with population values
    m = cuped_ratio_moments(0.0, 1.0, 5.0, sd_y**2, cov_xy, theta, n)
    assert m.covariance == pytest.approx(-(sd_y**2 - theta * cov_xy) / n)
    assert simulated == pytest.approx(m.covariance, rel=0.03)
    assert m.var_denominator == pytest.approx(np.var(y_bar, ddof=1), rel=0.03)


def test_fieller_relative_interval__noisy_control_mean__outcovers_delta_method() -> None:
    # Given 4,000 experiments of 30 normal units per arm: control mean 10, sd 20 (so the
    # control mean is only ~2.7 standard errors from 0), true relative effect +10%
    rng = np.random.default_rng(30)
    runs, n, truth, c = 4000, 30, 0.1, 1.96
    control = rng.normal(10.0, 20.0, size=(runs, n))
    treatment = rng.normal(11.0, 20.0, size=(runs, n))
    covered = bounded = exact = delta_all = delta_bounded = fieller_bounded = 0
    for yc, yt in zip(control, treatment, strict=True):
        arm_c = ArmMoments(n, float(yc.mean()), float(yc.var(ddof=1)))
        arm_t = ArmMoments(n, float(yt.mean()), float(yt.var(ddof=1)))
        m = plain_ratio_moments(arm_c, arm_t)
        # When Fieller's 95% interval is computed ...
        interval = fieller_relative_interval(
            m.numerator, m.denominator, m.var_numerator, m.var_denominator, m.covariance, c
        )
        # ... and the delta-method one of fixed.py: Var = v_T/m_C² + v_C·m_T²/m_C⁴
        relative = m.numerator / m.denominator
        ratio = arm_t.mean / arm_c.mean
        half = c * math.sqrt(
            (arm_t.variance_of_mean + arm_c.variance_of_mean * ratio**2) / arm_c.mean**2
        )
        delta_covers = relative - half <= truth <= relative + half
        delta_all += delta_covers
        exact += (
            _gap(m.numerator, m.denominator, m.var_numerator, m.var_denominator, m.covariance, c)(
                truth
            )
            <= 0.0
        )
        if interval.reason is None:
            assert interval.low is not None and interval.high is not None
            bounded += 1
            hit = interval.low <= truth <= interval.high
            covered += hit
            fieller_bounded += hit
            delta_bounded += delta_covers
        else:
            # "Unbounded" claims nothing: as an interval it is the whole line.
            covered += 1
    # Then, as reported (unbounded = the whole line), Fieller covers ≥ 94% (simulated ~96.7%)
    assert covered / runs >= 0.94, covered / runs
    # ... Fieller's exact confidence set covers ~95% (94.6% expected with c = 1.96 for a
    # t with 58 df; ≥ 93.5% allows 3 binomial standard errors)
    assert exact / runs >= 0.935, exact / runs
    # ... the delta method covers less, overall and on the very runs where Fieller is bounded
    # (simulated ~93% and ~91% against ~96%)
    assert covered / runs >= delta_all / runs + 0.02
    assert fieller_bounded / bounded >= 0.94
    assert fieller_bounded / bounded >= delta_bounded / bounded + 0.03
    # ... at the price of "unbounded" for a noisy control mean (|m_C| < 1.96 se: ~22%)
    assert 0.15 <= 1.0 - bounded / runs <= 0.30
