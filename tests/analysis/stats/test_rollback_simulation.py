"""A fast, seeded slice of ``benchmarks/rollback.py``: the three model guardrails (p95 latency as
a quantile metric, error rate, cost per unit) looked at every 5 minutes plus hourly, state
round-tripped through JSON as the service stores it, an arm rolled back at the first harm. The
15-day regression runs are marked slow. The 15-day A/A runs cost over a minute of CPU each, so
their type-I figure is the benchmark's (docs/rollouts.md, "Simulation"), not a suite test: 20
runs would take the suite past its time budget and could only catch a rate above 20 %."""

from __future__ import annotations

import pytest
from scipy import stats

from tests.analysis.stats.helpers import load_benchmark

rollback = load_benchmark("rollback")
RUNS = 24


def test_rollback_simulation__aa_two_days__rollbacks_within_binomial_margin() -> None:
    # Given A/A experiments (the treatment is the control) looked at 5-minutely and hourly
    result = rollback.simulate(
        runs=RUNS, days=2, calls_per_hour=1000, latency_scale=1.0, error_rate=0.02, seed=11
    )
    # Then the share rolled back stays within guardrail_alpha's binomial 99.9 % bound
    ceiling = stats.binom.ppf(0.999, RUNS, result["guardrail_alpha"])
    assert result["rolled_back"] <= ceiling


def test_rollback_simulation__latency_plus_35_percent__every_run_rolled_back() -> None:
    result = rollback.simulate(
        runs=6, days=2, calls_per_hour=1000, latency_scale=1.35, error_rate=0.02, seed=12
    )
    assert result["rolled_back"] == 6
    # by the p95 latency guardrail, within the first day at 1,000 calls per hour per arm
    assert result["rolled_back_by"] == {"model_latency_p95": 6}
    assert result["max_hours_to_rollback"] < 24


def test_rollback_simulation__error_rate_doubled__rolled_back() -> None:
    result = rollback.simulate(
        runs=4, days=2, calls_per_hour=1000, latency_scale=1.0, error_rate=0.04, seed=13
    )
    assert result["rolled_back"] == 4
    assert result["rolled_back_by"] == {"model_error_rate": 4}


def test_rollback_arm__p95_equals_numpy_on_the_events() -> None:
    import numpy as np

    arm = rollback.Arm()
    rng = np.random.default_rng(5)
    for _ in range(5):
        arm.add(rng, 40, 1.0, 0.02)
    stats = arm.p95("control")
    assert stats.n == 200
    assert stats.sum / stats.n == pytest.approx(np.percentile(arm.latency, 95))
    assert list(arm.latency) == sorted(arm.latency)


@pytest.mark.slow
def test_rollback_simulation__plus_35_percent_fifteen_days__all_rolled_back() -> None:
    result = rollback.simulate(
        runs=10, days=15, calls_per_hour=1000, latency_scale=1.35, error_rate=0.02, seed=22
    )
    assert result["rolled_back"] == 10


@pytest.mark.parametrize("runs", [100, 400])
def test_binomial_ceiling__three_sigma(runs: int) -> None:
    assert rollback.binomial_ceiling(runs, 0.05) == pytest.approx(
        runs * 0.05 + 3 * (runs * 0.05 * 0.95) ** 0.5
    )
