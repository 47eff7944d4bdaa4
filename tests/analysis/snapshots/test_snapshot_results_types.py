"""Typed snapshot results (analysis.results): no database, no Django models.

Three oracles: scipy/statsmodels on the raw data for a fixed-horizon comparison built from
its sufficient statistics; the dict-building code the snapshot service used before the types
existed (copied below as `legacy_results`), which must give the same JSON key for key and in
the same order; and stored JSON of older versions, which must still load.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from scipy import stats as scipy_stats
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from analysis.results import (
    ComparisonResult,
    Diagnostics,
    ExposureDayCount,
    LookInfo,
    SnapshotInputs,
    SnapshotResults,
    comparison_result,
    reason_text,
    results_summary,
    snapshot_look,
)
from analysis.stats.analyze import Comparison
from analysis.stats.decisions import DecisionSettings, DecisionState, LookResult, MetricInput
from analysis.stats.inputs import VariantStats
from tests.analysis.stats.helpers import variant_from_values

REL = 1e-9
AT = "2026-11-28T11:00:00+00:00"


# ----------------------------------------------------------------------------------- oracle
# What analysis/services.py built before the types (results_json + the update in _analyse +
# results_summary), verbatim but for names: the JSON the API has always sent.


def legacy_results(
    result: LookResult,
    *,
    names: dict[str, str],
    aggregations: dict[str, str],
    experiment: str,
    snapshot_id: int,
    diagnostics: dict[str, Any],
    planned_sample_size: int | None,
    total_units: int,
) -> dict[str, Any]:
    results: dict[str, Any] = {
        "method": result.method,
        "alpha": result.alpha,
        "correction": result.correction,
        "look": result.look.to_dict(),
        "warnings": [w.to_dict() for w in result.warnings],
        "srm": result.srm.to_dict(),
        "metrics": [
            {
                "metric": m.key,
                "name": names.get(m.key, m.key),
                "aggregation": aggregations.get(m.key, m.metric_type),
                "metric_type": m.metric_type,
                "direction": m.direction,
                "role": m.role,
                "cuped": m.cuped,
                "variants": [v.to_dict() for v in m.variants],
                "comparisons": [c.to_dict() for c in m.comparisons],
                "notes": list(m.notes),
            }
            for m in result.metrics
        ],
        "guardrail_status": result.guardrail_status,
        "guardrail_alerts": [
            {"metric": metric, "variant": variant} for metric, variant in result.harms
        ],
    }
    results.update(
        {
            "experiment": experiment,
            "snapshot_id": snapshot_id,
            "computed_at": None,
            "diagnostics": diagnostics,
            "planned_sample_size": planned_sample_size,
            "total_units": total_units,
        }
    )
    results["summary"] = legacy_summary(results)
    return results


def _legacy_percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:+.1f}%"


def legacy_summary(results: dict[str, Any]) -> str:
    parts: list[str] = []
    srm = results["srm"]
    if srm["flagged"]:
        since = (
            f" (first flagged {srm['first_flagged_at'][:16].replace('T', ' ')} UTC)"
            if srm.get("first_flagged_at")
            else ""
        )
        parts.append(
            f"Sample ratio mismatch{since}: units are not split as configured, so the "
            "results cannot be trusted until the cause is found."
        )
    primary = [m for m in results["metrics"] if m["role"] == "primary"]
    interval = {
        "sequential": "always-valid interval",
        "fixed": "interval",
        "group_sequential": "repeated interval",
    }[results["method"]]
    for metric in primary:
        for c in metric["comparisons"]:
            name = metric["name"]
            subject = f"{c['variant']} vs {c['baseline']} on {name}"
            deciding = c.get("adjusted_ci") or c.get("absolute_ci")
            if c["decision"] == "not_ready" or deciding is None:
                why = reason_text(c.get("reason")) or "not enough data yet"
                parts.append(f"{subject}: no verdict yet ({why}).")
                continue
            level = round((1 - (c.get("effective_alpha") or results["alpha"])) * 100, 2)
            level_text = f"{level:g}%"
            low, high = c["relative_ci"] or (None, None)
            if low is not None and high is not None:
                span = f"{_legacy_percent(low)} to {_legacy_percent(high)}"
            else:
                a_low, a_high = deciding
                span = f"{a_low:+.4g} to {a_high:+.4g} (absolute)"
            verdict = {
                "win": "significant win",
                "loss": "significant loss",
                "inconclusive": "not significant yet",
            }[c["decision"]]
            parts.append(f"{subject}: {level_text} {interval} {span}; {verdict}.")
    if not primary:
        parts.append("No primary metric is configured.")
    status = results.get("guardrail_status", "no_guardrails")
    if status == "harm_detected":
        alerts = results["guardrail_alerts"]
        names = {m["metric"]: m.get("name") or m["metric"] for m in results.get("metrics", [])}
        parts.append(
            "Guardrails: harm detected ("
            + ", ".join(
                f"{a['variant']} harms {names.get(a['metric'], a['metric'])}" for a in alerts
            )
            + ")."
        )
    else:
        parts.append(
            {
                "no_guardrails": "No guardrails.",
                "not_enough_data": "Guardrails: not enough data yet.",
                "no_harm_detected": "Guardrails: no harm detected.",
            }[status]
        )
    look = results.get("look") or {}
    if results["method"] == "group_sequential" and look.get("final"):
        parts.append("The final look has been taken: these results no longer change.")
    return " ".join(parts)


# ---------------------------------------------------------------------------------- helpers


def moments_arm(key: str, n: int, mean: float, sd: float) -> VariantStats:
    """Sufficient statistics of n values with exactly this mean and sample sd."""
    total = n * mean
    return VariantStats(key, n, total, (n - 1) * sd**2 + total**2 / n)


def conversion_arm(key: str, n: int, conversions: int) -> VariantStats:
    return VariantStats(key, n, float(conversions), float(conversions))


def diagnostics_for(units: dict[str, int]) -> Diagnostics:
    return Diagnostics(
        units_by_variant=units,
        multiple_variant_units=3,
        mismatched_exposures=1,
        exposures_by_day=tuple(
            ExposureDayCount(date=f"2026-11-2{day}", variant=key, units=count // 2)
            for day in (6, 7)
            for key, count in units.items()
        ),
    )


def inputs_for(
    settings: DecisionSettings,
    metrics: Sequence[MetricInput],
    units: dict[str, int],
    *,
    names: dict[str, str] | None = None,
    aggregations: dict[str, str] | None = None,
) -> SnapshotInputs:
    return SnapshotInputs(
        experiment="search-ranker-v2",
        snapshot_id=17,
        settings=settings,
        variants=tuple(units),
        metrics=tuple(metrics),
        diagnostics=diagnostics_for(units),
        srm_observed=units,
        srm_weights=tuple(1 / len(units) for _ in units),
        names=names or {},
        aggregations=aggregations or {},
        at=AT,
    )


def _three_arm_sequential() -> SnapshotInputs:
    arms = [
        moments_arm("control", 4000, 10.0, 3.0),
        moments_arm("fast", 4000, 10.4, 3.0),
        moments_arm("cheap", 4000, 9.9, 3.0),
    ]
    latency = [
        moments_arm("control", 4000, 200.0, 20.0),
        moments_arm("fast", 4000, 199.0, 20.0),
        moments_arm("cheap", 4000, 230.0, 20.0),
    ]
    conversions = [
        conversion_arm(k, 4000, c) for k, c in (("control", 400), ("fast", 460), ("cheap", 390))
    ]
    return inputs_for(
        DecisionSettings(method="sequential", planned_sample_size=20_000),
        [
            MetricInput("revenue", "mean", tuple(arms)),
            MetricInput("purchases", "proportion", tuple(conversions), role="secondary"),
            MetricInput("latency", "mean", tuple(latency), role="guardrail", direction="decrease"),
        ],
        {"control": 4000, "fast": 4000, "cheap": 4000},
        names={"revenue": "Revenue per user", "purchases": "Purchases", "latency": "p50 latency"},
        aggregations={"revenue": "sum", "purchases": "conversion", "latency": "mean"},
    )


def _fixed_before_plan() -> SnapshotInputs:
    arms = (moments_arm("control", 300, 5.0, 1.0), moments_arm("treatment", 300, 5.2, 1.0))
    return inputs_for(
        DecisionSettings(method="fixed", planned_sample_size=10_000),
        [MetricInput("basket", "mean", arms)],
        {"control": 300, "treatment": 300},
    )


def _group_sequential_final() -> SnapshotInputs:
    arms = (conversion_arm("control", 5000, 500), conversion_arm("treatment", 5000, 640))
    return inputs_for(
        DecisionSettings(method="group_sequential", planned_sample_size=10_000, planned_looks=4),
        [MetricInput("clicks", "proportion", arms)],
        {"control": 5000, "treatment": 5000},
        names={"clicks": "Clicked a result"},
    )


def _srm_flagged_ratio() -> SnapshotInputs:
    rng = np.random.default_rng(7)
    control = variant_from_values(
        "control", rng.poisson(3.0, 6000).astype(float), denominator=rng.poisson(2.0, 6000) + 1.0
    )
    treatment = variant_from_values(
        "treatment", rng.poisson(3.1, 4000).astype(float), denominator=rng.poisson(2.0, 4000) + 1.0
    )
    return inputs_for(
        DecisionSettings(method="sequential"),
        [MetricInput("per_session", "ratio", (control, treatment), cuped=False)],
        {"control": 6000, "treatment": 4000},
        aggregations={"per_session": "ratio"},
    )


SCENARIOS = {
    "three arms, sequential, guardrail harm": _three_arm_sequential,
    "fixed before the plan": _fixed_before_plan,
    "group sequential, final look": _group_sequential_final,
    "ratio metric, SRM flagged": _srm_flagged_ratio,
}


# ------------------------------------------------------------------------------------ tests


def test_snapshot_look__fixed_welch__matches_scipy_and_statsmodels_on_raw_data() -> None:
    # Given two arms of skewed raw data, reduced to the sums the SQL produces
    rng = np.random.default_rng(11)
    control = rng.gamma(2.0, 3.0, size=400)
    treatment = rng.gamma(2.2, 4.0, size=523)
    units = {"c": 400, "t": 523}
    inputs = inputs_for(
        DecisionSettings(method="fixed", alpha=0.1, planned_sample_size=900),
        [
            MetricInput(
                "basket",
                "mean",
                (variant_from_values("c", control), variant_from_values("t", treatment)),
                cuped=False,
            )
        ],
        units,
        names={"basket": "Basket value"},
        aggregations={"basket": "sum"},
    )
    # When the snapshot's look is decided and its results built (no database)
    built = snapshot_look(inputs, None)
    results = built.results
    (metric,) = results.metrics
    (comparison,) = metric.comparisons
    # Then scipy's Welch t test on the raw values gives the p-value and statistic
    oracle = scipy_stats.ttest_ind(treatment, control, equal_var=False)
    assert comparison.p_value == pytest.approx(oracle.pvalue, rel=REL)
    assert comparison.statistic == pytest.approx(oracle.statistic, rel=REL)
    # And statsmodels' unequal-variance interval at α = 0.1 is the reported and deciding one
    low, high = CompareMeans(DescrStatsW(treatment), DescrStatsW(control)).tconfint_diff(
        alpha=0.1, usevar="unequal"
    )
    assert comparison.absolute_effect == pytest.approx(treatment.mean() - control.mean(), rel=REL)
    assert comparison.absolute_ci == pytest.approx((low, high), rel=REL)
    assert comparison.deciding_ci == pytest.approx((low, high), rel=REL)
    # And the interval lies above 0 with a metric that should increase: a significant win
    assert low > 0
    assert (comparison.significant, comparison.decision) == (True, "win")
    # And each arm is its numpy mean and unbiased variance
    assert [v.units for v in metric.variants] == [400, 523]
    assert metric.variants[0].mean == pytest.approx(control.mean(), rel=REL)
    assert metric.variants[1].variance == pytest.approx(treatment.var(ddof=1), rel=REL)
    # And the SRM p-value is Pearson's χ² of the units against an even split
    chi2 = scipy_stats.chisquare([400, 523], f_exp=[461.5, 461.5])
    assert results.srm.p_value == pytest.approx(chi2.pvalue, rel=1e-9)
    # And the look's totals, names and summary read from these numbers
    assert (results.total_units, results.planned_sample_size) == (923, 900)
    assert (metric.name, metric.aggregation, metric.metric_type) == ("Basket value", "sum", "mean")
    r_low, r_high = comparison.relative_ci or (None, None)
    assert r_low is not None and r_high is not None
    assert results.summary == (
        f"t vs c on Basket value: 90% interval {r_low * 100:+.1f}% to {r_high * 100:+.1f}%; "
        "significant win. No guardrails."
    )
    # And the state for the next look says the fixed test has been analysed
    assert built.state.fixed_analysed is True


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_snapshot_results_to_json__same_json_as_before_the_types(scenario: str) -> None:
    # Given a look's inputs
    inputs = SCENARIOS[scenario]()
    # When the pure builder decides it
    built = snapshot_look(inputs, DecisionState())
    # Then its JSON is what the dict-building code made of the same decided look, key for
    # key and in the same order (the bytes of json.dumps compare both)
    legacy = legacy_results(
        built.look,
        names=dict(inputs.names),
        aggregations=dict(inputs.aggregations),
        experiment=inputs.experiment,
        snapshot_id=17,
        diagnostics={
            "units_by_variant": dict(inputs.diagnostics.units_by_variant),
            "multiple_variant_units": 3,
            "mismatched_exposures": 1,
            "exposures_by_day": [
                {"date": f"2026-11-2{day}", "variant": key, "units": count // 2}
                for day in (6, 7)
                for key, count in inputs.diagnostics.units_by_variant.items()
            ],
        },
        planned_sample_size=inputs.settings.planned_sample_size,
        total_units=sum(inputs.srm_observed.values()),
    )
    assert json.dumps(built.results.to_json()) == json.dumps(legacy)


def test_snapshot_results__scenarios_cover_the_optional_keys() -> None:
    # The equality above only proves something for keys the scenarios produce: check they do.
    produced = {name: snapshot_look(make(), None).results for name, make in SCENARIOS.items()}
    three_arms = produced["three arms, sequential, guardrail harm"]
    assert three_arms.guardrail_status == "harm_detected"
    assert [(a.metric, a.variant) for a in three_arms.guardrail_alerts] == [("latency", "cheap")]
    assert any(c.harm for m in three_arms.metrics for c in m.comparisons)
    # A correction over the family: the deciding interval is not the reported one.
    revenue = three_arms.metrics[0].comparisons[0]
    assert revenue.adjusted_ci != revenue.absolute_ci
    assert "Guardrails: harm detected (cheap harms p50 latency)." in three_arms.summary
    fixed = produced["fixed before the plan"].metrics[0].comparisons[0]
    assert (fixed.decision, fixed.reason) == ("not_ready", "plan_not_reached")
    final = produced["group sequential, final look"]
    assert final.look.final and final.look.z_boundary is not None
    assert final.metrics[0].comparisons[0].z_boundary is not None
    assert final.summary.endswith("these results no longer change.")
    srm = produced["ratio metric, SRM flagged"].srm
    assert srm.flagged and srm.first_flagged_at == AT


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_snapshot_results__json_round_trip__same_dataclasses(scenario: str) -> None:
    # Given built results, stored as JSON text (as the JSON column does)
    results = snapshot_look(SCENARIOS[scenario](), None).results
    stored = json.loads(json.dumps(results.to_json(), allow_nan=False))
    # When read back
    loaded = SnapshotResults.from_json(stored)
    # Then they are the same values, and write the same JSON again
    assert loaded == results
    assert loaded.to_json() == stored


def _oldest_stored_results() -> dict[str, Any]:
    """Results as the first snapshot version stored them: no look, warnings, correction,
    guardrail keys, plan or totals; comparisons with only the first §8 keys."""
    return {
        "experiment": "checkout",
        "snapshot_id": 3,
        "computed_at": "2024-03-01T10:00:00+00:00",
        "method": "sequential",
        "alpha": 0.05,
        "srm": {
            "p_value": 0.62,
            "observed": {"control": 1000, "treatment": 1010},
            "expected_weights": {"control": 0.5, "treatment": 0.5},
            "flagged": False,
        },
        "diagnostics": {
            "units_by_variant": {"control": 1000, "treatment": 1010},
            "multiple_variant_units": 7,
            "mismatched_exposures": 3,
            "exposures_by_day": [{"date": "2024-03-01", "variant": "control", "units": 71}],
        },
        "metrics": [
            {
                "metric": "checkout",
                "name": "Checkout conversion",
                "aggregation": "conversion",
                "role": "primary",
                "cuped": False,
                "variants": [
                    {"variant": "control", "units": 1000, "mean": 0.1, "variance": 0.09},
                    {"variant": "treatment", "units": 1010, "mean": 0.11, "variance": 0.0979},
                ],
                "comparisons": [
                    {
                        "variant": "treatment",
                        "baseline": "control",
                        "absolute_effect": 0.01,
                        "absolute_ci": [0.004, 0.016],
                        "relative_effect": 0.1,
                        "relative_ci": [0.04, 0.16],
                        "p_value": 0.0012,
                        "adjusted_p_value": 0.0024,
                        "significant": True,
                        "decision": "win",
                        "reason": None,
                    }
                ],
            }
        ],
        "summary": "stored summary",
    }


def test_snapshot_results_from_json__oldest_stored_shape__newer_keys_take_defaults() -> None:
    stored = _oldest_stored_results()
    # When a snapshot stored before the newer keys existed is read
    results = SnapshotResults.from_json(stored)
    # Then the newer keys take the values the readers assumed when they were missing
    assert results.look == LookInfo(number=0, information_fraction=None, z_boundary=None)
    assert (results.warnings, results.guardrail_alerts) == ((), ())
    assert (results.guardrail_status, results.correction) == (None, "")
    assert (results.planned_sample_size, results.total_units) == (None, None)
    assert results.analysed_units == 2010  # the SRM's observed units stand in for the total
    assert results.srm.sequential_p_value is None and results.srm.threshold == 0.001
    (metric,) = results.metrics
    assert (metric.metric_type, metric.direction, metric.notes) == ("", "increase", ())
    (c,) = metric.comparisons
    assert c == ComparisonResult(
        variant="treatment",
        baseline="control",
        absolute_effect=0.01,
        absolute_ci=(0.004, 0.016),
        relative_effect=0.1,
        relative_ci=(0.04, 0.16),
        p_value=0.0012,
        adjusted_p_value=0.0024,
        significant=True,
        decision="win",
    )
    # An old comparison's only interval is its deciding one.
    assert c.deciding_ci == (0.004, 0.016)
    # And what is stored is kept as is
    assert (results.summary, results.computed_at) == ("stored summary", stored["computed_at"])
    assert results.diagnostics.exposures_by_day == (ExposureDayCount("2024-03-01", "control", 71),)
    # And the summary text reads it as the dict-reading code did
    assert results_summary(results) == legacy_summary(stored)


def test_snapshot_results_from_json__stored_shape_is_kept_on_a_round_trip() -> None:
    # A null bound and an integer where a float is usual stay as stored.
    stored = _oldest_stored_results()
    comparison = stored["metrics"][0]["comparisons"][0]
    comparison["relative_ci"] = [None, 0.16]
    comparison["absolute_effect"] = 0
    results = SnapshotResults.from_json(stored)
    c = results.metrics[0].comparisons[0]
    assert c.relative_ci == (None, 0.16)
    dumped = c.to_json()
    assert dumped["relative_ci"] == [None, 0.16]
    assert json.dumps(dumped["absolute_effect"]) == "0"


def test_comparison_result__non_finite_numbers__stored_as_null() -> None:
    # Given an engine comparison with numbers JSON cannot hold
    engine = Comparison(
        variant="t",
        baseline="c",
        absolute_effect=math.inf,
        absolute_ci=(-math.inf, 1.0),
        relative_effect=math.nan,
        relative_ci=None,
        p_value=0.5,
        adjusted_p_value=0.5,
        significant=False,
        decision="inconclusive",
    )
    # When typed
    typed = comparison_result(engine)
    # Then they are null, as the engine's own JSON had them, and the JSON is strict
    assert typed.to_json() == engine.to_dict()
    json.dumps(typed.to_json(), allow_nan=False)
