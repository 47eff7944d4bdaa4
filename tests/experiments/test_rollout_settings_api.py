"""Rollout settings under `analysis` (docs/api.md §10): auto_rollback (which replaces v1's
auto_pause_on_guardrail, still accepted as its alias) and guardrail_check_minutes."""

from __future__ import annotations

import pytest

from experiments.models import Experiment
from tests.factories import experiment_spec, make_experiment

pytestmark = pytest.mark.django_db


def test_rollout_settings__defaults__off_and_five_minutes(api) -> None:
    response = api.post("/api/v1/experiments", experiment_spec("exp"), format="json")
    analysis = response.json()["analysis"]
    assert analysis["auto_rollback"] is False
    assert analysis["guardrail_check_minutes"] == 5
    assert analysis["min_units_per_variant"] == 100 and analysis["guardrail_alpha"] == 0.05


def test_rollout_settings__set_on_create_and_patch_while_running__stored(api) -> None:
    # Given an experiment created with auto_rollback on and a 2-minute guardrail check
    body = experiment_spec("exp", analysis={"auto_rollback": True, "guardrail_check_minutes": 2})
    assert api.post("/api/v1/experiments", body, format="json").status_code == 201
    stored = Experiment.objects.get(key="exp")
    assert (stored.auto_rollback, stored.guardrail_check_minutes) == (True, 2)
    # When it runs, both may still change (they act on harm; they do not shape the analysis)
    api.post("/api/v1/experiments/exp/start")
    patch = {"analysis": {"auto_rollback": False, "guardrail_check_minutes": 15}}
    response = api.patch("/api/v1/experiments/exp", patch, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["analysis"]["auto_rollback"] is False
    assert response.json()["analysis"]["auto_pause_on_guardrail"] is False
    assert response.json()["analysis"]["guardrail_check_minutes"] == 15


def test_rollout_settings__v1_alias__sets_auto_rollback(api) -> None:
    make_experiment("exp")
    body = {"analysis": {"auto_pause_on_guardrail": True}}
    response = api.patch("/api/v1/experiments/exp", body, format="json")
    assert response.status_code == 200
    assert Experiment.objects.get(key="exp").auto_rollback is True
    assert response.json()["analysis"]["auto_rollback"] is True


@pytest.mark.parametrize(
    ("analysis", "field"),
    [
        ({"auto_rollback": True, "auto_pause_on_guardrail": False}, "auto_pause_on_guardrail"),
        ({"guardrail_check_minutes": 0}, "guardrail_check_minutes"),
        ({"guardrail_check_minutes": "often"}, "guardrail_check_minutes"),
        ({"auto_rollback": "maybe"}, "auto_rollback"),
    ],
)
def test_rollout_settings__bad_value__400_naming_field(api, analysis, field) -> None:
    make_experiment("exp")
    response = api.patch("/api/v1/experiments/exp", {"analysis": analysis}, format="json")
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]["analysis"]
    stored = Experiment.objects.get(key="exp")
    assert (stored.auto_rollback, stored.guardrail_check_minutes) == (False, 5)


def test_patch_running__metric_link_without_role__treated_as_primary_not_500(api) -> None:
    # A PATCH validates partially, which skipped nested defaults: a link without "role" was a
    # KeyError (500) in the frozen-settings check. It is a primary link, as on create.
    from tests.factories import MetricFactory

    MetricFactory(key="m5")
    make_experiment("exp", metrics=[{"metric": "m5", "role": "primary"}])
    response = api.patch("/api/v1/experiments/exp", {"metrics": [{"metric": "m5"}]}, format="json")
    assert response.status_code == 200, response.content
    response = api.patch(
        "/api/v1/experiments/exp",
        {"metrics": [{"metric": "m5", "role": "guardrail"}]},
        format="json",
    )
    assert response.status_code == 409 and "metrics" in response.json()["error"]["fields"]
