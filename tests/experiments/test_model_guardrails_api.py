"""Quantile metrics and `model_guardrails` over the API (docs/api.md §10, model guardrails)."""

from __future__ import annotations

import pytest

from audit.models import AuditEntry
from experiments.models import Metric
from tests.factories import MetricFactory, experiment_spec

pytestmark = pytest.mark.django_db


def test_quantile_metric__created__contract_shape(api) -> None:
    body = {
        "key": "latency_p95",
        "event": "model_latency_ms",
        "aggregation": "quantile",
        "quantile": 0.95,
        "direction": "decrease",
    }
    response = api.post("/api/v1/metrics", body, format="json")
    assert response.status_code == 201, response.json()
    data = response.json()
    assert (data["aggregation"], data["quantile"]) == ("quantile", 0.95)
    # A quantile is not winsorized (no default cap as for sum and mean)
    assert data["winsorize_percentile"] is None


@pytest.mark.parametrize(
    "changes",
    [
        {"quantile": None},
        {"quantile": 0.0},
        {"quantile": 1.0},
        {"quantile": 1.5},
        {"quantile": "p95"},
        {"aggregation": "sum", "quantile": 0.5},
        {"winsorize_percentile": 99},
    ],
)
def test_quantile_metric__bad_quantile__400_naming_the_field(api, changes) -> None:
    body = {"key": "q", "event": "e", "aggregation": "quantile", "quantile": 0.5, **changes}
    response = api.post("/api/v1/metrics", body, format="json")
    assert response.status_code == 400, response.content
    fields = response.json()["error"]["fields"]
    assert set(fields) & {"quantile", "winsorize_percentile"}


def test_model_guardrails__create__three_guardrails_created_and_linked(api) -> None:
    MetricFactory(key="ctr", event="click")
    body = experiment_spec(
        "model", model_guardrails=True, metrics=[{"metric": "ctr", "role": "primary"}]
    )
    response = api.post("/api/v1/experiments", body, format="json")
    assert response.status_code == 201, response.content
    data = response.json()
    assert data["model_guardrails"] is True
    links = {m["metric"]: m["role"] for m in data["metrics"]}
    assert links == {
        "ctr": "primary",
        "model_latency_p95": "guardrail",
        "model_error_rate": "guardrail",
        "model_cost_per_unit": "guardrail",
    }
    p95 = Metric.objects.get(key="model_latency_p95")
    assert (p95.event, p95.aggregation, p95.quantile, p95.direction) == (
        "model_latency_ms",
        "quantile",
        0.95,
        "decrease",
    )
    errors = Metric.objects.get(key="model_error_rate")
    assert (errors.event, errors.aggregation, errors.denominator_event) == (
        "model_error",
        "ratio",
        "model_call",
    )
    cost = Metric.objects.get(key="model_cost_per_unit")
    assert (cost.event, cost.aggregation, cost.direction) == ("model_cost_usd", "sum", "decrease")
    # Each created metric and the experiment (with its links) are in the audit log
    created = set(
        AuditEntry.objects.filter(action="create", object_type="metric").values_list(
            "object_key", flat=True
        )
    )
    assert created >= {"model_latency_p95", "model_error_rate", "model_cost_per_unit"}
    entry = AuditEntry.objects.get(action="create", object_type="experiment", object_key="model")
    assert "model_guardrails" in entry.changes


def test_model_guardrails__second_experiment__reuses_the_metrics(api) -> None:
    for key in ("a", "b"):
        body = experiment_spec(key, model_guardrails=True)
        assert api.post("/api/v1/experiments", body, format="json").status_code == 201
    assert Metric.objects.filter(key__startswith="model_").count() == 3


def test_model_guardrails__explicit_role_kept(api) -> None:
    api.post("/api/v1/experiments", experiment_spec("a", model_guardrails=True), format="json")
    body = experiment_spec(
        "b",
        model_guardrails=True,
        metrics=[{"metric": "model_latency_p95", "role": "secondary"}],
    )
    response = api.post("/api/v1/experiments", body, format="json")
    links = {m["metric"]: m["role"] for m in response.json()["metrics"]}
    assert links["model_latency_p95"] == "secondary"
    assert links["model_error_rate"] == "guardrail"


def test_model_guardrails__changed_while_running__409_frozen(api) -> None:
    api.post("/api/v1/experiments", experiment_spec("a", model_guardrails=True), format="json")
    api.post("/api/v1/experiments/a/start")
    response = api.patch("/api/v1/experiments/a", {"model_guardrails": False}, format="json")
    assert response.status_code == 409
    assert "model_guardrails" in response.json()["error"]["fields"]
    # Resending the metrics without the model guardrails is not a change
    same = api.patch("/api/v1/experiments/a", {"metrics": []}, format="json")
    assert same.status_code == 200, same.content


def test_model_guardrails__not_boolean__400(api) -> None:
    body = experiment_spec("a", model_guardrails="sometimes")
    response = api.post("/api/v1/experiments", body, format="json")
    assert response.status_code == 400
    assert "model_guardrails" in response.json()["error"]["fields"]
