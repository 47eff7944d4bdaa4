"""POST /api/v1/assign and GET /api/v1/config (docs/api.md §2, §5)."""

from __future__ import annotations

import json

import pytest
from django.utils import timezone
from growthbook import Experiment as GBExperiment
from growthbook import GrowthBook

from assignment.apis import AssignApi
from assignment.engine import bucket_ranges, choose_variant, hash_unit, in_namespace
from core.config_version import config_version_bump
from events.models import Exposure
from experiments import services
from experiments.models import Experiment
from tests.factories import TWO_ARMS, LayerFactory, make_experiment

pytestmark = pytest.mark.django_db


def assign(api, unit_id: str = "u-1", **body):
    return api.post("/api/v1/assign", {"unit_id": unit_id, **body}, format="json")


def expected_index(seed: str, unit_id: str, weights: list[float], coverage: float = 1.0) -> int:
    return choose_variant(
        hash_unit(seed, unit_id, 2), bucket_ranges(len(weights), coverage, weights)
    )


def test_assign__running_experiment__assigned_by_hash_and_exposure_logged(api) -> None:
    # Given a running 50/50 experiment
    make_experiment("ranker")
    # When a unit asks
    response = assign(api, "user-42", attributes={"country": "US"})
    # Then it gets the variant the hash picks, with the payload, and its exposure is stored
    assert response.status_code == 200
    body = response.json()
    assert body["unit_id"] == "user-42" and body["unknown"] == []
    got = body["assignments"]["ranker"]
    index = expected_index("ranker", "user-42", [0.5, 0.5])
    assert got == {
        "variant": TWO_ARMS[index]["key"],
        "payload": TWO_ARMS[index]["payload"],
        "in_experiment": True,
        "reason": "assigned",
    }
    exposure = Exposure.objects.get(unit_id="user-42")
    assert exposure.variant == got["variant"] and exposure.attributes == {"country": "US"}


def test_assign__same_unit_many_times__same_variant_one_exposure(api) -> None:
    make_experiment("ranker")
    variants = {assign(api, "sticky").json()["assignments"]["ranker"]["variant"] for _ in range(5)}
    assert len(variants) == 1
    assert Exposure.objects.filter(unit_id="sticky").count() == 1


def test_assign__not_running__control_or_shipped_variant(api) -> None:
    # Given a paused experiment and a stopped one that shipped its treatment
    paused = make_experiment("paused")
    services.experiment_pause(experiment=paused)
    stopped = make_experiment("stopped")
    services.experiment_stop(experiment=stopped, shipped_variant="treatment")
    make_experiment("draft", start=False)
    # When a unit asks for them by key
    body = assign(api, experiments=["paused", "stopped", "draft"]).json()["assignments"]
    # Then: control with not_running, or the shipped variant with shipped (docs/api.md §13);
    # never in the experiment
    assert body["paused"]["variant"] == "control" and body["paused"]["reason"] == "not_running"
    assert body["stopped"]["variant"] == "treatment" and body["stopped"]["reason"] == "shipped"
    assert body["draft"]["variant"] == "control" and body["draft"]["reason"] == "not_running"
    assert not any(a["in_experiment"] for a in body.values())
    assert not Exposure.objects.exists()


def test_assign__forced_unit__forced_variant_not_in_experiment(api) -> None:
    make_experiment("ranker", forced_assignments={"qa-1": "treatment"})
    got = assign(api, "qa-1").json()["assignments"]["ranker"]
    assert got["variant"] == "treatment" and got["reason"] == "forced"
    assert got["in_experiment"] is False
    assert not Exposure.objects.exists()  # QA traffic is never analysed


def test_assign__condition_false__control_not_targeted(api) -> None:
    make_experiment("ranker", condition={"country": "US"})
    other = assign(api, "u", attributes={"country": "FR"}).json()["assignments"]["ranker"]
    assert other == {
        **other,
        "variant": "control",
        "reason": "not_targeted",
        "in_experiment": False,
    }
    us = assign(api, "u", attributes={"country": "US"}).json()["assignments"]["ranker"]
    assert us["reason"] == "assigned"


def test_assign__outside_layer_range__control_not_in_layer(api) -> None:
    # Given an experiment owning [0, 0.3) of a layer
    LayerFactory(key="home")
    make_experiment("ranker", layer={"key": "home", "start": 0.0, "end": 0.3})
    # When units inside and outside the range ask
    inside = next(f"u{i}" for i in range(1000) if in_namespace(f"u{i}", ("home", 0.0, 0.3)))
    outside = next(f"u{i}" for i in range(1000) if not in_namespace(f"u{i}", ("home", 0.0, 0.3)))
    # Then only the one inside enters
    assert assign(api, inside).json()["assignments"]["ranker"]["reason"] == "assigned"
    out = assign(api, outside).json()["assignments"]["ranker"]
    assert out["reason"] == "not_in_layer" and out["variant"] == "control"


def test_assign__outside_coverage__control_not_in_traffic(api) -> None:
    make_experiment("ranker", coverage=0.2)
    ranges = bucket_ranges(2, 0.2, [0.5, 0.5])
    outside = next(
        f"u{i}" for i in range(1000) if choose_variant(hash_unit("ranker", f"u{i}"), ranges) == -1
    )
    got = assign(api, outside).json()["assignments"]["ranker"]
    assert got["reason"] == "not_in_traffic" and got["variant"] == "control"
    assert not got["in_experiment"]


def test_assign__no_experiments_listed__all_running_and_unknown_reported(api) -> None:
    make_experiment("a")
    make_experiment("b")
    make_experiment("c", start=False)
    everything = assign(api).json()
    assert set(everything["assignments"]) == {"a", "b"}
    picked = assign(api, experiments=["b", "nope"]).json()
    assert set(picked["assignments"]) == {"b"} and picked["unknown"] == ["nope"]


def test_assign__log_exposure_false__nothing_stored(api) -> None:
    make_experiment("ranker")
    assert assign(api, log_exposure=False).json()["assignments"]["ranker"]["in_experiment"]
    assert not Exposure.objects.exists()


@pytest.mark.parametrize(
    ("body", "field", "status"),
    [
        ({"attributes": {}}, "unit_id", 400),
        ({"unit_id": "x" * 257}, "unit_id", 400),
        ({"unit_id": ""}, "unit_id", 400),
        ({"unit_id": "u", "attributes": ["a"]}, "attributes", 400),
        ({"unit_id": "u", "experiments": "ranker"}, "experiments", 400),
        ({"unit_id": "u", "log_exposure": "maybe"}, "log_exposure", 400),
    ],
)
def test_assign__bad_input__4xx_names_the_field(api, body, field, status) -> None:
    response = api.post("/api/v1/assign", body, format="json")
    assert response.status_code == status
    assert field in response.json()["error"]["fields"]
    assert field in response.json()["error"]["message"]


def test_assign__malformed_json_or_wrong_content_type__4xx_error_shape(api) -> None:
    malformed = api.post("/api/v1/assign", '{"unit_id": ', content_type="application/json")
    assert malformed.status_code == 400
    assert "JSON" in malformed.json()["error"]["message"]
    form = api.post(
        "/api/v1/assign", "unit_id=u", content_type="application/x-www-form-urlencoded"
    )
    assert form.status_code == 415
    assert form.json()["error"]["code"] == "unsupported_media_type"


def test_assign__usual_request__answered_outside_drf_with_drf_identical_answer(
    api, monkeypatch
) -> None:
    # Given payloads with non-ASCII text and a U+2028 (which DRF's renderer escapes), a
    # three-armed experiment, a paused one and a forced unit
    make_experiment(
        "ranker",
        variants=[
            {"key": "control", "weight": 0.5, "is_control": True, "payload": {"m": "é\u2028"}},
            {"key": "treatment", "weight": 0.5, "payload": {"m": "v2", "w": [1.5, None]}},
        ],
        forced_assignments={"qa-1": "treatment"},
    )
    make_experiment(
        "recs",
        variants=[
            {"key": "a", "weight": 0.34, "is_control": True, "payload": {}},
            {"key": "b", "weight": 0.33, "payload": {"k": 1}},
            {"key": "c", "weight": 0.33, "payload": {"k": 2}},
        ],
    )
    services.experiment_pause(experiment=make_experiment("paused"))
    bodies = [
        {"unit_id": unit_id, "attributes": {"plan": "pro"}, "log_exposure": False}
        for unit_id in ["u-1", "qa-1", "ünï-☃-𝄞", "line\u2028sep", 'quote"back\\slash']
    ]
    bodies.append({"unit_id": "u-2", "experiments": ["recs", "nope", "paused"]})
    for body in bodies:
        # When the same request is sent in the usual form and in a form only DRF answers
        # (a charset parameter the fast path leaves to DRF)
        drf = api.post(
            "/api/v1/assign", json.dumps(body), content_type="application/json; charset=UTF-8"
        )
        with monkeypatch.context() as patched:
            patched.setattr(AssignApi, "initial", _drf_must_not_run)
            usual = assign(api, **body)
        # Then both answers are the same, byte for byte
        assert usual.status_code == drf.status_code == 200
        assert usual.content == drf.content
        for header in ("Content-Type", "Allow"):
            assert usual[header] == drf[header]
        assert usual.json()["unit_id"] == body["unit_id"]


def _drf_must_not_run(*args, **kwargs) -> None:
    raise AssertionError("the usual /assign request went through DRF")


def test_assign__unit_id_of_256_chars__accepted(api) -> None:
    make_experiment("ranker")
    assert assign(api, "x" * 256).status_code == 200


def test_assign__warm_cache__runs_zero_sql_queries(
    api, settings, django_assert_num_queries
) -> None:
    # Given ten running experiments and a warm cache (the key table and the config)
    settings.VARIANTLAB_CONFIG_POLL_SECONDS = 60
    for i in range(10):
        make_experiment(f"exp-{i}")
    assign(api, "warm-up", log_exposure=False)
    # When units are assigned, Then the hot path touches no database
    with django_assert_num_queries(0):
        for i in range(20):
            response = assign(api, f"unit-{i}", log_exposure=False)
            assert len(response.json()["assignments"]) == 10


def test_assign__admin_change__visible_after_invalidation(
    api, admin_client, settings, django_capture_on_commit_callbacks
) -> None:
    # Given a running experiment served from a warm cache that never polls by itself
    settings.VARIANTLAB_CONFIG_POLL_SECONDS = 0
    experiment = make_experiment("ranker")
    assert assign(api, "u-1").json()["assignments"]["ranker"]["reason"] == "assigned"
    # When a product manager pauses it from the admin (commit callbacks bump the version)
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(f"/admin/experiments/experiment/{experiment.pk}/move/pause/")
    # Then /assign serves the new state
    assert Experiment.objects.get(pk=experiment.pk).status == "paused"
    got = assign(api, "u-1", experiments=["ranker"]).json()["assignments"]["ranker"]
    assert got["reason"] == "not_running"


def test_config__etag__304_on_match_and_changes_with_config(
    api, settings, django_capture_on_commit_callbacks
) -> None:
    settings.VARIANTLAB_CONFIG_POLL_SECONDS = 0
    make_experiment("ranker", forced_assignments={"qa": "treatment"})
    first = api.get("/api/v1/config")
    assert first.status_code == 200
    etag = first["ETag"]
    body = first.json()["experiments"]
    assert [e["key"] for e in body] == ["ranker"]
    assert set(body[0]) >= {
        "key",
        "seed",
        "hash_version",
        "coverage",
        "variants",
        "condition",
        "layer",
        "forced_assignments",
    }
    assert body[0]["forced_assignments"] == {"qa": "treatment"}
    assert api.get("/api/v1/config", HTTP_IF_NONE_MATCH=etag).status_code == 304
    with django_capture_on_commit_callbacks(execute=True):
        services.experiment_save(data={"coverage": 0.5}, experiment=Experiment.objects.get())
    changed = api.get("/api/v1/config", HTTP_IF_NONE_MATCH=etag)
    assert changed.status_code == 200 and changed["ETag"] != etag
    assert changed.json()["experiments"][0]["coverage"] == 0.5


@pytest.mark.parametrize("path", ["/api/v1/config", "/api/v1/features"])
def test_config_and_features__usual_get__answered_outside_drf_with_drf_identical_answer(
    api, monkeypatch, path
) -> None:
    from assignment import apis
    from assignment.apis import ConfigApi, FeaturesApi

    make_experiment("ranker", forced_assignments={"qa": "treatment"})
    etag = api.get(path)["ETag"]
    for headers in [{}, {"HTTP_IF_NONE_MATCH": etag}, {"HTTP_IF_NONE_MATCH": '"stale"'}]:
        # When the same GET is answered by DRF (the fast path off) and by the fast path
        with monkeypatch.context() as patched:
            patched.setattr(apis, "_usual_get", lambda request: False)
            drf = api.get(path, **headers)
        with monkeypatch.context() as patched:
            patched.setattr(ConfigApi, "initial", _drf_must_not_run)
            patched.setattr(FeaturesApi, "initial", _drf_must_not_run)
            usual = api.get(path, **headers)
        # Then status, headers and body are the same, byte for byte
        assert usual.status_code == drf.status_code
        assert usual.content == drf.content
        assert dict(usual.headers) == dict(drf.headers)
    assert api.get(path, HTTP_IF_NONE_MATCH=etag).status_code == 304


def test_config__usual_get_without_assign_scope__drf_answers_403(make_api_client) -> None:
    make_experiment("ranker")
    response = make_api_client("read").get("/api/v1/config")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"


def growthbook_variant(config: dict, unit_id: str, attributes: dict) -> str:
    """Evaluate one /config experiment locally with GrowthBook's own Python SDK."""
    layer = config["layer"]
    experiment = GBExperiment(
        key=config["key"],
        variations=[v["key"] for v in config["variants"]],
        weights=[v["weight"] for v in config["variants"]],
        coverage=config["coverage"],
        condition=config["condition"] or None,
        namespace=(layer["key"], layer["start"], layer["end"]) if layer else None,
        hashVersion=config["hash_version"],
        seed=config["seed"],
    )
    gb = GrowthBook(attributes={"id": unit_id, **attributes}, forced_variations={})
    result = gb.run(experiment)
    return (
        result.value
        if result.inExperiment
        else next(v["key"] for v in config["variants"] if v["is_control"])
    )


def test_config__evaluated_locally_by_growthbook_sdk__same_variant_as_assign(api) -> None:
    # Given experiments using weights, coverage, a condition and a layer
    LayerFactory(key="home")
    make_experiment(
        "weights",
        variants=[
            {"key": "control", "weight": 0.2, "is_control": True},
            {"key": "b", "weight": 0.3},
            {"key": "c", "weight": 0.5},
        ],
    )
    make_experiment("coverage", coverage=0.6)
    make_experiment("targeted", condition={"plan": {"$in": ["pro", "team"]}})
    make_experiment("layered", layer={"key": "home", "start": 0.25, "end": 0.75}, hash_version=1)
    config = {e["key"]: e for e in api.get("/api/v1/config").json()["experiments"]}
    # When 300 units are evaluated by the SDK from /config and by /assign
    for i in range(300):
        unit, attributes = f"user-{i}", {"plan": ["free", "pro", "team"][i % 3]}
        served = assign(api, unit, attributes=attributes, log_exposure=False).json()["assignments"]
        # Then both agree on every experiment
        for key, experiment in config.items():
            assert served[key]["variant"] == growthbook_variant(experiment, unit, attributes), (
                key,
                unit,
            )


def test_config_and_assign__paused_shipped_rolled_back__served_per_contract_v2(api) -> None:
    # Given a paused, a shipped, a stopped (nothing shipped) and a running experiment whose
    # treatment was rolled back (docs/api.md §10, §13)
    services.experiment_pause(experiment=make_experiment("paused"))
    services.experiment_stop(experiment=make_experiment("shipped"), shipped_variant="treatment")
    services.experiment_stop(experiment=make_experiment("stopped"))
    rolled = make_experiment("rolled")
    rolled.variants.filter(key="treatment").update(rolled_back_at=timezone.now())
    config_version_bump()
    # When /config is read and units are assigned without naming experiments
    config = {e["key"]: e for e in api.get("/api/v1/config").json()["experiments"]}
    answers = [assign(api, f"u-{i}").json()["assignments"] for i in range(40)]
    # Then /config lists the paused, shipped and rolled-back ones, not the plain stopped one
    assert sorted(config) == ["paused", "rolled", "shipped"]
    assert config["shipped"]["status"] == "stopped"
    assert config["shipped"]["shipped_variant"] == "treatment"
    treatment = config["rolled"]["variants"][1]
    assert treatment["key"] == "treatment" and treatment["rolled_back_at"] is not None
    assert config["rolled"]["ranges"] == [[0.0, 0.5], [0.5, 0.5]]  # emptied, control unchanged
    # And /assign's default set is the same three, with the v2 reasons
    assert all(sorted(a) == ["paused", "rolled", "shipped"] for a in answers)
    assert {a["shipped"]["reason"] for a in answers} == {"shipped"}
    assert {a["shipped"]["variant"] for a in answers} == {"treatment"}
    assert {a["paused"]["reason"] for a in answers} == {"not_running"}
    rolled_reasons = [a["rolled"]["reason"] for a in answers]
    assert set(rolled_reasons) == {"assigned", "rolled_back"}
    assert all(a["rolled"]["variant"] == "control" for a in answers)
    # And only the units still assigned (control) are exposed
    assert Exposure.objects.count() == rolled_reasons.count("assigned")
