"""The experiment and metric endpoints of docs/api.md §5: shapes, rules, status moves, auth."""

import pytest

from experiments.models import Experiment, Status
from tests.factories import TWO_ARMS, LayerFactory, MetricFactory, experiment_spec, make_experiment

pytestmark = pytest.mark.django_db

EXPERIMENT_FIELDS = {
    "key",
    "name",
    "hypothesis",
    "owner",
    "status",
    "seed",
    "hash_version",
    "coverage",
    "layer",
    "condition",
    "variants",
    "forced_assignments",
    "metrics",
    "analysis",
    "planned_sample_size",
    "shipped_variant",
    "started_at",
    "stopped_at",
}
ANALYSIS_FIELDS = {
    "alpha",
    "method",
    "sequential_tuning",
    "planned_looks",
    "cuped",
    "correction",
    "srm_threshold",
    "schedule_minutes",
    "auto_pause_on_guardrail",
    "auto_rollback",
    "guardrail_check_minutes",
    "min_units_per_variant",
    "guardrail_alpha",
}


def test_experiment_create__full_config__stored_and_returned_in_contract_shape(api) -> None:
    # Given a metric and a layer
    MetricFactory(key="ctr")
    LayerFactory(key="search")
    body = experiment_spec(
        "ranker",
        hypothesis="v2 ranks better",
        owner="search-team",
        coverage=0.8,
        layer={"key": "search", "start": 0.0, "end": 0.5},
        condition={"country": {"$in": ["US", "CA"]}},
        forced_assignments={"qa-1": "treatment"},
        metrics=[{"metric": "ctr", "role": "primary"}],
        analysis={"alpha": 0.01, "method": "fixed", "correction": "bh"},
        planned_sample_size=10000,
        status="running",  # read-only: ignored
    )
    # When it is posted
    response = api.post("/api/v1/experiments", body, format="json")
    # Then it is created as a draft with every contract field
    assert response.status_code == 201, response.json()
    data = response.json()
    assert set(data) >= EXPERIMENT_FIELDS
    assert set(data["analysis"]) >= ANALYSIS_FIELDS
    assert data["status"] == "draft"
    assert data["seed"] == "ranker"  # defaults to the key
    assert data["hash_version"] == 2
    assert data["layer"] == {"key": "search", "start": 0.0, "end": 0.5}
    assert data["forced_assignments"] == {"qa-1": "treatment"}
    assert data["metrics"] == [{"metric": "ctr", "role": "primary"}]
    assert data["analysis"]["alpha"] == 0.01 and data["analysis"]["correction"] == "bh"
    assert [v["key"] for v in data["variants"]] == ["control", "treatment"]
    assert data["variants"][1]["payload"] == {"model": "ranker-v2"}
    assert Experiment.objects.get(key="ranker").coverage == 0.8


@pytest.mark.parametrize(
    ("variants", "message"),
    [
        ([{**TWO_ARMS[0], "weight": 0.7}, TWO_ARMS[1]], "sum to 1"),
        ([TWO_ARMS[0], {**TWO_ARMS[1], "is_control": True}], "Exactly one variant"),
        ([TWO_ARMS[0], {**TWO_ARMS[1], "key": "control"}], "unique"),
    ],
)
def test_experiment_create__bad_variant_set__400_naming_variants(api, variants, message) -> None:
    response = api.post(
        "/api/v1/experiments", experiment_spec("x", variants=variants), format="json"
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert "variants" in error["fields"]
    assert message in error["message"]
    assert not Experiment.objects.filter(key="x").exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"key": "Bad Key!", "name": "x", "variants": TWO_ARMS}, "key"),
        ({"key": "x", "variants": TWO_ARMS}, "name"),
        ({"key": "x", "name": "x", "variants": TWO_ARMS, "coverage": 1.5}, "coverage"),
        (
            {"key": "x", "name": "x", "variants": TWO_ARMS, "condition": {"a": {"$bogus": 1}}},
            "condition",
        ),
        ({"key": "x", "name": "x", "variants": TWO_ARMS, "condition": [1]}, "condition"),
        (
            {"key": "x", "name": "x", "variants": TWO_ARMS, "forced_assignments": {"u": "nope"}},
            "forced_assignments",
        ),
        (
            {"key": "x", "name": "x", "variants": TWO_ARMS, "metrics": [{"metric": "nope"}]},
            "metrics",
        ),
        (
            {"key": "x", "name": "x", "variants": TWO_ARMS, "analysis": {"method": "bayes"}},
            "analysis",
        ),
        ({"key": "x", "name": "x", "variants": TWO_ARMS, "hash_version": 3}, "hash_version"),
    ],
)
def test_experiment_create__bad_field__400_names_it(api, body, field) -> None:
    response = api.post("/api/v1/experiments", body, format="json")
    assert response.status_code == 400, response.json()
    assert field in response.json()["error"]["fields"]


def test_experiment_create__duplicate_key__409(api) -> None:
    make_experiment("dup", start=False)
    response = api.post("/api/v1/experiments", experiment_spec("dup"), format="json")
    assert response.status_code == 409
    assert "key" in response.json()["error"]["fields"]


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("/api/v1/experiments", experiment_spec("dup"), "An experiment with this key exists."),
        (
            "/api/v1/metrics",
            {"key": "dup", "name": "Dup", "event": "e", "aggregation": "conversion"},
            "A metric with this key exists.",
        ),
        ("/api/v1/layers", {"key": "dup"}, "A layer with this key exists."),
    ],
)
def test_create__key_taken__409_conflict_names_key_and_nothing_added(
    api, path, body, message
) -> None:
    # Given an experiment, a metric and a layer keyed "dup"
    make_experiment("dup", start=False)
    MetricFactory(key="dup")
    LayerFactory(key="dup")
    before = api.get(path).json()
    # When another is created with that key
    response = api.post(path, body, format="json")
    # Then 409 conflict naming the key, and the list is unchanged
    assert response.status_code == 409
    assert response.json() == {
        "error": {"code": "conflict", "message": message, "fields": {"key": "already exists"}}
    }
    assert api.get(path).json() == before


def test_layer_ranges__overlap_in_same_layer__refused(api) -> None:
    # Given a running experiment owning [0, 0.5) of a layer
    LayerFactory(key="home")
    make_experiment("first", layer={"key": "home", "start": 0.0, "end": 0.5})
    # When another asks for [0.4, 1.0) of the same layer
    response = api.post(
        "/api/v1/experiments",
        experiment_spec("second", layer={"key": "home", "start": 0.4, "end": 1.0}),
        format="json",
    )
    # Then it is refused, naming the clash
    assert response.status_code == 400
    assert "overlaps experiment 'first'" in response.json()["error"]["message"]
    # And the adjacent range is fine
    ok = api.post(
        "/api/v1/experiments",
        experiment_spec("third", layer={"key": "home", "start": 0.5, "end": 1.0}),
        format="json",
    )
    assert ok.status_code == 201, ok.json()


def test_status_moves__draft_running_paused_stopped__follow_the_table(api) -> None:
    make_experiment("flow", start=False)
    assert api.post("/api/v1/experiments/flow/pause").status_code == 409  # draft cannot pause
    started = api.post("/api/v1/experiments/flow/start").json()
    assert started["status"] == "running" and started["started_at"]
    assert api.post("/api/v1/experiments/flow/pause").json()["status"] == "paused"
    assert api.post("/api/v1/experiments/flow/start").json()["status"] == "running"
    bad_ship = api.post(
        "/api/v1/experiments/flow/stop", {"shipped_variant": "nope"}, format="json"
    )
    assert bad_ship.status_code == 400 and "shipped_variant" in bad_ship.json()["error"]["fields"]
    stopped = api.post(
        "/api/v1/experiments/flow/stop", {"shipped_variant": "treatment"}, format="json"
    ).json()
    assert stopped["status"] == "stopped"
    assert stopped["shipped_variant"] == "treatment" and stopped["stopped_at"]
    again = api.post("/api/v1/experiments/flow/start")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "invalid_status_change"


def test_patch__running_weights_or_seed__refused_coverage_allowed(api) -> None:
    make_experiment("live")
    weights = [{**TWO_ARMS[0], "weight": 0.6}, {**TWO_ARMS[1], "weight": 0.4}]
    response = api.patch("/api/v1/experiments/live", {"variants": weights}, format="json")
    assert response.status_code == 400
    assert "Weights cannot change" in response.json()["error"]["message"]
    seed = api.patch("/api/v1/experiments/live", {"seed": "other"}, format="json")
    assert seed.status_code == 400 and "seed" in seed.json()["error"]["fields"]
    coverage = api.patch("/api/v1/experiments/live", {"coverage": 0.3}, format="json")
    assert coverage.status_code == 200 and coverage.json()["coverage"] == 0.3
    experiment = Experiment.objects.get(key="live")
    assert experiment.seed == "" and experiment.status == Status.RUNNING


def test_patch__draft__variants_replaced(api) -> None:
    make_experiment("draft", start=False)
    three = [
        {"key": "control", "weight": 0.5, "is_control": True},
        {"key": "b", "weight": 0.25},
        {"key": "c", "weight": 0.25},
    ]
    response = api.patch("/api/v1/experiments/draft", {"variants": three}, format="json")
    assert response.status_code == 200
    assert [v["key"] for v in response.json()["variants"]] == ["control", "b", "c"]


def test_experiment_detail__unknown__404_error_shape(api) -> None:
    response = api.get("/api/v1/experiments/nope")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_metrics__create_list_patch__contract_shape(api) -> None:
    body = {
        "key": "ctr",
        "name": "CTR",
        "event": "click",
        "aggregation": "ratio",
        "denominator_event": "impression",
        "direction": "increase",
        "winsorize_percentile": 99,
        "conversion_window_hours": 24,
    }
    created = api.post("/api/v1/metrics", body, format="json")
    assert created.status_code == 201, created.json()
    assert created.json() == {
        **body,
        "winsorize_percentile": 99.0,
        "cuped_lookback_days": 14,
        "quantile": None,  # docs/api.md §1: quantile metrics only
    }
    assert [m["key"] for m in api.get("/api/v1/metrics").json()] == ["ctr"]
    patched = api.patch("/api/v1/metrics/ctr", {"direction": "decrease"}, format="json")
    assert patched.json()["direction"] == "decrease"
    no_denominator = api.post(
        "/api/v1/metrics", {"key": "r", "event": "e", "aggregation": "ratio"}, format="json"
    )
    assert no_denominator.status_code == 400
    assert "denominator_event" in no_denominator.json()["error"]["fields"]


@pytest.mark.parametrize(
    ("method", "path", "scope"),
    [
        ("get", "/api/v1/experiments", "read"),
        ("post", "/api/v1/experiments", "write"),
        ("post", "/api/v1/experiments/x/start", "write"),
        ("get", "/api/v1/metrics", "read"),
        ("post", "/api/v1/assign", "assign"),
        ("get", "/api/v1/config", "assign"),
    ],
)
def test_auth__missing_wrong_scope_invalid__401_403(
    make_api_client, client, method, path, scope
) -> None:
    # No key → 401
    assert getattr(client, method)(path).status_code == 401
    # A key without the scope → 403 naming it
    other = "events" if scope != "events" else "read"
    forbidden = getattr(make_api_client(other), method)(path)
    assert forbidden.status_code == 403
    assert scope in forbidden.json()["error"]["message"]
    # An unknown key → 401
    bad = getattr(client, method)(path, HTTP_AUTHORIZATION="Bearer vl_nope")
    assert bad.status_code == 401
    # The right scope, or "all", gets through authorization
    assert getattr(make_api_client(scope), method)(path).status_code not in (401, 403)
    assert getattr(make_api_client("all"), method)(path).status_code not in (401, 403)


def test_api_key__revoked__401(make_api_client) -> None:
    from experiments.models import ApiKey

    client = make_api_client("read")
    assert client.get("/api/v1/experiments").status_code == 200
    ApiKey.objects.update(is_active=False)
    from core.auth import active_keys

    active_keys.invalidate()  # in production the version bump does this on commit
    assert client.get("/api/v1/experiments").status_code == 401


def test_api_key__stored_hashed__never_in_clear(make_api_client) -> None:
    from experiments.models import ApiKey
    from experiments.services import api_key_create

    api_key, raw_key = api_key_create(name="ci", scopes=["read"])
    stored = ApiKey.objects.get(pk=api_key.pk)
    assert raw_key not in (stored.hashed_key, stored.prefix)
    assert stored.hashed_key == ApiKey.hash(raw_key)


def test_openapi_schema_and_docs__served_without_auth(client) -> None:
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert "/api/v1/assign" in paths and "/api/v1/experiments/{key}" in paths
    docs = client.get("/api/docs/")
    assert docs.status_code == 200 and b"swagger" in docs.content.lower()


def test_health__healthz_and_readyz__ok(client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"]["database"] is True


@pytest.mark.parametrize(
    "path",
    [
        "/static/admin/css/base.css",
        "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js",
    ],
)
def test_static_files__debug_off__served_by_the_app(client, settings, path) -> None:
    # The demo and gunicorn run with DEBUG off: the admin and Swagger UI need their assets
    settings.DEBUG = False
    response = client.get(path)
    assert response.status_code == 200
    assert b"".join(response.streaming_content)
