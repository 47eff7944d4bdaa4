"""End to end on PostgreSQL, Redis and real workers: simulated users with a known effect go
through /assign and /events, a worker computes the snapshot, and /results matches numbers
computed here from the raw simulation with numpy and scipy."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone
from scipy import stats as scipy_stats

from events.models import Exposure, Outcome
from tests.factories import MetricFactory, make_experiment
from tests.integration.conftest import wait_until

pytestmark = pytest.mark.integration


def test_end_to_end__known_effect__results_match_independent_computation(
    api, celery_worker
) -> None:
    # Given an experiment with a conversion and a revenue metric (winsorization off, as a
    # factory-made metric has it), analysed with a fixed test whose plan the traffic reaches
    MetricFactory(
        key="purchase", event="purchase", aggregation="conversion", cuped_lookback_days=0
    )
    MetricFactory(key="revenue", event="revenue", aggregation="sum", cuped_lookback_days=0)
    make_experiment(
        "checkout-model",
        metrics=[
            {"metric": "purchase", "role": "primary"},
            {"metric": "revenue", "role": "secondary"},
        ],
        analysis={"method": "fixed", "cuped": False},
        planned_sample_size=1500,
    )
    rng = np.random.default_rng(5)
    rate = {"control": 0.10, "treatment": 0.15}
    units = [f"user-{i}" for i in range(1500)]
    variant, converted, revenue, events = {}, {}, {}, []
    # When each simulated user is assigned (exposure logged by the worker) and acts
    for unit in units:
        got = api.post("/api/v1/assign", {"unit_id": unit}, format="json").json()
        variant[unit] = got["assignments"]["checkout-model"]["variant"]
        converted[unit] = rng.random() < rate[variant[unit]]
        revenue[unit] = float(rng.gamma(2.0, 15.0)) if converted[unit] else 0.0
        later = (timezone.now() + timedelta(minutes=2)).isoformat()
        if converted[unit]:
            events.append(
                {
                    "type": "outcome",
                    "unit_id": unit,
                    "name": "purchase",
                    "timestamp": later,
                    "event_id": f"p-{unit}",
                }
            )
            events.append(
                {
                    "type": "outcome",
                    "unit_id": unit,
                    "name": "revenue",
                    "value": revenue[unit],
                    "timestamp": later,
                    "event_id": f"r-{unit}",
                }
            )
    for start in range(0, len(events), 500):
        response = api.post(
            "/api/v1/events", {"events": events[start : start + 500]}, format="json"
        )
        assert response.status_code == 202
    assert wait_until(
        lambda: Exposure.objects.count() == len(units) and Outcome.objects.count() == len(events),
        timeout=60,
    )
    # And a worker computes a snapshot
    snapshot_id = api.post("/api/v1/experiments/checkout-model/analyze").json()["snapshot_id"]
    assert wait_until(
        lambda: api.get("/api/v1/experiments/checkout-model/results").status_code == 200,
        timeout=60,
    )
    results = api.get("/api/v1/experiments/checkout-model/results").json()
    # Then /results equals what numpy and scipy compute from the raw simulation
    assert results["snapshot_id"] == snapshot_id
    arms = {v: np.array([u for u in units if variant[u] == v]) for v in ("control", "treatment")}
    metrics = {m["metric"]: m for m in results["metrics"]}
    purchase = {v["variant"]: v for v in metrics["purchase"]["variants"]}
    for arm, members in arms.items():
        assert purchase[arm]["units"] == len(members)
        assert purchase[arm]["mean"] == pytest.approx(np.mean([converted[u] for u in members]))
    treated = np.array([revenue[u] for u in arms["treatment"]])
    control = np.array([revenue[u] for u in arms["control"]])
    welch = scipy_stats.ttest_ind(treated, control, equal_var=False)
    ci = welch.confidence_interval(1 - results["alpha"])
    comparison = metrics["revenue"]["comparisons"][0]
    assert comparison["absolute_effect"] == pytest.approx(
        treated.mean() - control.mean(), rel=1e-9
    )
    assert comparison["p_value"] == pytest.approx(welch.pvalue, rel=1e-6)
    assert comparison["absolute_ci"] == pytest.approx([ci.low, ci.high], rel=1e-6)
    observed = [len(arms["control"]), len(arms["treatment"])]
    assert results["srm"]["p_value"] == pytest.approx(scipy_stats.chisquare(observed).pvalue)
    # And the known effect is found
    assert metrics["purchase"]["comparisons"][0]["decision"] == "win"
