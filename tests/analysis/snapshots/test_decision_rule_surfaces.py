"""docs/api.md §7 on every surface: snapshot results JSON, export rows and dashboard cells.

A three-arm experiment receives traffic day by day through /events; after each day a snapshot
is computed by the real service. Every comparison of every snapshot is then checked where users
read it: the results JSON, the summary export and the results page's table.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from analysis.dashboard import results_context
from analysis.dashboard_selectors import experiment_results
from analysis.exports import export_table
from analysis.services import snapshot_compute_now
from experiments.models import Experiment
from tests.factories import MetricFactory, make_experiment

pytestmark = pytest.mark.django_db

START = datetime(2026, 10, 1, tzinfo=UTC)
ARMS = [
    {"key": "control", "weight": 0.5, "is_control": True},
    {"key": "better", "weight": 0.3},
    {"key": "slower", "weight": 0.2},
]


def _excludes_zero(interval) -> bool:
    return interval is not None and (interval[0] > 0 or interval[1] < 0)


def check_rule(comparison: dict, role: str, direction: str, alpha: float, g_alpha: float):
    """The §7 equivalences for one comparison as reported."""
    deciding = comparison["adjusted_ci"]
    significant = comparison["significant"]
    assert significant == _excludes_zero(deciding), comparison
    level = g_alpha if role == "guardrail" else alpha
    if comparison["adjusted_p_value"] is not None:
        assert significant == (comparison["adjusted_p_value"] <= level), comparison
    if comparison["relative_ci"] is not None:
        assert _excludes_zero(comparison["relative_ci"]) == _excludes_zero(deciding), comparison
    if comparison["decision"] == "not_ready":
        assert not significant
    if role == "guardrail":
        assert (comparison["decision"] == "loss") == bool(comparison["harm"]), comparison
        if comparison["harm"]:
            harmful_side = deciding[0] > 0 if direction == "decrease" else deciding[1] < 0
            assert harmful_side, comparison
        return
    if comparison["decision"] in ("win", "loss"):
        assert significant
        up = deciding[0] > 0
        assert (comparison["decision"] == "win") == (up == (direction == "increase"))
    else:
        assert not significant


def post_day(api, rng, day: int, units: int) -> None:
    events = []
    for i in range(units):
        unit = f"d{day}u{i}"
        variant = rng.choice([a["key"] for a in ARMS], p=[a["weight"] for a in ARMS])
        at = START + timedelta(days=day, minutes=int(rng.integers(0, 1400)))
        events.append(
            {
                "type": "exposure",
                "unit_id": unit,
                "experiment": "surfaces",
                "variant": variant,
                "timestamp": at.isoformat(),
                "event_id": f"x-{unit}",
            }
        )
        rate = {"control": 0.10, "better": 0.16, "slower": 0.10}[variant]
        if rng.random() < rate:
            events.append(
                {
                    "type": "outcome",
                    "unit_id": unit,
                    "name": "buy",
                    "value": float(rng.lognormal(3.0, 1.0)),
                    "timestamp": (at + timedelta(minutes=5)).isoformat(),
                    "event_id": f"b-{unit}",
                }
            )
        latency = rng.normal({"control": 100.0, "better": 100.0, "slower": 115.0}[variant], 20)
        events.append(
            {
                "type": "outcome",
                "unit_id": unit,
                "name": "latency",
                "value": float(latency),
                "timestamp": (at + timedelta(seconds=1)).isoformat(),
                "event_id": f"l-{unit}",
            }
        )
    for start in range(0, len(events), 1000):
        batch = {"events": events[start : start + 1000]}
        response = api.post("/api/v1/events", batch, format="json")
        assert response.status_code == 202 and not response.json()["rejected"]


def test_decision_rule__every_snapshot_json_export_and_dashboard_cell(api) -> None:
    # Given a three-arm experiment with a primary, a secondary and a guardrail metric
    MetricFactory(key="buy", event="buy", aggregation="conversion", cuped_lookback_days=0)
    MetricFactory(key="spend", event="buy", aggregation="sum", cuped_lookback_days=0)
    MetricFactory(
        key="latency",
        event="latency",
        aggregation="mean",
        direction="decrease",
        cuped_lookback_days=0,
    )
    make_experiment(
        "surfaces",
        variants=ARMS,
        metrics=[
            {"metric": "buy", "role": "primary"},
            {"metric": "spend", "role": "secondary"},
            {"metric": "latency", "role": "guardrail"},
        ],
        analysis={"method": "sequential", "correction": "holm", "cuped": False},
        planned_sample_size=6000,
    )
    experiment = Experiment.objects.get(key="surfaces")
    rng = np.random.default_rng(8)
    seen_decisions: set[str] = set()
    for day in range(6):
        # When a day of traffic arrives and a snapshot is computed
        post_day(api, rng, day, 60 if day == 0 else 700)
        snapshot = snapshot_compute_now(experiment=experiment)
        results = snapshot.results
        alpha, g_alpha = results["alpha"], experiment.guardrail_alpha
        # Then every comparison in the results obeys the rule
        for metric in results["metrics"]:
            for c in metric["comparisons"]:
                check_rule(c, metric["role"], metric["direction"], alpha, g_alpha)
                seen_decisions.add(c["decision"])
        # And every export row carries the same verdict and deciding interval
        table = export_table(experiment=experiment, level="summary")
        names = [c.name for c in table.columns]
        by_key = {
            (m["metric"], c["variant"]): c for m in results["metrics"] for c in m["comparisons"]
        }
        for row in table.rows:
            record = dict(zip(names, row, strict=True))
            c = by_key[(record["metric"], record["variant"])]
            assert record["decision"] == c["decision"]
            assert record["significant"] == c["significant"]
            assert [record["adjusted_ci_low"], record["adjusted_ci_high"]] == (
                c["adjusted_ci"] or [None, None]
            )
        # And every dashboard cell shows that verdict next to the deciding interval
        context = results_context(experiment_results(experiment=experiment), START)
        for table_view in context["tables"]:
            metric = next(m for m in results["metrics"] if m["metric"] == table_view["key"])
            for row in table_view["rows"]:
                if row["is_baseline"]:
                    continue
                c = next(x for x in metric["comparisons"] if x["variant"] == row["variant"])
                assert row["decision"] == c["decision"]
                assert bool(row["absolute_ci"]) == (c["adjusted_ci"] is not None)
    # And the walk saw verdicts of every kind, so the checks were not vacuous
    assert {"not_ready", "win", "loss"} <= seen_decisions
