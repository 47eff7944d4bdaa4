"""Shipping and archiving (docs/api.md §13): a stopped experiment with a shipped variant keeps
serving it to every unit in /assign, /config and /features until it is archived; an archived
experiment is served nowhere."""

from __future__ import annotations

import pytest
from django.urls import reverse
from growthbook import GrowthBook

from audit.models import AuditEntry
from events.models import Exposure, ExposureEvent
from experiments import services
from experiments.models import Experiment, Status
from tests.factories import TWO_ARMS, make_experiment, staff_client

pytestmark = pytest.mark.django_db

UNITS = 300
TREATMENT = TWO_ARMS[1]["payload"]


def assign(api, unit: str, experiments: list[str] | None = None):
    body: dict = {"unit_id": unit}
    if experiments is not None:
        body["experiments"] = experiments
    return api.post("/api/v1/assign", body, format="json")


def features_sdk(api, unit: str) -> GrowthBook:
    """An unmodified GrowthBook SDK fed this server's /features."""
    return GrowthBook(
        attributes={"id": unit}, features=api.get("/api/v1/features").json()["features"]
    )


def shipped_experiment() -> Experiment:
    # A running experiment (half the units in each arm) stopped with its treatment shipped
    return services.experiment_stop(
        experiment=make_experiment("ranker"), shipped_variant="treatment"
    )


def test_shipped__every_unit__shipped_variant_everywhere_no_exposure(api) -> None:
    # Given a stopped experiment that shipped its treatment
    shipped_experiment()
    config = api.get("/api/v1/config").json()["experiments"]
    # When every unit asks, by default and by name, and an SDK reads /features
    for i in range(UNITS):
        unit = f"u-{i}"
        default = assign(api, unit).json()
        named = assign(api, unit, ["ranker"]).json()
        # Then each gets the shipped variant with reason shipped, not in the experiment
        expected = {
            "variant": "treatment",
            "payload": TREATMENT,
            "in_experiment": False,
            "reason": "shipped",
        }
        assert default["assignments"] == {"ranker": expected}
        assert named["assignments"] == {"ranker": expected} and named["unknown"] == []
        result = features_sdk(api, unit).eval_feature("ranker")
        assert result.value == TREATMENT and result.source == "force"
    # And /config lists it, stopped with its shipped variant
    assert [(e["key"], e["status"], e["shipped_variant"]) for e in config] == [
        ("ranker", "stopped", "treatment")
    ]
    # And no exposure was logged for any of those answers
    assert Exposure.objects.count() == 0 and ExposureEvent.objects.count() == 0


def test_archive__shipped_experiment__served_nowhere_audited_config_changed(
    api, settings, django_capture_on_commit_callbacks
) -> None:
    # Given a shipped experiment beside a running one, the ETags apps hold, and web processes
    # that look at the config version on every request
    settings.VARIANTLAB_CONFIG_POLL_SECONDS = 0
    shipped_experiment()
    make_experiment("other")
    config_etag = api.get("/api/v1/config")["ETag"]
    features_etag = api.get("/api/v1/features")["ETag"]
    # When it is archived through the API
    with django_capture_on_commit_callbacks(execute=True):  # the version bump is on commit
        response = api.post(
            "/api/v1/experiments/ranker/archive", {"reason": "rolled out"}, format="json"
        )
    # Then it is archived, with one audit entry naming the move and the reason
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "archived"
    assert response.json()["shipped_variant"] == "treatment"  # the record stays
    assert Experiment.objects.get(key="ranker").status == Status.ARCHIVED
    entry = AuditEntry.objects.get(action="archive")
    assert (entry.object_key, entry.changes, entry.reason) == (
        "ranker",
        {"status": ["stopped", "archived"]},
        "rolled out",
    )
    assert entry.actor_type == "api_key"
    # And /config and /features changed (new ETag) and no longer list it
    config = api.get("/api/v1/config", HTTP_IF_NONE_MATCH=config_etag)
    features = api.get("/api/v1/features", HTTP_IF_NONE_MATCH=features_etag)
    assert config.status_code == 200 and features.status_code == 200
    assert [e["key"] for e in config.json()["experiments"]] == ["other"]
    assert sorted(features.json()["features"]) == ["other"]
    # And /assign leaves it out of the default set; named, it is unknown
    for i in range(UNITS):
        assert sorted(assign(api, f"u-{i}").json()["assignments"]) == ["other"]
        named = assign(api, f"u-{i}", ["ranker"]).json()
        assert named["assignments"] == {} and named["unknown"] == ["ranker"]
        # And an SDK fed /features falls back to its own default
        assert features_sdk(api, f"u-{i}").eval_feature("ranker").source == "unknownFeature"


def test_archive__stopped_without_shipped_variant__archived(api) -> None:
    services.experiment_stop(experiment=make_experiment("plain"))
    assert api.post("/api/v1/experiments/plain/archive").json()["status"] == "archived"
    assert assign(api, "u-1", ["plain"]).json()["unknown"] == ["plain"]


@pytest.mark.parametrize("status", ["draft", "running", "paused", "archived"])
def test_archive__not_stopped__409_nothing_changed(api, status) -> None:
    # Given an experiment in a status other than stopped
    experiment = make_experiment("exp", start=status != "draft")
    if status == "paused":
        services.experiment_pause(experiment=experiment)
    if status == "archived":
        services.experiment_archive(experiment=services.experiment_stop(experiment=experiment))
    entries = AuditEntry.objects.count()
    # When it is archived
    response = api.post("/api/v1/experiments/exp/archive")
    # Then 409 naming the status, and nothing moved or was recorded
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "invalid_status_change"
    assert "status" in response.json()["error"]["fields"]
    assert Experiment.objects.get(key="exp").status == status
    assert AuditEntry.objects.count() == entries


def test_archive__refusals__404_403_400(api, make_api_client) -> None:
    shipped_experiment()
    assert api.post("/api/v1/experiments/nope/archive").status_code == 404
    assert make_api_client("read").post("/api/v1/experiments/ranker/archive").status_code == 403
    bad = api.post("/api/v1/experiments/ranker/archive", {"reason": ["x"]}, format="json")
    assert bad.status_code == 400 and "reason" in bad.json()["error"]["fields"]
    assert Experiment.objects.get(key="ranker").status == Status.STOPPED


@pytest.mark.parametrize("status", ["archived"])
def test_archived__patch_or_restart__409(api, status) -> None:
    # Given an archived experiment: final
    services.experiment_archive(experiment=shipped_experiment())
    # When it is edited, started or stopped again, Then each is refused
    assert api.patch("/api/v1/experiments/ranker", {"name": "x"}, format="json").status_code == 409
    for move in ("start", "pause", "stop"):
        assert api.post(f"/api/v1/experiments/ranker/{move}").status_code == 409, move
    assert Experiment.objects.get(key="ranker").name == "Experiment ranker"


@pytest.fixture
def experimenter():
    return staff_client("Experimenter", username="exp-user")


def test_admin__archive_button_and_action__through_the_service(experimenter, api) -> None:
    # Given two stopped experiments and a running one
    first, second = (
        shipped_experiment(),
        services.experiment_stop(experiment=make_experiment("second")),
    )
    running = make_experiment("running")
    # When an Experimenter presses "Archive" on the first, and runs the bulk action on the rest
    page = experimenter.get(reverse("admin:experiments_experiment_change", args=[first.pk]))
    assert b"vl-move-archive" in page.content
    experimenter.post(reverse("admin:experiments_experiment_move", args=[first.pk, "archive"]))
    experimenter.post(
        reverse("admin:experiments_experiment_changelist"),
        {"action": "archive_selected", "_selected_action": [second.pk, running.pk]},
    )
    # Then the stopped ones are archived with one audit entry each, by that user
    statuses = dict(Experiment.objects.values_list("key", "status"))
    assert statuses == {"ranker": "archived", "second": "archived", "running": "running"}
    entries = AuditEntry.objects.filter(action="archive").order_by("object_key")
    assert [(e.object_key, e.actor_type, e.actor_name) for e in entries] == [
        ("ranker", "user", "exp-user"),
        ("second", "user", "exp-user"),
    ]
    # And the archived page is read-only, with no more moves to offer
    page = experimenter.get(reverse("admin:experiments_experiment_change", args=[first.pk]))
    assert b"vl-move-" not in page.content
    assert b"Archived: no longer served" in page.content
    assert sorted(assign(api, "u-1").json()["assignments"]) == ["running"]
