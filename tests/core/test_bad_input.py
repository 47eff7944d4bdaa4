"""Bad input is a 4xx naming the field, never a 500 (docs/api.md §5), on SQLite and PostgreSQL."""

from __future__ import annotations

import json

import pytest

from experiments.models import ExperimentMetric, Variant
from tests.factories import MetricFactory, experiment_spec, make_experiment

pytestmark = pytest.mark.django_db


def post_json(api, url: str, body: str):
    return api.post(url, data=body, content_type="application/json")


def test_patch_metrics__metric_definition_instead_of_link__400_naming_metric(api) -> None:
    # Given a draft experiment with one metric link
    experiment = make_experiment("exp", start=False)
    MetricFactory(key="m")
    # When a metric definition is sent where a {"metric", "role"} link belongs
    body = {"metrics": [{"key": "m", "event": "e", "aggregation": "sum", "role": "primary"}]}
    response = api.patch(f"/api/v1/experiments/{experiment.key}", body, format="json")
    # Then 400 names metrics.0.metric and nothing changed
    assert response.status_code == 400
    fields = response.json()["error"]["fields"]
    assert fields["metrics"]["0"]["metric"] == "This field is required."
    assert response.json()["error"]["message"].startswith("metrics.0.metric:")
    assert not ExperimentMetric.objects.filter(experiment=experiment).exists()


def test_patch_variants__item_without_weight__400_naming_it(api) -> None:
    experiment = make_experiment("exp", start=False)
    before = list(Variant.objects.filter(experiment=experiment).values_list("key", "weight"))
    body = {"variants": [{"key": "control", "is_control": True}, {"key": "b", "weight": 0.5}]}
    response = api.patch(f"/api/v1/experiments/{experiment.key}", body, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["fields"]["variants"]["0"]["weight"] == (
        "This field is required."
    )
    assert list(Variant.objects.filter(experiment=experiment).values_list("key", "weight")) == (
        before
    )


def test_patch_layer__without_key__400_naming_it(api) -> None:
    experiment = make_experiment("exp", start=False)
    response = api.patch(
        f"/api/v1/experiments/{experiment.key}", {"layer": {"start": 0.1}}, format="json"
    )
    assert response.status_code == 400
    assert "key" in response.json()["error"]["fields"]["layer"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (
            {"variants": [{"key": "a", "weight": 1, "is_control": True, "payload": {"x": "\0"}}]},
            "variants.0.payload.x",
        ),
        ({"condition": {"country": "f\0r"}}, "condition.country"),
        ({"forced_assignments": {"u\0": "a"}}, "forced_assignments.u\\u0000"),
        ({"name": "a\0b"}, "name"),
    ],
)
def test_experiment_create__nul_in_json_string__400_naming_field(api, body, field) -> None:
    # Given an otherwise valid experiment with a NUL in one string
    spec = {**experiment_spec("nul"), **body}
    # When (json.dumps writes the NUL as the \\u0000 escape)
    response = post_json(api, "/api/v1/experiments", json.dumps(spec))
    # Then 400 names the field and nothing is stored
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["message"].startswith(field.split(".")[0])
    assert field in error["fields"] or field.split(".")[0] in error["fields"]
    assert not Variant.objects.filter(experiment__key="nul").exists()


@pytest.mark.parametrize("url", ["/api/v1/experiments/a%00b", "/api/v1/experiments?status=%00"])
def test_url__nul__400_not_500(api, url) -> None:
    response = api.get(url)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"


def test_events__experiment_is_a_list__rejected_by_index_valid_ones_kept(api) -> None:
    # Given a batch with one exposure naming its experiment as a list and one valid outcome
    make_experiment("exp")
    batch = {
        "events": [
            {"type": "exposure", "unit_id": "u1", "experiment": ["exp"], "variant": "control"},
            {"type": "outcome", "unit_id": "u1", "name": "click", "event_id": "ok-1"},
        ]
    }
    # When
    response = api.post("/api/v1/events", batch, format="json")
    # Then the bad one is rejected naming `experiment`, the good one is stored
    assert response.status_code == 202, response.content
    assert response.json()["accepted"] == 1
    (rejected,) = response.json()["rejected"]
    assert rejected["index"] == 0
    assert "experiment" in rejected["error"]["fields"]
    from events.models import Outcome

    assert Outcome.objects.filter(event_id="ok-1").exists()


def test_events__nul_in_one_event__that_event_rejected_others_kept(api) -> None:
    batch = {
        "events": [
            {"type": "outcome", "unit_id": "u\0", "name": "click", "event_id": "bad"},
            {"type": "outcome", "unit_id": "u2", "name": "c", "properties": {"k": "v\0"}},
            {"type": "outcome", "unit_id": "u3", "name": "click", "event_id": "good"},
        ]
    }
    response = post_json(api, "/api/v1/events", json.dumps(batch))
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["accepted"] == 1
    assert [r["index"] for r in body["rejected"]] == [0, 1]
    assert "unit_id" in body["rejected"][0]["error"]["fields"]
    assert "properties.k" in body["rejected"][1]["error"]["fields"]
    from events.models import Outcome

    assert list(Outcome.objects.values_list("event_id", flat=True)) == ["good"]


def test_assign__nul_in_attributes__400_naming_field(api) -> None:
    # The fast path must not take it: its exposure would fail to store on PostgreSQL
    make_experiment("exp")
    body = json.dumps({"unit_id": "u1", "attributes": {"country": "f\0r"}})
    response = post_json(api, "/api/v1/assign", body)
    assert response.status_code == 400
    assert "attributes.country" in response.json()["error"]["fields"]
