"""Confidence sequence and mSPRT p-value: the contract's formulas and their duality."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate
from scipy import stats as scipy_stats

from analysis.stats import (
    EffectEstimate,
    SequentialState,
    confidence_sequence_half_width,
    msprt_p_value,
    sequential_state_update,
    sequential_test,
)


def test_msprt_p_value__any_effect__is_inverse_of_normal_mixture_likelihood_ratio() -> None:
    # Given Δ with variance V after N units, tuning N* (so mixing variance τ² = ρ²·V·N)
    delta, variance, total, alpha, tuning = 0.08, 0.0012, 3000, 0.05, 5000
    rho2 = (-2 * math.log(alpha) + math.log(1 - 2 * math.log(alpha))) / tuning
    tau2 = rho2 * variance * total

    # When the mixture likelihood ratio ∫ N(Δ; θ, V)/N(Δ; 0, V) N(θ; 0, τ²) dθ is integrated
    def integrand(theta: float) -> float:
        ratio = scipy_stats.norm.pdf(delta, theta, variance**0.5) / scipy_stats.norm.pdf(
            delta, 0, variance**0.5
        )
        return ratio * scipy_stats.norm.pdf(theta, 0, tau2**0.5)

    mixture, _ = integrate.quad(integrand, -1, 1, points=[0.0, delta], limit=200)
    # Then the always-valid p-value is its reciprocal (Johari et al.)
    assert msprt_p_value(delta, variance, total, alpha, tuning) == pytest.approx(
        1 / mixture, rel=1e-7
    )


def test_confidence_sequence__contract_numbers__match_hand_computation() -> None:
    # Given V = 0.0004, N = 10,000, α = 0.05, N* = 5000 (worked by hand from docs/api.md §6)
    rho2 = (-2 * math.log(0.05) + math.log(1 - 2 * math.log(0.05))) / 5000
    n = 10_000
    expected = math.sqrt(0.0004 * n) * math.sqrt(
        2 * (n * rho2 + 1) / (n * n * rho2) * math.log(math.sqrt(n * rho2 + 1) / 0.05)
    )
    # When / Then
    assert confidence_sequence_half_width(0.0004, n, 0.05, 5000) == pytest.approx(expected)
    # And it is wider than the fixed z interval: the price of peeking
    assert expected > scipy_stats.norm.ppf(0.975) * 0.02


@pytest.mark.parametrize("delta", [0.0, 0.01, 0.03, 0.0455, 0.046, 0.08, -0.05])
def test_sequential_test__duality__p_below_alpha_iff_interval_excludes_zero(delta: float) -> None:
    # Given an effect of variance V / When tested sequentially
    estimate = EffectEstimate(delta, 0.0002, 1000.0, 4000, delta / 0.5, 0.0008)
    result = sequential_test(estimate, 0.05, 5000)
    # Then p ≤ α exactly when the confidence sequence excludes 0
    low, high = result.absolute_ci
    assert (result.p_value <= 0.05) == (low > 0 or high < 0)
    assert 0.0 <= result.p_value <= 1.0


def test_sequential_state_update__three_looks__running_min_p_and_intersection() -> None:
    # Given three looks' p-values and intervals
    state = sequential_state_update(None, 0.4, (-1.0, 3.0), (-0.1, 0.3))
    state = sequential_state_update(state, 0.2, (0.5, 4.0), (0.0, 0.4))
    state = sequential_state_update(state, 0.3, (-0.5, 2.0), None)
    # Then the minimum p and the intersection are reported
    assert state == SequentialState(3, 0.2, (0.5, 2.0), (0.0, 0.3), None)


def test_sequential_state_update__undefined_look__keeps_running_values() -> None:
    # Given a running state and an undefined look / When folded / Then nothing is lost
    state = sequential_state_update(None, 0.1, (0.0, 1.0))
    after = sequential_state_update(state, None, None)
    assert (after.p_value, after.absolute_ci, after.looks) == (0.1, (0.0, 1.0), 2)


def test_sequential_state_update__disjoint_interval__newest_kept_and_reason() -> None:
    # Given a new interval that misses the running one
    state = sequential_state_update(None, 0.01, (1.0, 2.0))
    after = sequential_state_update(state, 0.5, (-1.0, 0.5))
    # Then the newest is reported with a reason rather than an empty interval
    assert after.absolute_ci == (-1.0, 0.5)
    assert after.reason == "intervals_disjoint"


def test_confidence_sequence__tightest_near_tuning__relative_to_fixed_interval() -> None:
    # Given a per-unit variance of 1 / When the half-width is scaled by √N
    tuning = 8000
    ratios = {
        n: confidence_sequence_half_width(1 / n, n, 0.05, tuning) * math.sqrt(n)
        for n in (1000, 8000, 64000)
    }
    # Then the ratio to the (per-unit) fixed width grows away from N* in a log-like way,
    # staying within a small multiple of the fixed z width at N* (≈ 1.55 at α = 0.05)
    fixed = scipy_stats.norm.ppf(0.975)
    assert 1.4 < ratios[8000] / fixed < 1.7
    assert np.all(np.array(list(ratios.values())) > fixed)
