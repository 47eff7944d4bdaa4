"""GET /api/v1/features and GET /api/features/{key}: GrowthBook's SDK payload (docs/api.md §13)."""

from __future__ import annotations

import pytest
from django.test import Client as DjangoClient
from django.utils import timezone

from core.config_version import config_version_bump
from experiments import services
from experiments.services import api_key_create
from tests.factories import TWO_ARMS, LayerFactory, make_experiment

pytestmark = pytest.mark.django_db


def test_features__every_shape__growthbook_payload(api) -> None:
    # Given a running layered, targeted experiment with a QA override, a shipped one, a paused
    # one, a rolled-back one and a draft
    LayerFactory(key="home")
    make_experiment(
        "ranker",
        layer={"key": "home", "start": 0.0, "end": 0.5},
        condition={"plan": "pro"},
        coverage=0.8,
        forced_assignments={"qa-1": "treatment"},
    )
    services.experiment_stop(experiment=make_experiment("shipped"), shipped_variant="treatment")
    services.experiment_pause(experiment=make_experiment("paused"))
    rolled = make_experiment("rolled")
    rolled.variants.filter(key="treatment").update(rolled_back_at=timezone.now())
    config_version_bump()
    make_experiment("draft", start=False)
    # When the features are read
    response = api.get("/api/v1/features")
    features = response.json()["features"]
    # Then each served experiment is one feature whose default is the control payload
    assert response.status_code == 200 and response["ETag"]
    assert sorted(features) == ["paused", "ranker", "rolled", "shipped"]
    control, treatment = TWO_ARMS[0]["payload"], TWO_ARMS[1]["payload"]
    assert features["ranker"] == {
        "defaultValue": control,
        "rules": [
            {"condition": {"id": "qa-1"}, "force": treatment},
            {
                "key": "ranker",
                "variations": [control, treatment],
                "weights": [0.5, 0.5],
                "coverage": 0.8,
                "seed": "ranker",
                "hashVersion": 2,
                "hashAttribute": "id",
                "meta": [
                    {"key": "control", "name": "control"},
                    {"key": "treatment", "name": "treatment"},
                ],
                "condition": {"plan": "pro"},
                "namespace": ["home", 0.0, 0.5],
            },
        ],
    }
    assert features["shipped"] == {"defaultValue": control, "rules": [{"force": treatment}]}
    assert features["paused"] == {"defaultValue": control, "rules": []}
    assert features["rolled"]["rules"][0]["ranges"] == [[0.0, 0.5], [0.5, 0.5]]


def test_features__etag__304_when_unchanged(api) -> None:
    make_experiment("ranker")
    etag = api.get("/api/v1/features")["ETag"]
    again = api.get("/api/v1/features", HTTP_IF_NONE_MATCH=etag)
    assert again.status_code == 304 and again["ETag"] == etag


def test_features__scopes__assign_required(make_api_client) -> None:
    assert make_api_client("read").get("/api/v1/features").status_code == 403
    assert DjangoClient().get("/api/v1/features").status_code == 401


def test_features_by_key__assign_only_key__payload_with_cors(api) -> None:
    make_experiment("ranker")
    _, key = api_key_create(name="app", scopes=["assign"])
    response = DjangoClient().get(f"/api/features/{key}")
    assert response.status_code == 200
    assert response.content == api.get("/api/v1/features").content
    assert response["Access-Control-Allow-Origin"] == "*"
    assert (
        DjangoClient().get(f"/api/features/{key}", HTTP_IF_NONE_MATCH=response["ETag"]).status_code
        == 304
    )


@pytest.mark.parametrize("scopes", [["all"], ["assign", "events"], ["read"]])
def test_features_by_key__key_with_more_than_assign__403(scopes: list[str]) -> None:
    # Given a key that can do more than assign: it must never travel in a URL
    _, key = api_key_create(name="wide", scopes=scopes)
    response = DjangoClient().get(f"/api/features/{key}")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    assert "features" not in response.json()


def test_features_by_key__unknown_key__401() -> None:
    response = DjangoClient().get("/api/features/vl_not_a_key")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
