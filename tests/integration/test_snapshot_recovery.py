"""Snapshot recovery with real processes (docs/api.md §11): a worker killed with kill -9 while it
computes, and a broker that is down when the snapshot is requested."""

from __future__ import annotations

import json
import urllib.request

import psycopg
import pytest
from django.db import connection

from analysis.models import Snapshot, SnapshotState
from experiments import services
from tests.factories import make_experiment
from tests.integration.conftest import wait_until

pytestmark = pytest.mark.integration

# Short enough for a test; production keeps the default (300 s, checked every 60 s).
FAST_RECOVERY = {
    "VARIANTLAB_SNAPSHOT_RECOVERY_SECONDS": "3",
    "VARIANTLAB_SNAPSHOT_RECOVERY_CHECK_SECONDS": "1",
}


def database_url() -> str:
    db = connection.settings_dict
    return (
        f"postgresql://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    )


def state_of(snapshot_id: int) -> str:
    return Snapshot.objects.values_list("state", flat=True).get(pk=snapshot_id)


def test_worker_killed_mid_compute__new_snapshot_completes(api, workers) -> None:
    # Given a worker that claims a snapshot and then waits for the exposures table, which this
    # test holds locked, so it is killed while it computes, not before or after
    make_experiment("recover")
    first_worker = workers("doomed").start()
    lock = psycopg.connect(database_url(), autocommit=False)
    lock.execute("LOCK TABLE events_exposure IN ACCESS EXCLUSIVE MODE")
    try:
        stuck_id = api.post("/api/v1/experiments/recover/analyze").json()["snapshot_id"]
        assert wait_until(lambda: state_of(stuck_id) == SnapshotState.RUNNING, timeout=60)
        # When the worker is killed with kill -9 mid-compute
        first_worker.kill()
        # (Its database session, still waiting for the lock, would linger until PostgreSQL
        # notices the dead socket; end it so the test database can be dropped afterwards.)
        lock.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_locks"
            " WHERE relation = 'events_exposure'::regclass AND NOT granted"
        )
    finally:
        lock.rollback()
        lock.close()
    # And a worker with beat runs (recovery after 3 s here, 300 s by default)
    workers("survivor", extra_env=FAST_RECOVERY, beat=True).start()
    # Then the stuck snapshot is failed with the reason and a new one completes
    assert wait_until(
        lambda: Snapshot.objects.filter(
            experiment__key="recover", state=SnapshotState.DONE
        ).exists(),
        timeout=120,
        interval=0.5,
    ), list(Snapshot.objects.values_list("id", "state", "error"))
    stuck = Snapshot.objects.get(pk=stuck_id)
    assert stuck.state == SnapshotState.FAILED and "recovered" in stuck.error
    done = Snapshot.objects.get(experiment__key="recover", state=SnapshotState.DONE)
    assert done.pk != stuck_id and done.results["experiment"] == "recover"


def test_redis_stopped_while_snapshot_requested__completes_after_redis_returns(
    own_redis, web_server, workers
) -> None:
    # Given web and a worker with beat on a Redis of the test's own
    broker = {"CELERY_BROKER_URL": own_redis.url, "REDIS_URL": own_redis.url, **FAST_RECOVERY}
    raw_key = services.api_key_create(name="it", scopes=["all"])[1]
    make_experiment("outage")
    server = web_server(workers=1, extra_env=broker)
    worker = workers("w", extra_env=broker, beat=True).start()
    # (Let beat's start-up tasks finish: see the restart below.)
    assert wait_until(lambda: b"snapshots_due_task" in worker.log_path.read_bytes(), timeout=30)
    # When Redis is down while a snapshot is requested
    own_redis.stop()
    request = urllib.request.Request(
        f"{server.url}/api/v1/experiments/outage/analyze",
        data=b"",
        method="POST",
        headers={"Authorization": f"Bearer {raw_key}"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        status, body = response.status, json.load(response)
    # Then it is accepted (not a 500) and waits queued
    assert status == 202 and body["state"] == "queued"
    assert state_of(body["snapshot_id"]) == SnapshotState.QUEUED
    # And once Redis is back, it completes without anyone asking again
    own_redis.start()

    def done_with_supervisor() -> bool:
        # Celery 5 / kombu can exit with "Unrecoverable error" when the broker drops while a
        # task is in flight (here beat's own recovery task, every second), also while it
        # reconnects. Production runs workers under a supervisor that restarts them
        # (docker/compose.yml: restart), which this does; the snapshot must still complete.
        if worker.process is not None and worker.process.poll() is not None:
            worker.start()
        return state_of(body["snapshot_id"]) == SnapshotState.DONE

    assert wait_until(done_with_supervisor, timeout=120, interval=0.5), (
        Snapshot.objects.values_list("id", "state", "error").get(pk=body["snapshot_id"])
    )
