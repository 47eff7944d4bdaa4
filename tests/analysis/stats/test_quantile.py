"""Quantile metrics (docs/api.md §6): coverage in seeded simulation, against analytic truth.

Latencies are lognormal with a per-unit random effect (units differ, so a unit's calls are
correlated) and 1–20 calls per unit, independent of the effect: every event is then
lognormal(μ, √(τ² + σ²)) and the true event-level q-quantile is exp(μ + z_q·√(τ² + σ²)), an
oracle that shares nothing with our code. A treatment scaling latencies by c moves the true
quantile to c times that. Intervals come from the engine (`analyze`, fixed and sequential) fed
with `as_variant_stats`, as snapshots do.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest
from scipy import stats

from analysis.stats import analyze
from analysis.stats.decisions import DecisionSettings, MetricInput, decide_look
from analysis.stats.quantile import (
    QuantileArm,
    as_variant_stats,
    quantile_arm_from_events,
)

MU, SIGMA, TAU = math.log(300.0), 0.5, 0.4
ALPHA = 0.05


def true_quantile(q: float, scale: float = 1.0) -> float:
    return scale * math.exp(MU + NormalDist().inv_cdf(q) * math.hypot(SIGMA, TAU))


def simulate_arm(
    rng: np.random.Generator, key: str, units: int, q: float, scale: float = 1.0
) -> QuantileArm:
    calls = rng.integers(1, 21, size=units)
    unit_index = np.repeat(np.arange(units), calls)
    unit_effect = rng.normal(0.0, TAU, size=units)[unit_index]
    values = scale * np.exp(MU + unit_effect + rng.normal(0.0, SIGMA, size=unit_index.size))
    return quantile_arm_from_events(key, q, values, unit_index, units)


def coverage(seed: int, units: int, runs: int, method: str, q: float = 0.95) -> float:
    rng = np.random.default_rng(seed)
    truth = true_quantile(q, 1.2) - true_quantile(q)
    covered = 0
    for _ in range(runs):
        control = as_variant_stats(simulate_arm(rng, "control", units, q))
        treatment = as_variant_stats(simulate_arm(rng, "treatment", units, q, scale=1.2))
        result = analyze("mean", method, [control, treatment], alpha=ALPHA, cuped=False)
        low, high = result.comparisons[0].absolute_ci
        covered += low <= truth <= high
    return covered / runs


def floor(runs: int) -> float:
    """Lowest coverage a correct 1 − α interval shows in `runs` runs, at 99.9 %."""
    return stats.binom.ppf(0.001, runs, 1 - ALPHA) / runs


def test_quantile_arm__estimate_is_numpy_linear_quantile_of_all_events() -> None:
    rng = np.random.default_rng(3)
    values = rng.lognormal(5, 1, size=1000)
    index = rng.integers(0, 120, size=1000)
    arm = quantile_arm_from_events("a", 0.95, values, index, 150)
    assert arm.estimate == pytest.approx(np.percentile(values, 95))
    assert (arm.units, arm.events) == (150, 1000)


def test_as_variant_stats__mean_is_estimate_and_variance_of_mean_is_se_squared() -> None:
    v = as_variant_stats(QuantileArm("a", 400, 4000, 812.5, 9.25))
    assert v.sum / v.n == pytest.approx(812.5)
    assert (v.sum_squares - v.sum**2 / v.n) / (v.n - 1) / v.n == pytest.approx(9.25**2)


def test_quantile_difference__equals_numpy_difference_of_p95s() -> None:
    rng = np.random.default_rng(4)
    a, b = rng.lognormal(5, 1, size=3000), rng.lognormal(5.2, 1, size=2500)
    ia, ib = rng.integers(0, 300, size=3000), rng.integers(0, 280, size=2500)
    arms = [
        as_variant_stats(quantile_arm_from_events("control", 0.95, a, ia, 300)),
        as_variant_stats(quantile_arm_from_events("treatment", 0.95, b, ib, 280)),
    ]
    result = analyze("mean", "fixed", arms, cuped=False)
    assert result.comparisons[0].absolute_effect == pytest.approx(
        np.percentile(b, 95) - np.percentile(a, 95)
    )


@pytest.mark.parametrize("method", ["fixed", "sequential"])
def test_quantile_coverage__200_units_per_arm__at_least_1_minus_alpha(method: str) -> None:
    runs = 300
    assert coverage(seed=10, units=200, runs=runs, method=method) >= floor(runs)


@pytest.mark.parametrize("q", [0.5, 0.99])
def test_quantile_coverage__other_quantiles__at_least_1_minus_alpha(q: float) -> None:
    runs = 300
    assert coverage(seed=11, units=500, runs=runs, method="fixed", q=q) >= floor(runs)


@pytest.mark.slow
@pytest.mark.parametrize("units", [200, 5000])
@pytest.mark.parametrize("method", ["fixed", "sequential"])
def test_quantile_coverage__many_runs__at_least_1_minus_alpha(units: int, method: str) -> None:
    runs = 2000
    assert coverage(seed=20 + units, units=units, runs=runs, method=method) >= floor(runs)


def test_quantile_coverage__ignoring_clustering_would_undercover() -> None:
    # The unit effect matters: an i.i.d. order-statistic SE (σ = √(q(1−q)/events)) is too
    # narrow here, which is what the clustered σ corrects.
    rng = np.random.default_rng(12)
    z, q, runs, truth, covered = NormalDist().inv_cdf(0.975), 0.95, 300, 0.0, 0
    for _ in range(runs):
        arms = []
        for _arm in range(2):
            calls = rng.integers(1, 21, size=200)
            index = np.repeat(np.arange(200), calls)
            values = np.exp(MU + rng.normal(0, TAU, 200)[index] + rng.normal(0, SIGMA, index.size))
            sd = math.sqrt(q * (1 - q) / values.size)
            low, high = np.quantile(values, [q - z * sd, q + z * sd])
            arms.append((np.quantile(values, q), (high - low) / (2 * z)))
        delta = arms[1][0] - arms[0][0]
        se = math.hypot(arms[0][1], arms[1][1])
        covered += abs(delta - truth) <= z * se
    assert covered / runs < floor(runs)


def guardrail(control, treatment) -> MetricInput:
    return MetricInput(
        "model_latency_p95",
        "mean",
        (control, treatment),
        role="guardrail",
        direction="decrease",
        cuped=False,
    )


def test_quantile_guardrail__p95_up_35_percent__harm() -> None:
    rng = np.random.default_rng(13)
    control = as_variant_stats(simulate_arm(rng, "control", 2000, 0.95))
    treatment = as_variant_stats(simulate_arm(rng, "treatment", 2000, 0.95, scale=1.35))
    result, _ = decide_look(DecisionSettings(), [guardrail(control, treatment)])
    assert result.harms == [("model_latency_p95", "treatment")]


def test_quantile_guardrail__aa__harm_rate_at_most_guardrail_alpha() -> None:
    rng = np.random.default_rng(14)
    runs, harmed = 200, 0
    for _ in range(runs):
        control = as_variant_stats(simulate_arm(rng, "control", 300, 0.95))
        treatment = as_variant_stats(simulate_arm(rng, "treatment", 300, 0.95))
        result, _ = decide_look(DecisionSettings(), [guardrail(control, treatment)])
        harmed += bool(result.harms)
    assert harmed <= stats.binom.ppf(0.999, runs, 0.05)
