"""A fast, seeded slice of ``benchmarks/rollback.py``: guardrail looks every 5 minutes plus
hourly, state round-tripped through JSON as the service stores it, an arm rolled back at the
first harm."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
from scipy import stats


def _load_benchmark() -> ModuleType:
    path = Path(__file__).resolve().parents[3] / "benchmarks" / "rollback.py"
    spec = importlib.util.spec_from_file_location("variantlab_benchmark_rollback", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


rollback = _load_benchmark()
RUNS = 24


def test_rollback_simulation__aa_two_days__rollbacks_within_binomial_margin() -> None:
    # Given A/A experiments (the treatment is the control) looked at 5-minutely and hourly
    result = rollback.simulate(
        runs=RUNS, days=2, units_per_hour=300, latency_scale=1.0, error_rate=0.02, seed=11
    )
    # Then the share rolled back stays within guardrail_alpha's binomial 99.9 % bound
    ceiling = stats.binom.ppf(0.999, RUNS, result["guardrail_alpha"])
    assert result["rolled_back"] <= ceiling


def test_rollback_simulation__latency_plus_35_percent__every_run_rolled_back() -> None:
    result = rollback.simulate(
        runs=6, days=2, units_per_hour=1000, latency_scale=1.35, error_rate=0.02, seed=12
    )
    assert result["rolled_back"] == 6
    # Rolled back within the first day at 1,000 units per hour per arm
    assert result["max_hours_to_rollback"] < 24


def test_rollback_simulation__error_rate_doubled__rolled_back() -> None:
    result = rollback.simulate(
        runs=4, days=2, units_per_hour=1000, latency_scale=1.0, error_rate=0.04, seed=13
    )
    assert result["rolled_back"] == 4


@pytest.mark.parametrize("runs", [100, 400])
def test_binomial_ceiling__three_sigma(runs: int) -> None:
    assert rollback.binomial_ceiling(runs, 0.05) == pytest.approx(
        runs * 0.05 + 3 * (runs * 0.05 * 0.95) ** 0.5
    )
