"""The audit log (docs/api.md §11): one entry per change, with actor and diff; append-only."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from io import StringIO

import pytest
from django.db import connection
from django.utils import timezone

from audit.models import AppendOnlyError, AuditEntry
from audit.services import audit_record
from experiments.models import ApiKey, Experiment
from tests.experiments.test_admin import add_form
from tests.factories import LayerFactory, MetricFactory, experiment_spec, make_experiment

pytestmark = pytest.mark.django_db


def one_new_entry(since_id: int) -> AuditEntry:
    """The single entry written after `since_id`; fails if there are none or several."""
    (entry,) = AuditEntry.objects.filter(pk__gt=since_id)
    return entry


def last_id() -> int:
    return AuditEntry.objects.order_by("-id").values_list("id", flat=True).first() or 0


def test_audit_api__every_mutating_endpoint__one_entry_with_key_actor_and_diff(api) -> None:
    MetricFactory(key="ctr")
    steps: list[tuple[Callable, str, str, dict]] = [
        (
            lambda: api.post("/api/v1/experiments", experiment_spec("exp"), format="json"),
            "create",
            "experiment",
            {"key": [None, "exp"], "status": [None, "draft"]},
        ),
        (
            lambda: api.patch("/api/v1/experiments/exp", {"coverage": 0.5}, format="json"),
            "update",
            "experiment",
            {"coverage": [1.0, 0.5]},
        ),
        (
            lambda: api.patch(
                "/api/v1/experiments/exp", {"analysis": {"alpha": 0.01}}, format="json"
            ),
            "update",
            "experiment",
            {"analysis.alpha": [0.05, 0.01]},
        ),
        (
            lambda: api.patch(
                "/api/v1/experiments/exp",
                {"forced_assignments": {"qa": "treatment"}},
                format="json",
            ),
            "update",
            "experiment",
            {"forced_assignments": [{}, {"qa": "treatment"}]},
        ),
        (
            lambda: api.post("/api/v1/experiments/exp/start"),
            "start",
            "experiment",
            {"status": ["draft", "running"]},
        ),
        (
            lambda: api.post("/api/v1/experiments/exp/pause"),
            "pause",
            "experiment",
            {"status": ["running", "paused"]},
        ),
        (
            lambda: api.post("/api/v1/experiments/exp/start"),
            "resume",
            "experiment",
            {"status": ["paused", "running"]},
        ),
        (
            lambda: api.post(
                "/api/v1/experiments/exp/stop", {"shipped_variant": "treatment"}, format="json"
            ),
            "stop",
            "experiment",
            {"status": ["running", "stopped"], "shipped_variant": [None, "treatment"]},
        ),
        (
            lambda: api.post(
                "/api/v1/metrics",
                {"key": "rev", "event": "purchase", "aggregation": "sum"},
                format="json",
            ),
            "create",
            "metric",
            {"key": [None, "rev"], "event": [None, "purchase"]},
        ),
        (
            lambda: api.patch("/api/v1/metrics/rev", {"event": "order"}, format="json"),
            "update",
            "metric",
            {"event": ["purchase", "order"]},
        ),
    ]
    for call, action, object_type, expected in steps:
        before = last_id()
        response = call()
        assert response.status_code in (200, 201), (action, response.content)
        entry = one_new_entry(before)
        assert (entry.actor_type, entry.actor_name) == ("api_key", "test"), action
        assert (entry.action, entry.object_type) == (action, object_type)
        for field, pair in expected.items():
            assert entry.changes[field] == pair, (action, field, entry.changes)


def test_audit_api__refused_change__no_entry(api) -> None:
    make_experiment("exp")  # running
    before = last_id()
    response = api.patch("/api/v1/experiments/exp", {"seed": "other"}, format="json")
    assert response.status_code == 400
    assert api.post("/api/v1/experiments/exp/start").status_code == 409
    assert last_id() == before


def test_audit_api__no_op_patch__no_entry(api) -> None:
    make_experiment("exp", start=False)
    before = last_id()
    assert api.patch("/api/v1/experiments/exp", {}, format="json").status_code == 200
    assert last_id() == before


def test_audit_list__filters_order_and_contract_shape(api) -> None:
    make_experiment("a", start=False)
    make_experiment("b", start=False)
    api.post("/api/v1/experiments/a/start")
    api.post("/api/v1/experiments/b/start")
    api.post("/api/v1/experiments/a/pause")
    # Newest first, only experiment a's, in the contract's shape
    body = api.get("/api/v1/audit?experiment=a").json()
    assert [e["action"] for e in body][:2] == ["pause", "start"]
    assert {e["object"]["key"] for e in body} == {"a"}
    assert set(body[0]) == {"id", "at", "actor", "action", "object", "changes", "reason"}
    assert body[0]["actor"] == {"type": "api_key", "name": "test"}
    assert body[0]["object"] == {"type": "experiment", "key": "a"}
    # limit, since
    assert len(api.get("/api/v1/audit?limit=1").json()) == 1
    future = (timezone.now() + timedelta(hours=1)).isoformat()
    assert api.get("/api/v1/audit", {"since": future}).json() == []


@pytest.mark.parametrize(
    ("query", "field"), [("since=yesterday", "since"), ("limit=0", "limit"), ("limit=x", "limit")]
)
def test_audit_list__bad_query__400_naming_field(api, query, field) -> None:
    response = api.get(f"/api/v1/audit?{query}")
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]


def test_audit_list__needs_read_scope(make_api_client) -> None:
    assert make_api_client("assign").get("/api/v1/audit").status_code == 403


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_audit_api__no_write_method(api, method) -> None:
    assert getattr(api, method)("/api/v1/audit", {}, format="json").status_code == 405


def test_audit_admin__add_change_delete_refused_list_and_view_allowed(admin_client) -> None:
    entry = audit_record(action="start", object_type="experiment", object_key="x")
    base = "/admin/audit/auditentry/"
    assert admin_client.get(base).status_code == 200
    assert admin_client.get(f"{base}{entry.pk}/change/").status_code == 200  # view only
    assert admin_client.get(f"{base}add/").status_code == 403
    assert admin_client.post(f"{base}{entry.pk}/change/", {"action": "x"}).status_code == 403
    assert admin_client.post(f"{base}{entry.pk}/delete/", {"post": "yes"}).status_code == 403
    bulk = {"action": "delete_selected", "_selected_action": [entry.pk], "post": "yes"}
    admin_client.post(base, bulk)
    entry.refresh_from_db()
    assert entry.action == "start"


def test_audit_model__save_delete_update__refused() -> None:
    entry = audit_record(action="start", object_type="experiment", object_key="x")
    entry.action = "forged"
    with pytest.raises(AppendOnlyError):
        entry.save()
    with pytest.raises(AppendOnlyError):
        entry.delete()
    with pytest.raises(AppendOnlyError):
        AuditEntry.objects.filter(pk=entry.pk).update(action="forged")
    with pytest.raises(AppendOnlyError):
        AuditEntry.objects.all().delete()
    assert AuditEntry.objects.get(pk=entry.pk).action == "start"


def test_audit_database__raw_update__refused_on_postgresql() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("the trigger is PostgreSQL's; SQLite relies on the model guards")
    from django.db import DatabaseError, transaction

    entry = audit_record(action="start", object_type="experiment", object_key="x")
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE audit_auditentry SET action = 'x' WHERE id = %s", [entry.pk])
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM audit_auditentry WHERE id = %s", [entry.pk])


def admin_entry(admin_client, since: int) -> AuditEntry:
    entry = one_new_entry(since)
    assert (entry.actor_type, entry.actor_name) == ("user", "admin")
    return entry


def test_audit_admin__experiment_add_change_move_action__one_entry_each(admin_client) -> None:
    # add
    before = last_id()
    admin_client.post(
        "/admin/experiments/experiment/add/",
        add_form("new", [("control", 0.5, True), ("treatment", 0.5, False)]),
    )
    entry = admin_entry(admin_client, before)
    assert entry.action == "create" and entry.changes["key"] == [None, "new"]
    assert len(entry.changes["variants"][1]) == 2
    experiment = Experiment.objects.get(key="new")
    # change (name), inlines re-posted unchanged
    data = add_form("new", [("control", 0.5, True), ("treatment", 0.5, False)])
    data["name"] = "Renamed"
    ids = list(experiment.variants.order_by("position").values_list("id", flat=True))
    data.update(
        {
            "variants-INITIAL_FORMS": "2",
            "variants-0-id": str(ids[0]),
            "variants-1-id": str(ids[1]),
            "variants-0-experiment": str(experiment.pk),
            "variants-1-experiment": str(experiment.pk),
        }
    )
    before = last_id()
    response = admin_client.post(f"/admin/experiments/experiment/{experiment.pk}/change/", data)
    assert response.status_code == 302, response.context["errors"] if response.context else ""
    entry = admin_entry(admin_client, before)
    assert entry.action == "update" and entry.changes == {"name": ["new", "Renamed"]}
    # start button
    before = last_id()
    admin_client.post(f"/admin/experiments/experiment/{experiment.pk}/move/start/")
    entry = admin_entry(admin_client, before)
    assert entry.action == "start" and entry.changes["status"] == ["draft", "running"]
    # bulk action: one entry per experiment moved
    other = make_experiment("other")
    before = last_id()
    admin_client.post(
        "/admin/experiments/experiment/",
        {"action": "pause_selected", "_selected_action": [experiment.pk, other.pk]},
    )
    entries = AuditEntry.objects.filter(pk__gt=before)
    assert sorted(e.object_key for e in entries) == ["new", "other"]
    assert {(e.action, e.actor_name) for e in entries} == {("pause", "admin")}


def test_audit_admin__metric_layer_api_key__create_change_delete(admin_client) -> None:
    before = last_id()
    admin_client.post(
        "/admin/experiments/metric/add/",
        {
            "key": "m",
            "name": "M",
            "event": "buy",
            "aggregation": "conversion",
            "direction": "increase",
            "cuped_lookback_days": "14",
        },
    )
    assert admin_entry(admin_client, before).changes["event"] == [None, "buy"]
    layer = LayerFactory(key="l")
    before = last_id()
    admin_client.post(
        f"/admin/experiments/layer/{layer.pk}/change/", {"name": "New", "description": ""}
    )
    entry = admin_entry(admin_client, before)
    assert entry.action == "update" and entry.changes["name"][1] == "New"
    before = last_id()
    admin_client.post(
        "/admin/experiments/apikey/add/", {"name": "k", "scopes": ["read"], "is_active": "on"}
    )
    assert admin_entry(admin_client, before).object_type == "api_key"
    key = ApiKey.objects.get(name="k")
    before = last_id()
    admin_client.post(
        f"/admin/experiments/apikey/{key.pk}/change/", {"name": "k", "scopes": ["read"]}
    )
    entry = admin_entry(admin_client, before)
    assert entry.action == "revoke" and entry.changes == {"is_active": [True, False]}
    before = last_id()
    admin_client.post(f"/admin/experiments/layer/{layer.pk}/delete/", {"post": "yes"})
    entry = admin_entry(admin_client, before)
    assert entry.action == "delete" and entry.changes["key"] == ["l", None]


def test_create_api_key_command__entry_by_command_actor() -> None:
    from django.core.management import call_command

    before = last_id()
    call_command("create_api_key", "--name", "ci", "--scopes", "read", stdout=StringIO())
    entry = one_new_entry(before)
    assert entry.actor_type == "system" and "create_api_key" in entry.actor_name
    assert "hashed_key" not in entry.changes


def test_history_view__experiment__lists_its_entries(admin_client, api) -> None:
    experiment = make_experiment("h", start=False)
    api.post("/api/v1/experiments/h/start")
    response = admin_client.get(f"/admin/experiments/experiment/{experiment.pk}/history/")
    assert response.status_code == 200
    content = response.content.decode()
    assert 'id="audit-history"' in content and "start" in content and "test" in content
