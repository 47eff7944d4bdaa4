"""Manual rollback (docs/api.md §10): the API, the admin button, the audit entry, and what the
assignment engine serves afterwards."""

from __future__ import annotations

import pytest

from audit.models import AuditEntry
from experiments import services
from experiments.models import Variant
from tests.factories import make_experiment, staff_client

pytestmark = pytest.mark.django_db

THREE_ARMS = [
    {"key": "control", "weight": 0.34, "is_control": True, "payload": {"model": "v1"}},
    {"key": "fast", "weight": 0.33, "payload": {"model": "v2-fast"}},
    {"key": "big", "weight": 0.33, "payload": {"model": "v2-big"}},
]
URL = "/api/v1/experiments/{key}/variants/{variant}/rollback"


def rollback(client, key: str = "exp", variant: str = "treatment", body: dict | None = None):
    body = {"reason": "p95 latency up 40 %"} if body is None else body
    return client.post(URL.format(key=key, variant=variant), body, format="json")


def test_rollback_api__treatment__rolled_back_audited_and_returned(
    api, django_capture_on_commit_callbacks
) -> None:
    # Given a running experiment
    make_experiment("exp")
    # When its treatment is rolled back
    with django_capture_on_commit_callbacks(execute=True):
        response = rollback(api)
    # Then the experiment JSON shows it, and the database holds it
    assert response.status_code == 200, response.content
    variants = {v["key"]: v for v in response.json()["variants"]}
    assert variants["treatment"]["rolled_back_at"] is not None
    assert variants["treatment"]["rolled_back_reason"] == "p95 latency up 40 %"
    assert variants["control"]["rolled_back_at"] is None
    assert variants["control"]["rolled_back_reason"] is None
    stored = Variant.objects.get(experiment__key="exp", key="treatment")
    assert stored.rolled_back_at is not None and stored.rolled_back_reason == "p95 latency up 40 %"
    # And one audit entry with action rollback, the key as actor and the reason
    entry = AuditEntry.objects.get(action="rollback")
    assert (entry.actor_type, entry.actor_name) == ("api_key", "test")
    assert entry.experiment_key == "exp" and entry.reason == "p95 latency up 40 %"
    assert entry.changes["variants.treatment.rolled_back_at"][0] is None
    audit = api.get("/api/v1/audit?experiment=exp").json()
    assert audit[0]["action"] == "rollback" and audit[0]["reason"] == "p95 latency up 40 %"
    # And GET shows the same
    detail = api.get("/api/v1/experiments/exp").json()
    assert detail["variants"][1]["rolled_back_reason"] == "p95 latency up 40 %"


def test_rollback_api__control__400_naming_variant(api) -> None:
    make_experiment("exp")
    response = rollback(api, variant="control")
    assert response.status_code == 400
    assert "variant" in response.json()["error"]["fields"]
    assert not Variant.objects.filter(rolled_back_at__isnull=False).exists()
    assert not AuditEntry.objects.filter(action="rollback").exists()


@pytest.mark.parametrize("body", [{}, {"reason": ""}, {"reason": "   "}, {"reason": ["x"]}])
def test_rollback_api__no_reason__400_naming_reason(api, body) -> None:
    make_experiment("exp")
    response = rollback(api, body=body)
    assert response.status_code == 400
    assert "reason" in response.json()["error"]["fields"]
    assert not Variant.objects.filter(rolled_back_at__isnull=False).exists()


def test_rollback_api__twice__409_and_first_reason_kept(api) -> None:
    make_experiment("exp")
    assert rollback(api).status_code == 200
    response = rollback(api, body={"reason": "again"})
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "already_rolled_back"
    assert Variant.objects.get(key="treatment").rolled_back_reason == "p95 latency up 40 %"
    assert AuditEntry.objects.filter(action="rollback").count() == 1


@pytest.mark.parametrize("state", ["draft", "stopped"])
def test_rollback_api__not_running_or_paused__409(api, state) -> None:
    experiment = make_experiment("exp", start=state != "draft")
    if state == "stopped":
        services.experiment_stop(experiment=experiment)
    response = rollback(api)
    assert response.status_code == 409
    assert "status" in response.json()["error"]["fields"]
    assert not Variant.objects.filter(rolled_back_at__isnull=False).exists()


def test_rollback_api__paused__allowed(api) -> None:
    services.experiment_pause(experiment=make_experiment("exp"))
    assert rollback(api).status_code == 200


def test_rollback_api__unknown_experiment_or_variant__404(api) -> None:
    make_experiment("exp")
    assert rollback(api, key="nope").status_code == 404
    response = rollback(api, variant="nope")
    assert response.status_code == 404
    assert "variant" in response.json()["error"]["fields"]


def test_rollback_api__auth__401_without_key_403_without_write(make_api_client) -> None:
    from rest_framework.test import APIClient

    make_experiment("exp")
    assert rollback(APIClient()).status_code == 401
    assert rollback(make_api_client("read", "assign")).status_code == 403
    assert not Variant.objects.filter(rolled_back_at__isnull=False).exists()


def test_rollback__assign_2000_units__only_that_arms_units_move_to_control(
    api, django_capture_on_commit_callbacks, settings
) -> None:
    # Given caches that look at the config version on every request (so the version bump of
    # the rollback, not a cache flush, is what makes /assign see it)
    settings.VARIANTLAB_CONFIG_POLL_SECONDS = 0
    # And a running three-arm experiment and 2,000 units' answers from POST /assign
    make_experiment("exp", variants=THREE_ARMS)
    units = [f"user-{i}" for i in range(2000)]

    def answers() -> dict[str, dict]:
        return {
            unit: api.post(
                "/api/v1/assign",
                {"unit_id": unit, "experiments": ["exp"], "log_exposure": False},
                format="json",
            ).json()["assignments"]["exp"]
            for unit in units
        }

    before = answers()
    assert {a["variant"] for a in before.values()} == {"control", "fast", "big"}
    # When the "big" arm is rolled back (the commit bumps the config version)
    with django_capture_on_commit_callbacks(execute=True):
        assert rollback(api, variant="big").status_code == 200
    after = answers()
    # Then exactly big's units get the control, with reason rolled_back, not in experiment
    for unit in units:
        if before[unit]["variant"] == "big":
            assert after[unit] == {
                "variant": "control",
                "payload": {"model": "v1"},
                "in_experiment": False,
                "reason": "rolled_back",
            }, unit
        else:
            # And nobody else moves
            assert after[unit] == before[unit], unit
    moved = sum(a["variant"] == "big" for a in before.values())
    assert 500 < moved < 850


def test_rollback_admin__button_with_reason__rolled_back_by_user(
    django_capture_on_commit_callbacks,
) -> None:
    # Given a running experiment and an Experimenter
    experiment = make_experiment("exp")
    client = staff_client("Experimenter")
    page = client.get(f"/admin/experiments/experiment/{experiment.pk}/change/")
    rollback_url = f"/admin/experiments/experiment/{experiment.pk}/rollback/treatment/"
    assert rollback_url in page.content.decode()
    assert f"/admin/experiments/experiment/{experiment.pk}/rollback/control/" not in (
        page.content.decode()
    )
    # When the button is pressed with a reason
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(rollback_url, {"reason": "errors doubled"})
    # Then the variant is rolled back and the user is the audit actor
    assert response.status_code == 302
    variant = Variant.objects.get(key="treatment")
    assert variant.rolled_back_reason == "errors doubled"
    entry = AuditEntry.objects.get(action="rollback")
    assert (entry.actor_type, entry.actor_name) == ("user", "u-Experimenter")
    # And the page now tells who-what-why instead of offering the button
    page = client.get(f"/admin/experiments/experiment/{experiment.pk}/change/").content.decode()
    assert "errors doubled" in page and rollback_url not in page


def test_rollback_admin__no_reason__refused_with_message() -> None:
    experiment = make_experiment("exp")
    client = staff_client("Experimenter")
    url = f"/admin/experiments/experiment/{experiment.pk}/rollback/treatment/"
    response = client.post(url, {"reason": ""}, follow=True)
    assert "Say why" in response.content.decode()
    assert Variant.objects.get(key="treatment").rolled_back_at is None


def test_rollback_admin__viewer__403_nothing_changed() -> None:
    experiment = make_experiment("exp")
    url = f"/admin/experiments/experiment/{experiment.pk}/rollback/treatment/"
    response = staff_client("Viewer").post(url, {"reason": "x"})
    assert response.status_code == 403
    assert Variant.objects.get(key="treatment").rolled_back_at is None
    assert not AuditEntry.objects.filter(action="rollback").exists()
