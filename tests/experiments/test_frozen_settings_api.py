"""Settings freeze once an experiment starts (docs/api.md §7), plans and default capping."""

from __future__ import annotations

from typing import Any

import pytest

from experiments.models import Experiment, Metric, Status
from experiments.services import DEFAULT_WINSORIZE_PERCENTILE, experiment_pause
from tests.factories import MetricFactory, make_experiment

pytestmark = pytest.mark.django_db

ANALYSIS = {
    "alpha": 0.05,
    "method": "sequential",
    "sequential_tuning": 6000,
    "planned_looks": 5,
    "cuped": True,
    "correction": "holm",
    "min_units_per_variant": 100,
    "guardrail_alpha": 0.05,
}
LINKS = [
    {"metric": "ctr", "role": "primary"},
    {"metric": "revenue", "role": "secondary"},
    {"metric": "latency", "role": "guardrail", "harm_margin": 0.05},
]


def started(key: str, status: str) -> Experiment:
    """An experiment with every frozen setting given, moved to ``status``."""
    MetricFactory(key="ctr")
    MetricFactory(key="revenue", aggregation="sum", winsorize_percentile=99.0)
    MetricFactory(key="latency", aggregation="mean", direction="decrease")
    MetricFactory(key="spare")
    experiment = make_experiment(
        key,
        start=status != Status.DRAFT,
        analysis=ANALYSIS,
        planned_sample_size=20_000,
        metrics=LINKS,
    )
    if status == Status.PAUSED:
        experiment = experiment_pause(experiment=experiment)
    assert experiment.status == status
    return experiment


CHANGES = [
    pytest.param({"analysis": {"alpha": 0.01}}, "analysis.alpha", id="alpha"),
    pytest.param({"analysis": {"method": "fixed"}}, "analysis.method", id="method"),
    pytest.param(
        {"analysis": {"sequential_tuning": 9000}},
        "analysis.sequential_tuning",
        id="sequential_tuning",
    ),
    pytest.param({"analysis": {"planned_looks": 3}}, "analysis.planned_looks", id="looks"),
    pytest.param({"analysis": {"cuped": False}}, "analysis.cuped", id="cuped"),
    pytest.param({"analysis": {"correction": "bh"}}, "analysis.correction", id="correction"),
    pytest.param(
        {"analysis": {"min_units_per_variant": 500}},
        "analysis.min_units_per_variant",
        id="min_units",
    ),
    pytest.param(
        {"analysis": {"guardrail_alpha": 0.01}}, "analysis.guardrail_alpha", id="guardrail_alpha"
    ),
    pytest.param({"planned_sample_size": 30_000}, "planned_sample_size", id="plan"),
    pytest.param({"planned_sample_size": None}, "planned_sample_size", id="plan-removed"),
    pytest.param(
        {"metrics": [{**LINKS[0], "role": "secondary"}, LINKS[1], LINKS[2]]},
        "metrics",
        id="role-changed",
    ),
    pytest.param({"metrics": LINKS[:2]}, "metrics", id="metric-removed"),
    pytest.param(
        {"metrics": [*LINKS, {"metric": "spare", "role": "secondary"}]},
        "metrics",
        id="metric-added",
    ),
    pytest.param(
        {"metrics": [LINKS[0], LINKS[1], {**LINKS[2], "harm_margin": 0.2}]},
        "metrics",
        id="harm-margin",
    ),
]


@pytest.mark.parametrize("status", [Status.RUNNING, Status.PAUSED])
@pytest.mark.parametrize(("change", "field"), CHANGES)
def test_experiment_patch__frozen_setting_changed_after_start__409_frozen_names_field(
    api, status: str, change: dict[str, Any], field: str
) -> None:
    # Given a started experiment
    started("exp", status)
    before = api.get("/api/v1/experiments/exp").json()
    # When a frozen setting is changed
    response = api.patch("/api/v1/experiments/exp", change, format="json")
    # Then 409 frozen naming the field, and nothing changed
    assert response.status_code == 409, response.json()
    error = response.json()["error"]
    assert error["code"] == "frozen"
    assert set(error["fields"]) == {field}
    assert isinstance(error["fields"][field], str) and error["fields"][field]
    assert api.get("/api/v1/experiments/exp").json() == before


@pytest.mark.parametrize("status", [Status.RUNNING, Status.PAUSED])
def test_experiment_patch__frozen_and_free_fields_together__409_and_free_field_not_saved(
    api, status: str
) -> None:
    # Given a started experiment / When a frozen and a free field change together
    started("exp", status)
    response = api.patch(
        "/api/v1/experiments/exp",
        {"name": "Renamed", "analysis": {"alpha": 0.1, "correction": "none"}},
        format="json",
    )
    # Then every frozen field is named and the free change is not applied either
    assert response.status_code == 409
    assert set(response.json()["error"]["fields"]) == {"analysis.alpha", "analysis.correction"}
    assert Experiment.objects.get(key="exp").name == "Experiment exp"


@pytest.mark.parametrize("status", [Status.RUNNING, Status.PAUSED])
def test_experiment_patch__unchanged_values_resent__200(api, status: str) -> None:
    # Given a started experiment
    started("exp", status)
    current = api.get("/api/v1/experiments/exp").json()
    # When its whole analysis block, plan and metric roles are sent back as they are
    # (metrics in another order), with a free change
    body = {
        "analysis": current["analysis"],
        "planned_sample_size": current["planned_sample_size"],
        "metrics": list(reversed(current["metrics"])),
        "coverage": 0.5,
    }
    response = api.patch("/api/v1/experiments/exp", body, format="json")
    # Then it is accepted: resending an unchanged value is not a change
    assert response.status_code == 200, response.json()
    assert response.json()["analysis"] == current["analysis"]
    assert response.json()["coverage"] == 0.5


def test_experiment_patch__defaults_resent_as_read__200(api) -> None:
    # Given a running experiment on default settings (null tuning, looks and plan)
    make_experiment("plain")
    current = api.get("/api/v1/experiments/plain").json()
    assert current["analysis"]["sequential_tuning"] is None
    # When the analysis block and plan are sent back exactly as read
    body = {"analysis": current["analysis"], "planned_sample_size": current["planned_sample_size"]}
    response = api.patch("/api/v1/experiments/plain", body, format="json")
    # Then nothing counts as a change
    assert response.status_code == 200, response.json()
    assert response.json()["analysis"] == current["analysis"]


@pytest.mark.parametrize(("change", "field"), CHANGES)
def test_experiment_patch__draft__every_setting_can_change(
    api, change: dict[str, Any], field: str
) -> None:
    # Given a draft / When any setting changes / Then it is saved
    started("exp", Status.DRAFT)
    response = api.patch("/api/v1/experiments/exp", change, format="json")
    assert response.status_code == 200, response.json()
    data = response.json()
    if field.startswith("analysis."):
        name = field.split(".", 1)[1]
        assert data["analysis"][name] == change["analysis"][name]
    elif field == "planned_sample_size":
        assert data["planned_sample_size"] == change["planned_sample_size"]
    else:
        expected = sorted(change["metrics"], key=lambda m: m["metric"])
        assert sorted(data["metrics"], key=lambda m: m["metric"]) == expected


def test_experiment_patch__draft_all_at_once__saved_then_frozen_after_start(api) -> None:
    # Given a draft whose every frozen setting changes at once
    started("exp", Status.DRAFT)
    analysis = {
        "alpha": 0.01,
        "method": "group_sequential",
        "sequential_tuning": 12_000,
        "planned_looks": 4,
        "cuped": False,
        "correction": "bh",
        "min_units_per_variant": 250,
        "guardrail_alpha": 0.02,
    }
    body = {"analysis": analysis, "planned_sample_size": 40_000, "metrics": LINKS[:1]}
    # When patched, then started
    response = api.patch("/api/v1/experiments/exp", body, format="json")
    assert response.status_code == 200, response.json()
    assert {k: response.json()["analysis"][k] for k in analysis} == analysis
    assert api.post("/api/v1/experiments/exp/start").status_code == 200
    # Then the same values now pass unchanged, and a new one is refused
    assert api.patch("/api/v1/experiments/exp", body, format="json").status_code == 200
    refused = api.patch(
        "/api/v1/experiments/exp", {"analysis": {"planned_looks": 5}}, format="json"
    )
    assert refused.status_code == 409


def test_experiment_patch__stopped__refused(api) -> None:
    started("exp", Status.RUNNING)
    api.post("/api/v1/experiments/exp/stop")
    response = api.patch("/api/v1/experiments/exp", {"analysis": {"alpha": 0.01}}, format="json")
    assert response.status_code == 409


# ---------------------------------------------------------------------------- metric definitions

METRIC_CHANGES = [
    pytest.param("revenue", {"event": "purchase_v2"}, "event", id="event"),
    pytest.param("revenue", {"aggregation": "count"}, "aggregation", id="aggregation"),
    pytest.param("revenue", {"direction": "decrease"}, "direction", id="direction"),
    pytest.param(
        "revenue", {"winsorize_percentile": 95.0}, "winsorize_percentile", id="winsorize"
    ),
    pytest.param(
        "revenue", {"winsorize_percentile": None}, "winsorize_percentile", id="winsorize-off"
    ),
    pytest.param(
        "revenue", {"conversion_window_hours": 24}, "conversion_window_hours", id="window"
    ),
    pytest.param("revenue", {"cuped_lookback_days": 0}, "cuped_lookback_days", id="lookback"),
    pytest.param("ctr", {"event": "click_v2"}, "event", id="primary-event"),
    pytest.param("latency", {"direction": "increase"}, "direction", id="guardrail-direction"),
]


@pytest.mark.parametrize("status", [Status.RUNNING, Status.PAUSED])
@pytest.mark.parametrize(("key", "change", "field"), METRIC_CHANGES)
def test_metric_patch__definition_used_by_started_experiment__409_frozen(
    api, status: str, key: str, change: dict[str, Any], field: str
) -> None:
    # Given a metric used by a running or paused experiment
    started("exp", status)
    before = api.get(f"/api/v1/metrics/{key}").json()
    # When its definition changes
    response = api.patch(f"/api/v1/metrics/{key}", change, format="json")
    # Then 409 frozen naming the field, and the metric is unchanged
    assert response.status_code == 409, response.json()
    error = response.json()["error"]
    assert error["code"] == "frozen"
    assert set(error["fields"]) == {field}
    assert api.get(f"/api/v1/metrics/{key}").json() == before


def test_metric_patch__ratio_denominator_used_by_started_experiment__409_frozen(api) -> None:
    # Given a ratio metric used by a running experiment
    MetricFactory(key="aov", aggregation="ratio", event="revenue", denominator_event="order")
    make_experiment("exp", metrics=[{"metric": "aov", "role": "primary"}])
    # When its denominator changes / Then 409 frozen naming it
    response = api.patch("/api/v1/metrics/aov", {"denominator_event": "visit"}, format="json")
    assert response.status_code == 409, response.json()
    assert response.json()["error"]["code"] == "frozen"
    assert set(response.json()["error"]["fields"]) == {"denominator_event"}
    assert Metric.objects.get(key="aov").denominator_event == "order"


@pytest.mark.parametrize("status", [Status.RUNNING, Status.PAUSED])
def test_metric_patch__used_metric_unchanged_values_or_name__200(api, status: str) -> None:
    # Given a used metric
    started("exp", status)
    current = api.get("/api/v1/metrics/revenue").json()
    # When its definition is resent unchanged with a new name
    body = {**current, "name": "Revenue per user"}
    response = api.patch("/api/v1/metrics/revenue", body, format="json")
    # Then it is accepted
    assert response.status_code == 200, response.json()
    assert response.json()["name"] == "Revenue per user"
    assert Metric.objects.get(key="revenue").name == "Revenue per user"


@pytest.mark.parametrize(("key", "change", "field"), METRIC_CHANGES)
def test_metric_patch__metric_unused_by_started_experiments__200(
    api, key: str, change: dict[str, Any], field: str
) -> None:
    # Given the same metrics, used only by a draft and a stopped experiment
    started("draft", Status.DRAFT)
    make_experiment("old", metrics=LINKS, analysis=ANALYSIS)
    api.post("/api/v1/experiments/old/stop")
    # When a definition changes
    response = api.patch(f"/api/v1/metrics/{key}", change, format="json")
    # Then it is saved
    assert response.status_code == 200, response.json()
    assert response.json()[field] == change[field]


def test_metric_patch__spare_metric_while_others_run__200(api) -> None:
    started("exp", Status.RUNNING)
    response = api.patch("/api/v1/metrics/spare", {"event": "other"}, format="json")
    assert response.status_code == 200, response.json()
    assert Metric.objects.get(key="spare").event == "other"


# ---------------------------------------------------------------------------- plans


@pytest.mark.parametrize("method", ["fixed", "group_sequential"])
def test_experiment_start__plan_needed_without_planned_sample_size__400_names_it(
    api, method: str
) -> None:
    # Given a draft with a method that needs a plan, and no plan
    make_experiment("exp", start=False, analysis={"method": method})
    # When started
    response = api.post("/api/v1/experiments/exp/start")
    # Then 400 naming planned_sample_size, and it stays a draft
    assert response.status_code == 400, response.json()
    assert "planned_sample_size" in response.json()["error"]["fields"]
    assert Experiment.objects.get(key="exp").status == Status.DRAFT
    # And once a plan is set it starts
    api.patch("/api/v1/experiments/exp", {"planned_sample_size": 5000}, format="json")
    assert api.post("/api/v1/experiments/exp/start").status_code == 200
    assert Experiment.objects.get(key="exp").status == Status.RUNNING


def test_experiment_start__sequential_without_plan__starts(api) -> None:
    make_experiment("exp", start=False, analysis={"method": "sequential"})
    assert api.post("/api/v1/experiments/exp/start").status_code == 200


# ---------------------------------------------------------------------------- default capping


@pytest.mark.parametrize(
    ("aggregation", "extra", "expected"),
    [
        ("sum", {}, DEFAULT_WINSORIZE_PERCENTILE),
        ("mean", {}, DEFAULT_WINSORIZE_PERCENTILE),
        ("sum", {"winsorize_percentile": None}, None),
        ("mean", {"winsorize_percentile": None}, None),
        ("sum", {"winsorize_percentile": 97.5}, 97.5),
        ("conversion", {}, None),
        ("count", {}, None),
        ("ratio", {"denominator_event": "order"}, None),
    ],
)
def test_metric_create__winsorize_default__per_aggregation(
    api, aggregation: str, extra: dict[str, Any], expected: float | None
) -> None:
    # Given a metric created without (or with) a winsorize percentile
    body = {"key": "m", "event": "purchase", "aggregation": aggregation, **extra}
    # When posted
    response = api.post("/api/v1/metrics", body, format="json")
    # Then sum/mean get the documented default cap, null turns it off, others get none
    assert response.status_code == 201, response.json()
    assert response.json()["winsorize_percentile"] == expected
    assert Metric.objects.get(key="m").winsorize_percentile == expected
    assert api.get("/api/v1/metrics/m").json()["winsorize_percentile"] == expected


def test_default_winsorize_percentile__documented_value() -> None:
    # The team's documented default (docs/statistics.md): the 99th percentile
    assert DEFAULT_WINSORIZE_PERCENTILE == 99.0
