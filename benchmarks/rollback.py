"""Guarded rollouts in simulation (issue 10): A/A false rollbacks, time to roll back a regression.

Each simulated experiment has a control and one treatment, and two guardrails that both count
a rise as harm: a unit's model latency (lognormal, σ = 0.5, a `mean` metric with the heavy-tail
gate, as the service builds it) and its error indicator (2 % of units, a proportion). Units
arrive at `units_per_hour` per arm (Poisson). The guardrails are looked at as the service does:
by the monitor every 5 minutes and by an hourly snapshot (so every hour the same data is looked
at twice), for 15 days, each look through `decide_look` with the state of the previous look
round-tripped through JSON, exactly as `GuardrailCheck.decision_state` stores it. The arm is
rolled back (auto_rollback) at the first look with `harm`.

- A/A: the share of experiments rolled back must stay at or below `guardrail_alpha` (the test
  is one-sided, always valid, Bonferroni over the 2 guardrails, so it is conservative).
- Regression: the treatment's latencies are 35 % higher (every quantile, p95 included, moves by
  35 % under a lognormal scale change); we report the median simulated time to rollback.

Quantile metrics (`aggregation: quantile`) are not implemented yet, so latency is analysed as a
per-unit mean here; the decision code and its state handling are the ones the service runs.

    python benchmarks/rollback.py --runs 200 --days 15 --seed 1
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.stats.decisions import (
    DecisionSettings,
    DecisionState,
    MetricInput,
    decide_look,
)
from analysis.stats.inputs import VariantStats

MONITOR_MINUTES = 5
SNAPSHOT_MINUTES = 60
LATENCY_LOG_MEAN = math.log(300.0)  # ms
LATENCY_SIGMA = 0.5
ERROR_RATE = 0.02


@dataclass
class Arm:
    """Running totals of one arm: units, Σx, Σx², Σx³ of latency; error count."""

    n: int = 0
    lat_sum: float = 0.0
    lat_sq: float = 0.0
    lat_cube: float = 0.0
    errors: int = 0

    def add(self, rng: np.random.Generator, units: int, scale: float, error_rate: float) -> None:
        if units == 0:
            return
        latency = scale * rng.lognormal(LATENCY_LOG_MEAN, LATENCY_SIGMA, size=units)
        self.n += units
        self.lat_sum += float(latency.sum())
        self.lat_sq += float((latency**2).sum())
        self.lat_cube += float((latency**3).sum())
        self.errors += int(rng.binomial(units, error_rate))


def guardrail_inputs(control: Arm, treatment: Arm) -> list[MetricInput]:
    def latency(key: str, arm: Arm) -> VariantStats:
        return VariantStats(key, arm.n, arm.lat_sum, arm.lat_sq, sum_cubes=arm.lat_cube)

    def errors(key: str, arm: Arm) -> VariantStats:
        return VariantStats(key, arm.n, float(arm.errors))

    return [
        MetricInput(
            "model_latency",
            "mean",
            (latency("control", control), latency("treatment", treatment)),
            role="guardrail",
            direction="decrease",
            cuped=False,
            gate_heavy_tail=True,
        ),
        MetricInput(
            "model_error_rate",
            "proportion",
            (errors("control", control), errors("treatment", treatment)),
            role="guardrail",
            direction="decrease",
            cuped=False,
        ),
    ]


def run_experiment(
    rng: np.random.Generator,
    *,
    days: float,
    units_per_hour: float,
    latency_scale: float,
    error_rate: float,
    settings: DecisionSettings,
) -> float | None:
    """Hours until the first look with harm (the rollback), or None if it never comes."""
    control, treatment = Arm(), Arm()
    state_json: dict | None = None
    per_step = units_per_hour * MONITOR_MINUTES / 60.0
    steps = int(days * 24 * 60 / MONITOR_MINUTES)
    for step in range(1, steps + 1):
        control.add(rng, int(rng.poisson(per_step)), 1.0, ERROR_RATE)
        treatment.add(rng, int(rng.poisson(per_step)), latency_scale, error_rate)
        minute = step * MONITOR_MINUTES
        looks = 2 if minute % SNAPSHOT_MINUTES == 0 else 1  # the hourly snapshot looks too
        for _ in range(looks):
            state = DecisionState.from_json(
                json.loads(json.dumps(state_json)) if state_json else None
            )
            result, new_state = decide_look(settings, guardrail_inputs(control, treatment), state)
            state_json = new_state.to_json()
            if result.harms:
                return minute / 60.0
    return None


def simulate(
    *,
    runs: int,
    days: float,
    units_per_hour: float,
    latency_scale: float,
    error_rate: float,
    seed: int,
    guardrail_alpha: float = 0.05,
) -> dict:
    settings = DecisionSettings(guardrail_alpha=guardrail_alpha)
    rng = np.random.default_rng(seed)
    times = [
        run_experiment(
            rng,
            days=days,
            units_per_hour=units_per_hour,
            latency_scale=latency_scale,
            error_rate=error_rate,
            settings=settings,
        )
        for _ in range(runs)
    ]
    rolled = [t for t in times if t is not None]
    return {
        "runs": runs,
        "days": days,
        "units_per_hour_per_arm": units_per_hour,
        "latency_scale": latency_scale,
        "error_rate": error_rate,
        "guardrail_alpha": guardrail_alpha,
        "rolled_back": len(rolled),
        "rollback_rate": len(rolled) / runs,
        "median_hours_to_rollback": float(np.median(rolled)) if rolled else None,
        "max_hours_to_rollback": max(rolled) if rolled else None,
    }


def binomial_ceiling(runs: int, rate: float, z: float = 3.0) -> float:
    """The most rollbacks an A/A batch may show at `rate`: mean + z standard deviations."""
    return runs * rate + z * math.sqrt(runs * rate * (1.0 - rate))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--regression-runs", type=int, default=50)
    parser.add_argument("--days", type=float, default=15.0)
    parser.add_argument("--units-per-hour", type=float, default=1000.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    aa = simulate(
        runs=args.runs,
        days=args.days,
        units_per_hour=args.units_per_hour,
        latency_scale=1.0,
        error_rate=ERROR_RATE,
        seed=args.seed,
    )
    aa["binomial_ceiling"] = binomial_ceiling(aa["runs"], aa["guardrail_alpha"])
    aa["ok"] = aa["rolled_back"] <= aa["binomial_ceiling"]
    regression = simulate(
        runs=args.regression_runs,
        days=args.days,
        units_per_hour=args.units_per_hour,
        latency_scale=1.35,
        error_rate=ERROR_RATE,
        seed=args.seed + 1,
    )
    print(json.dumps({"aa": aa, "latency_plus_35_percent": regression}, indent=2))


if __name__ == "__main__":
    main()
