"""Guarded rollouts in simulation (issue 10): A/A false rollbacks, time to roll back a regression.

Each simulated experiment has a control and one treatment with ``model_guardrails`` on, so the
three model guardrails (docs/api.md §10), each counting a rise as harm:

- ``model_latency_p95``: the 0.95 quantile of every call's latency (``aggregation: quantile``),
  through `analysis.stats.quantile` (Q̂ and its clustered delta-method standard error, exactly
  the quantities the SQL computes; the SQL is tested against numpy on its own);
- ``model_error_rate``: errors / calls, a ratio over units (2 % of calls fail);
- ``model_cost_per_unit``: the sum of the calls' cost per unit.

Traffic: units arrive (Poisson) and make 1–20 calls each (uniform), ``calls_per_hour`` calls
per arm on average. A call's latency is lognormal (median 300 ms, σ = 0.5) times a per-unit
factor (lognormal, σ = 0.3: some users' requests are slower, so a unit's calls are
correlated); its cost is 0.002 USD times a lognormal factor (σ = 0.3, tokens), independent of
latency, so a latency regression is caught by the p95 guardrail alone. The guardrails are
looked at as the service does: by the monitor every 5 minutes and by an hourly snapshot (so
every hour the same data is looked at twice), for 15 days, each look through `decide_look` with
the state of the previous look round-tripped through JSON, exactly as
`GuardrailCheck.decision_state` stores it. The arm is rolled back (auto_rollback) at the
first look with `harm`.

- A/A: the share of experiments rolled back must stay at or below ``guardrail_alpha`` (the test
  is one-sided, always valid, Bonferroni over the 3 guardrails, so it is conservative).
- Regression: the treatment's latencies are 35 % higher (every quantile, p95 included, moves by
  35 % under a scale change); we report the median time to rollback.

    python benchmarks/rollback.py --runs 60 --regression-runs 50 --days 15 --seed 1
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
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
from analysis.stats.quantile import (
    QuantileArm,
    QuantileCounts,
    as_variant_stats,
    indicator_sd,
    interval_probabilities,
    linear_quantile,
    standard_error,
)

MONITOR_MINUTES = 5
SNAPSHOT_MINUTES = 60
LATENCY_LOG_MEAN = math.log(300.0)  # ms
LATENCY_SIGMA = 0.5
UNIT_SIGMA = 0.3
MEAN_CALLS_PER_UNIT = 10.5  # uniform on 1..20
ERROR_RATE = 0.02
COST_PER_CALL = 0.002  # USD, median
Q = 0.95


class Arm:
    """One arm's events, kept sorted by latency so that every look reads Q̂ and its interval
    directly, with each unit's running totals for the error ratio and the cost."""

    def __init__(self) -> None:
        self.latency = np.empty(0)  # sorted
        self.owner = np.empty(0, dtype=np.int64)  # unit of each sorted latency
        self._calls = np.empty(4096)  # calls per unit, grown by doubling
        self.units = 0
        # Running totals over units (a unit's calls all arrive with it, so its own totals are
        # final at once): ΣN, ΣN², ΣM, ΣM², ΣM·N of errors M per calls N; Σc, Σc², Σc³ of cost.
        self.n_sum = self.n_sq = 0.0
        self.m_sum = self.m_sq = self.mn = 0.0
        self.c_sum = self.c_sq = self.c_cube = 0.0

    def add(
        self,
        rng: np.random.Generator,
        units: int,
        scale: float,
        error_rate: float,
    ) -> None:
        if units == 0:
            return
        first = self.units
        calls = rng.integers(1, 21, size=units)
        owner = np.repeat(np.arange(first, first + units), calls)
        factor = rng.lognormal(0.0, UNIT_SIGMA, size=units)[owner - first]
        latency = scale * factor * rng.lognormal(LATENCY_LOG_MEAN, LATENCY_SIGMA, size=owner.size)
        failed = rng.random(owner.size) < error_rate
        cost = COST_PER_CALL * rng.lognormal(0.0, 0.3, size=owner.size)
        if self.units + units > self._calls.size:
            self._calls = np.resize(self._calls, 2 * (self.units + units))
        self._calls[self.units : self.units + units] = calls
        self.units += units
        n = calls.astype(float)
        m = np.bincount(owner - first, weights=failed, minlength=units)
        c = np.bincount(owner - first, weights=cost, minlength=units)
        self.n_sum += float(n.sum())
        self.n_sq += float(n @ n)
        self.m_sum += float(m.sum())
        self.m_sq += float(m @ m)
        self.mn += float(m @ n)
        self.c_sum += float(c.sum())
        self.c_sq += float(c @ c)
        self.c_cube += float((c**3).sum())
        order = np.argsort(latency)
        latency, owner = latency[order], owner[order]
        at = np.searchsorted(self.latency, latency)
        self.latency = np.insert(self.latency, at, latency)
        self.owner = np.insert(self.owner, at, owner)

    def p95(self, key: str) -> VariantStats:
        """`analysis.stats.quantile` steps 1–3 on the sorted events (as the SQL does)."""
        if self.latency.size == 0:
            return as_variant_stats(QuantileArm(key, self.units, 0, None, None))
        values = self.latency
        estimate = linear_quantile(values, Q)
        below_count = int(np.searchsorted(values, estimate, side="right"))
        below = np.bincount(self.owner[:below_count], minlength=self.units).astype(float)
        sizes = self._calls[: self.units]
        counts = QuantileCounts(
            units=self.units,
            events=int(values.size),
            events_sq=self.n_sq,
            below=below_count,
            below_sq=float(below @ below),
            below_events=float(below @ sizes),
            estimate=estimate,
        )
        sd = indicator_sd(counts)
        se = None
        if sd is not None:
            low, high = interval_probabilities(Q, sd)
            se = standard_error(linear_quantile(values, low), linear_quantile(values, high))
        return as_variant_stats(QuantileArm(key, self.units, int(values.size), estimate, se))

    def error_ratio(self, key: str) -> VariantStats:
        return VariantStats(
            key,
            self.units,
            self.m_sum,
            self.m_sq,
            cross_sum=self.mn,
            denominator_sum=self.n_sum,
            denominator_sum_squares=self.n_sq,
        )

    def cost_sum(self, key: str) -> VariantStats:
        return VariantStats(key, self.units, self.c_sum, self.c_sq, sum_cubes=self.c_cube)


def guardrail_inputs(control: Arm, treatment: Arm) -> list[MetricInput]:
    def guardrail(key: str, metric_type: str, control_stats, treatment_stats, gate=False):
        return MetricInput(
            key,
            metric_type,
            (control_stats, treatment_stats),
            role="guardrail",
            direction="decrease",
            cuped=False,
            gate_heavy_tail=gate,
        )

    return [
        guardrail("model_latency_p95", "mean", control.p95("control"), treatment.p95("treatment")),
        guardrail(
            "model_error_rate",
            "ratio",
            control.error_ratio("control"),
            treatment.error_ratio("treatment"),
        ),
        guardrail(
            "model_cost_per_unit",
            "mean",
            control.cost_sum("control"),
            treatment.cost_sum("treatment"),
            gate=True,  # a sum metric, heavy-tail gated as the service does
        ),
    ]


def run_experiment(
    rng: np.random.Generator,
    *,
    days: float,
    calls_per_hour: float,
    latency_scale: float,
    error_rate: float,
    settings: DecisionSettings,
) -> tuple[float, str] | None:
    """Hours until the first look with harm (the rollback) and the metric, or None."""
    control, treatment = Arm(), Arm()
    state_json: dict | None = None
    units_per_step = calls_per_hour / MEAN_CALLS_PER_UNIT * MONITOR_MINUTES / 60.0
    steps = int(days * 24 * 60 / MONITOR_MINUTES)
    for step in range(1, steps + 1):
        control.add(rng, int(rng.poisson(units_per_step)), 1.0, ERROR_RATE)
        treatment.add(rng, int(rng.poisson(units_per_step)), latency_scale, error_rate)
        minute = step * MONITOR_MINUTES
        looks = 2 if minute % SNAPSHOT_MINUTES == 0 else 1  # the hourly snapshot looks too
        inputs = guardrail_inputs(control, treatment)
        for _ in range(looks):
            state = DecisionState.from_json(
                json.loads(json.dumps(state_json)) if state_json else None
            )
            result, new_state = decide_look(settings, inputs, state)
            state_json = new_state.to_json()
            if result.harms:
                return minute / 60.0, result.harms[0][0]
    return None


def simulate(
    *,
    runs: int,
    days: float,
    calls_per_hour: float,
    latency_scale: float,
    error_rate: float,
    seed: int,
    guardrail_alpha: float = 0.05,
    progress: bool = False,
) -> dict:
    settings = DecisionSettings(guardrail_alpha=guardrail_alpha)
    rng = np.random.default_rng(seed)
    started = time.perf_counter()
    outcomes = []
    for run in range(runs):
        outcome = run_experiment(
            rng,
            days=days,
            calls_per_hour=calls_per_hour,
            latency_scale=latency_scale,
            error_rate=error_rate,
            settings=settings,
        )
        outcomes.append(outcome)
        if progress:
            print(f"run {run + 1}/{runs}: {outcome}", file=sys.stderr, flush=True)
    rolled = [o for o in outcomes if o is not None]
    hours = [h for h, _ in rolled]
    by_metric: dict[str, int] = {}
    for _, metric in rolled:
        by_metric[metric] = by_metric.get(metric, 0) + 1
    return {
        "runs": runs,
        "days": days,
        "calls_per_hour_per_arm": calls_per_hour,
        "latency_scale": latency_scale,
        "error_rate": error_rate,
        "guardrail_alpha": guardrail_alpha,
        "rolled_back": len(rolled),
        "rollback_rate": len(rolled) / runs if runs else None,
        "rolled_back_by": by_metric,
        "median_hours_to_rollback": float(np.median(hours)) if hours else None,
        "max_hours_to_rollback": max(hours) if hours else None,
        "seconds": round(time.perf_counter() - started, 1),
    }


def binomial_ceiling(runs: int, rate: float, z: float = 3.0) -> float:
    """The most rollbacks an A/A batch may show at `rate`: mean + z standard deviations."""
    return runs * rate + z * math.sqrt(runs * rate * (1.0 - rate))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--regression-runs", type=int, default=50)
    parser.add_argument("--days", type=float, default=15.0)
    parser.add_argument("--calls-per-hour", type=float, default=1000.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    regression = simulate(
        runs=args.regression_runs,
        days=args.days,
        calls_per_hour=args.calls_per_hour,
        latency_scale=1.35,
        error_rate=ERROR_RATE,
        seed=args.seed + 1,
    )
    print(json.dumps({"latency_plus_35_percent": regression}), flush=True)
    aa = simulate(
        runs=args.runs,
        days=args.days,
        calls_per_hour=args.calls_per_hour,
        latency_scale=1.0,
        error_rate=ERROR_RATE,
        seed=args.seed,
        progress=True,
    )
    aa["binomial_ceiling"] = binomial_ceiling(aa["runs"], aa["guardrail_alpha"])
    aa["ok"] = aa["rolled_back"] <= aa["binomial_ceiling"]
    print(json.dumps({"aa": aa, "latency_plus_35_percent": regression}, indent=2))


if __name__ == "__main__":
    main()
