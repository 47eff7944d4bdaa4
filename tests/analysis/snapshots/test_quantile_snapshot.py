"""A quantile metric through a real snapshot and the results page (docs/api.md §6): each
variant's `mean` is numpy's quantile of its units' events, the absolute effect the difference
of those quantiles, and the dashboard shows it like any metric."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from django.urls import reverse

from analysis.services import snapshot_compute_now
from events.models import Exposure, Outcome
from tests.factories import MetricFactory, make_experiment

pytestmark = pytest.mark.django_db


def test_snapshot__quantile_primary__numpy_quantiles_and_dashboard(admin_client) -> None:
    # Given a p90 latency metric as the primary metric and seeded events, 1–20 per unit
    MetricFactory(
        key="latency_p90",
        name="Latency p90",
        event="latency",
        aggregation="quantile",
        quantile=0.9,
        direction="decrease",
        cuped_lookback_days=0,
    )
    experiment = make_experiment(
        "q", metrics=[{"metric": "latency_p90", "role": "primary"}], analysis={"cuped": False}
    )
    rng = np.random.default_rng(8)
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    values: dict[str, list[float]] = {"control": [], "treatment": []}
    exposures, outcomes = [], []
    for i in range(600):
        variant = "control" if i % 2 else "treatment"
        unit = f"u{i}"
        exposures.append(
            Exposure(experiment=experiment, unit_id=unit, variant=variant, first_exposed_at=start)
        )
        scale = 1.2 if variant == "treatment" else 1.0
        for j in range(int(rng.integers(1, 21))):
            value = float(scale * rng.lognormal(5.5, 0.5))
            values[variant].append(value)
            outcomes.append(
                Outcome(
                    event_id=f"{unit}-{j}",
                    unit_id=unit,
                    name="latency",
                    value=value,
                    timestamp=start + dt.timedelta(minutes=j + 1),
                )
            )
        # an event before exposure never counts
        outcomes.append(
            Outcome(
                event_id=f"{unit}-early",
                unit_id=unit,
                name="latency",
                value=1e6,
                timestamp=start - dt.timedelta(minutes=1),
            )
        )
    Exposure.objects.bulk_create(exposures)
    Outcome.objects.bulk_create(outcomes)
    # When a snapshot is computed
    snapshot = snapshot_compute_now(experiment=experiment)
    metric = snapshot.results["metrics"][0]
    means = {v["key"] if "key" in v else v["variant"]: v["mean"] for v in metric["variants"]}
    # Then each variant's mean is its p90 over events, and Δ their difference
    expected = {k: float(np.quantile(v, 0.9)) for k, v in values.items()}
    assert means == pytest.approx(expected, rel=1e-9)
    comparison = metric["comparisons"][0]
    assert comparison["absolute_effect"] == pytest.approx(
        expected["treatment"] - expected["control"], rel=1e-9
    )
    assert comparison["relative_effect"] == pytest.approx(
        expected["treatment"] / expected["control"] - 1, rel=1e-9
    )
    assert metric["aggregation"] == "quantile"
    # And the results page shows it in its metric table
    url = reverse("admin:experiments_experiment_results", args=[experiment.pk])
    page = admin_client.get(url).content.decode()
    assert "Latency p90" in page and 'id="vl-metric-latency_p90"' in page
