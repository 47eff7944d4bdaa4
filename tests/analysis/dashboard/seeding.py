"""Seed a snapshot history directly: Snapshot rows with §8 results and their comparison rows.

Used by the dashboard tests, the browser test and `benchmarks/results.py`. Nothing is computed
through the pipeline: the numbers are chosen so tests know exactly what the page must show.
The latest snapshot's first primary metric is "Checkout conversion": control 10.00%,
treatment 11.00%, +1.00 pp [+0.40 pp, +1.60 pp], +10.0% [+4.0%, +16.0%], p 0.0012, adjusted
0.0024, a win.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from analysis.models import Snapshot, SnapshotComparison, SnapshotState
from analysis.results import SnapshotResults, results_summary
from experiments.models import Experiment

START = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
ROLES = ("primary", "primary", "secondary", "secondary", "secondary", "secondary", "secondary")


def metric_spec(index: int) -> dict[str, Any]:
    role = ROLES[index] if index < len(ROLES) else "guardrail"
    if index == 0:
        return {
            "metric": "checkout",
            "name": "Checkout conversion",
            "aggregation": "conversion",
            "role": role,
            "mean": 0.10,
            "relative": 0.10,
            "half": 0.06,
        }
    aggregation = "conversion" if index % 2 else "sum"
    mean = 0.2 + index / 100 if aggregation == "conversion" else 10.0 + index
    relative = -0.03 if role == "guardrail" and index == 9 else 0.01 * ((index % 5) - 2)
    return {
        "metric": f"metric-{index}",
        "name": f"Metric {index}",
        "aggregation": aggregation,
        "role": role,
        "mean": mean,
        "relative": relative,
        "half": 0.02,
    }


def _comparison(spec: dict[str, Any], variant: str, look: int, looks: int) -> dict[str, Any]:
    # Earlier looks: wider intervals and a wobbling estimate that settles on the final value.
    shrink = math.sqrt(looks / look)
    relative = spec["relative"] + 0.02 * math.sin(look) / shrink * (looks - look) / looks
    half = spec["half"] * shrink
    absolute, abs_half = relative * spec["mean"], half * spec["mean"]
    final = look == looks and spec["metric"] == "checkout"
    significant = relative - half > 0 or relative + half < 0
    decision = "inconclusive"
    if significant:
        decision = "win" if relative > 0 else "loss"
    return {
        "variant": variant,
        "baseline": "control",
        "absolute_effect": 0.01 if final else absolute,
        "absolute_ci": [0.004, 0.016] if final else [absolute - abs_half, absolute + abs_half],
        "relative_effect": relative,
        "relative_ci": [relative - half, relative + half],
        "p_value": 0.0012 if final else (0.001 if significant else 0.4),
        "adjusted_p_value": 0.0024 if final else (0.004 if significant else 0.8),
        "significant": significant,
        "decision": decision,
        "reason": None,
    }


def results_for(
    experiment: Experiment,
    snapshot_id: int,
    look: int,
    looks: int,
    metrics: int,
    treatments: list[str],
    srm_flagged: bool = False,
    days: int = 14,
    start: dt.datetime = START,
) -> dict[str, Any]:
    variants = ["control", *treatments]
    units_per_variant = 500 * look // looks * 10 + 1000
    per_variant = {
        v: units_per_variant + (3000 if srm_flagged and i == 0 else 0)
        for i, v in enumerate(variants)
    }
    metrics_json, alerts = [], []
    for index in range(metrics):
        spec = metric_spec(index)
        comparisons = [_comparison(spec, t, look, looks) for t in treatments]
        for c in comparisons:
            if spec["role"] == "guardrail" and c["decision"] == "loss":
                alerts.append({"metric": spec["metric"], "variant": c["variant"]})
        means = [spec["mean"]] + [spec["mean"] * (1 + c["relative_effect"]) for c in comparisons]
        if spec["metric"] == "checkout" and look == looks:
            means = [0.10] + [0.11] * len(treatments)
        metrics_json.append(
            {
                "metric": spec["metric"],
                "name": spec["name"],
                "aggregation": spec["aggregation"],
                "direction": "increase",
                "role": spec["role"],
                "cuped": spec["aggregation"] == "sum",
                "variants": [
                    {
                        "variant": v,
                        "units": per_variant[v],
                        "mean": m,
                        "variance": m * (1 - m) if spec["aggregation"] == "conversion" else 4.0,
                    }
                    for v, m in zip(variants, means, strict=True)
                ],
                "comparisons": comparisons,
                "notes": [],
            }
        )
    total = sum(per_variant.values())
    # Exposures cover the `days` days up to this snapshot's own day.
    last_day = (start + dt.timedelta(hours=look - 1)).date()
    by_day = [
        {
            "date": (last_day - dt.timedelta(days=days - 1 - d)).isoformat(),
            "variant": v,
            "units": per_variant[v] // days + (d % 3) * 5,
        }
        for d in range(days)
        for v in variants
    ]
    results = {
        "experiment": experiment.key,
        "snapshot_id": snapshot_id,
        "computed_at": None,
        "method": experiment.method,
        "alpha": experiment.alpha,
        "correction": experiment.correction,
        "srm": {
            "p_value": 1e-9 if srm_flagged else 0.62,
            "observed": per_variant,
            "expected_weights": {v: 1 / len(variants) for v in variants},
            "flagged": srm_flagged,
            "threshold": 0.001,
        },
        "diagnostics": {
            "units_by_variant": per_variant,
            "multiple_variant_units": 7,
            "mismatched_exposures": 3,
            "exposures_by_day": by_day,
        },
        "metrics": metrics_json,
        "guardrail_alerts": alerts,
        "guardrail_status": (
            "harm_detected"
            if alerts
            else "no_harm_detected"
            if any(m["role"] == "guardrail" for m in metrics_json)
            else "no_guardrails"
        ),
        "planned_sample_size": experiment.planned_sample_size,
        "total_units": total,
    }
    results["summary"] = results_summary(SnapshotResults.from_json(results))
    return results


def seed_history(
    experiment: Experiment,
    *,
    snapshots: int = 200,
    metrics: int = 10,
    treatments: list[str] | None = None,
    srm_flagged: bool = False,
    start: dt.datetime = START,
) -> Snapshot:
    """Write `snapshots` finished snapshots an hour apart from `start`; return the latest."""
    treatments = treatments or ["treatment"]
    rows = Snapshot.objects.bulk_create(
        Snapshot(
            experiment=experiment,
            state=SnapshotState.DONE,
            computed_at=start + dt.timedelta(hours=i),
        )
        for i in range(snapshots)
    )
    comparisons = []
    for look, snapshot in enumerate(rows, start=1):
        snapshot.results = results_for(
            experiment, snapshot.pk, look, snapshots, metrics, treatments, srm_flagged, start=start
        )
        snapshot.results["computed_at"] = snapshot.computed_at.isoformat()
        snapshot.srm_flagged = srm_flagged
        snapshot.guardrail_alert = bool(snapshot.results["guardrail_alerts"])
        for m in snapshot.results["metrics"]:
            units = {v["variant"]: v["units"] for v in m["variants"]}
            for c in m["comparisons"]:
                comparisons.append(
                    SnapshotComparison(
                        snapshot=snapshot,
                        metric=m["metric"],
                        role=m["role"],
                        variant=c["variant"],
                        baseline="control",
                        units=units[c["variant"]],
                        baseline_units=units["control"],
                        absolute_effect=c["absolute_effect"],
                        absolute_low=c["absolute_ci"][0],
                        absolute_high=c["absolute_ci"][1],
                        relative_effect=c["relative_effect"],
                        relative_low=c["relative_ci"][0],
                        relative_high=c["relative_ci"][1],
                        p_value=c["p_value"],
                        raw_p_value=c["p_value"],
                        adjusted_p_value=c["adjusted_p_value"],
                        significant=c["significant"],
                        decision=c["decision"],
                        looks=look,
                    )
                )
    Snapshot.objects.bulk_update(rows, ["results", "srm_flagged", "guardrail_alert"], 500)
    SnapshotComparison.objects.bulk_create(comparisons, batch_size=2000)
    return rows[-1]
