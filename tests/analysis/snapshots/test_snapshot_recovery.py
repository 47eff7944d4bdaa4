"""Stuck snapshots are recovered (docs/api.md §11): by beat and on the next POST .../analyze."""

from __future__ import annotations

from datetime import timedelta
from unittest import mock

import pytest
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerError

from analysis import services
from analysis.models import Snapshot, SnapshotComparison, SnapshotState
from tests.factories import DeadLetterFactory, SnapshotFactory, make_experiment

pytestmark = pytest.mark.django_db

TIMEOUT = 300


@pytest.fixture(autouse=True)
def _timeout(settings) -> None:
    settings.VARIANTLAB_SNAPSHOT_RECOVERY_SECONDS = TIMEOUT


def aged(state: str, seconds: float, key: str = "exp") -> Snapshot:
    """A snapshot of a new experiment, `state` since `seconds` ago."""
    experiment = make_experiment(key)
    since = timezone.now() - timedelta(seconds=seconds)
    snapshot = SnapshotFactory(experiment=experiment, state=state)
    started = since if state == SnapshotState.RUNNING else None
    Snapshot.objects.filter(pk=snapshot.pk).update(requested_at=since, started_at=started)
    snapshot.refresh_from_db()
    return snapshot


def test_recover__running_past_timeout__failed_and_replaced_by_a_computed_one(
    django_capture_on_commit_callbacks,
) -> None:
    # Given a snapshot whose worker died while it ran, longer ago than the timeout
    stuck = aged(SnapshotState.RUNNING, TIMEOUT + 1)
    # When beat's recovery runs (tasks run eagerly here, as a worker would)
    with django_capture_on_commit_callbacks(execute=True):
        services.snapshots_recover()
    # Then the stuck one is failed, saying why, and a new one is computed
    stuck.refresh_from_db()
    assert stuck.state == SnapshotState.FAILED and "recovered" in stuck.error
    replacement = Snapshot.objects.exclude(pk=stuck.pk).get()
    assert replacement.state == SnapshotState.DONE
    assert replacement.results is not None


@pytest.mark.parametrize("state", [SnapshotState.RUNNING, SnapshotState.QUEUED])
def test_recover__active_within_timeout__left_alone(state) -> None:
    snapshot = aged(state, TIMEOUT - 30)
    with mock.patch("analysis.tasks.snapshot_compute_task.delay") as publish:
        assert services.snapshots_recover() == []
    publish.assert_not_called()
    snapshot.refresh_from_db()
    assert snapshot.state == state
    assert Snapshot.objects.count() == 1


def test_recover__queued_past_timeout__re_published_once_per_run() -> None:
    # Given a queued snapshot whose task was lost (published before the broker lost it)
    stuck = aged(SnapshotState.QUEUED, TIMEOUT + 1)
    # When recovery runs
    with mock.patch("analysis.tasks.snapshot_compute_task.delay") as publish:
        recovered = services.snapshots_recover()
    # Then the same snapshot is published again, nothing else created
    publish.assert_called_once_with(stuck.pk)
    assert recovered == [stuck]
    assert Snapshot.objects.count() == 1


def test_analyze__stuck_running__new_snapshot_queued_and_old_failed(api) -> None:
    # Given a snapshot stuck running
    stuck = aged(SnapshotState.RUNNING, TIMEOUT + 1)
    # When someone asks for a snapshot
    response = api.post("/api/v1/experiments/exp/analyze")
    # Then a new snapshot is queued (on_commit does not fire inside this test's transaction)
    assert response.status_code == 202
    assert response.json()["snapshot_id"] != stuck.pk
    assert response.json()["state"] == "queued"
    stuck.refresh_from_db()
    assert stuck.state == SnapshotState.FAILED


def test_analyze__running_within_timeout__joined(api) -> None:
    running = aged(SnapshotState.RUNNING, 5)
    response = api.post("/api/v1/experiments/exp/analyze")
    assert response.json() == {"snapshot_id": running.pk, "state": "running"}


def test_analyze__broker_down_at_commit__202_queued_then_recovered(
    api, django_capture_on_commit_callbacks
) -> None:
    # Given a broker that refuses the task
    make_experiment("exp")
    refused = mock.patch(
        "analysis.tasks.snapshot_compute_task.delay", side_effect=BrokerError("down")
    )
    # When a snapshot is requested
    with refused, django_capture_on_commit_callbacks(execute=True):
        response = api.post("/api/v1/experiments/exp/analyze")
    # Then the request is still accepted, and the snapshot waits queued
    assert response.status_code == 202
    snapshot = Snapshot.objects.get(pk=response.json()["snapshot_id"])
    assert snapshot.state == SnapshotState.QUEUED
    # And once it is older than the timeout, recovery publishes it and it is computed
    Snapshot.objects.filter(pk=snapshot.pk).update(
        requested_at=timezone.now() - timedelta(seconds=TIMEOUT + 1)
    )
    services.snapshots_recover()
    snapshot.refresh_from_db()
    assert snapshot.state == SnapshotState.DONE


def test_compute__recovered_while_running__slow_worker_drops_its_result() -> None:
    # Given a snapshot a slow worker is computing, judged stuck by recovery meanwhile
    experiment = make_experiment("exp")
    snapshot = SnapshotFactory(experiment=experiment)
    real_analyse = services._analyse

    def slow_analyse(claimed: Snapshot):
        outcome = real_analyse(claimed)
        later = timezone.now() + timedelta(seconds=TIMEOUT + 1)
        assert (
            services.snapshot_recover(snapshot=Snapshot.objects.get(pk=claimed.pk), now=later)
            is None
        )
        return outcome

    # When the slow worker finishes
    with mock.patch("analysis.services._analyse", side_effect=slow_analyse):
        assert services.snapshot_compute(snapshot_id=snapshot.pk) is None
    # Then its result is dropped: the snapshot stays failed, no comparison rows written
    snapshot.refresh_from_db()
    assert snapshot.state == SnapshotState.FAILED and snapshot.results is None
    assert not SnapshotComparison.objects.filter(snapshot=snapshot).exists()


def test_readyz__pending_snapshot__reports_its_age_and_dead_letters(client) -> None:
    assert client.get("/readyz").json()["backlog"] == {
        "oldest_pending_snapshot_seconds": None,
        "dead_letters": 0,
    }
    aged(SnapshotState.QUEUED, 120)
    DeadLetterFactory(task_name="t", payload={}, error="e")
    backlog = client.get("/readyz").json()["backlog"]
    assert 120 <= backlog["oldest_pending_snapshot_seconds"] < 180
    assert backlog["dead_letters"] == 1


def test_admin_index__backlog__oldest_pending_snapshot_and_dead_letters(admin_client) -> None:
    aged(SnapshotState.QUEUED, 120)
    DeadLetterFactory(task_name="t", payload={}, error="e")
    content = admin_client.get("/admin/").content.decode()
    row = content[content.index('id="vl-backlog"') :]
    row = row[: row.index("</tr>")]
    assert "Oldest pending snapshot:" in row and " s" in row
    assert ">1</a>" in row
