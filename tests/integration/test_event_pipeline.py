"""The event pipeline with real processes: exactly once through retries, kills and outages."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request

import pytest
from django.db import connection

from events.models import Exposure, ExposureEvent, Outcome
from experiments import services
from tests.factories import make_experiment
from tests.integration.conftest import wait_until

pytestmark = pytest.mark.integration


def outcomes(start: int, count: int, prefix: str = "o") -> list[dict]:
    return [
        {
            "type": "outcome",
            "unit_id": f"u{i % 997}",
            "name": "purchase",
            "value": i % 7,
            "event_id": f"{prefix}-{i}",
            "timestamp": "2026-11-01T12:00:00Z",
        }
        for i in range(start, start + count)
    ]


def http_post(base_url: str, key: str, events: list[dict]) -> tuple[int, dict]:
    request = urllib.request.Request(
        f"{base_url}/api/v1/events",
        data=json.dumps({"events": events}).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)
    except OSError as error:  # the server itself is unreachable: the client retries too
        return 0, {"error": str(error)}


@pytest.fixture
def raw_key(transactional_db) -> str:
    return services.api_key_create(name="it", scopes=["all"])[1]


def test_events__duplicates_and_bad_items__real_worker_stores_each_valid_once(
    api, celery_worker
) -> None:
    # Given a running experiment and a batch with a bad item
    make_experiment("ranker")
    batch = [
        *outcomes(0, 300),
        {"type": "outcome", "unit_id": "u"},
        {
            "type": "exposure",
            "unit_id": "u1",
            "experiment": "ranker",
            "variant": "control",
            "event_id": "x-1",
        },
        {"type": "exposure", "unit_id": "u1", "experiment": "gone", "variant": "control"},
    ]
    # When it is posted twice, then again spread over several requests
    for _ in range(2):
        response = api.post("/api/v1/events", {"events": batch}, format="json")
        assert response.status_code == 202
        assert response.json()["accepted"] == 301
        assert [r["index"] for r in response.json()["rejected"]] == [300, 302]
    for start in range(0, 300, 70):
        api.post("/api/v1/events", {"events": batch[start : start + 70]}, format="json")
    # Then the worker stores each valid event once
    assert wait_until(lambda: Outcome.objects.count() >= 300 and Exposure.objects.exists())
    time.sleep(1)  # let any duplicate task finish before counting
    assert Outcome.objects.count() == 300
    assert ExposureEvent.objects.count() == 1 and Exposure.objects.get().exposure_count == 1


def test_worker_killed_mid_stream__every_event_stored_exactly_once(api, workers) -> None:
    # Given a worker whose unfinished tasks are redelivered 5 s after it dies
    short = {"CELERY_VISIBILITY_TIMEOUT": "5", "CELERY_UNACKED_RESTORE_INTERVAL": "1"}
    first = workers("doomed", extra_env=short).start()
    # When 20,000 events are posted in 40 batches and the worker is killed -9 midway
    for start in range(0, 20_000, 500):
        assert (
            api.post("/api/v1/events", {"events": outcomes(start, 500)}, format="json").status_code
            == 202
        )
        if start == 5_000:
            assert wait_until(lambda: Outcome.objects.count() > 0, timeout=30)
            first.kill()
    stored_at_kill = Outcome.objects.count()
    assert stored_at_kill < 20_000, "the worker finished before it was killed: not a fault test"
    # And a new worker starts
    workers("survivor", extra_env=short).start()
    # Then every event is stored, exactly once
    assert wait_until(lambda: Outcome.objects.count() >= 20_000, timeout=120, interval=0.5), (
        Outcome.objects.count()
    )
    time.sleep(2)
    assert Outcome.objects.count() == 20_000
    assert Outcome.objects.values("event_id").distinct().count() == 20_000


def test_broker_channel__restore_mutex__lapses_within_the_visibility_timeout() -> None:
    # Given the broker connection the workers open, with the service's transport options
    from config.celery import app

    with app.connection_for_write() as connection:
        channel = connection.default_channel
        # Then kombu's Redis channel took the options: the restore mutex of a worker killed
        # while holding it lapses no later than the visibility timeout, not after 300 s, so the
        # survivor redelivers the dead worker's tasks (the test above) in seconds
        assert (
            channel.visibility_timeout == app.conf.broker_transport_options["visibility_timeout"]
        )
        assert channel.unacked_mutex_expire <= channel.visibility_timeout
        assert channel.unacked_mutex_expire < 300


def test_redis_stopped_while_posting__503_not_lost(raw_key, own_redis, web_server, workers):
    # Given web and worker processes on a Redis of the test's own (persisting to disk)
    broker = {
        "CELERY_BROKER_URL": own_redis.url,
        "REDIS_URL": own_redis.url,
        "CELERY_VISIBILITY_TIMEOUT": "5",
    }
    server = web_server(workers=1, extra_env=broker)
    workers("w", extra_env=broker).start()
    batches = [outcomes(i * 100, 100, prefix="r") for i in range(30)]
    statuses: list[int] = []
    # When Redis stops after 10 batches and comes back 10 batches later
    pending = []
    for index, batch in enumerate(batches):
        if index == 10:
            own_redis.stop()
        if index == 20:
            own_redis.start()
        status, _ = http_post(server.url, raw_key, batch)
        statuses.append(status)
        if status != 202:
            pending.append(batch)
    # Then the API refused (503) rather than accepting while Redis was down
    assert statuses[:10] == [202] * 10
    assert all(s == 503 for s in statuses[10:20]), statuses
    # And once clients retry what was refused, every event is stored exactly once
    for batch in pending:
        assert wait_until(lambda b=batch: http_post(server.url, raw_key, b)[0] == 202, timeout=30)
    assert wait_until(lambda: Outcome.objects.count() >= 3000, timeout=120, interval=0.5), (
        Outcome.objects.count()
    )
    time.sleep(2)
    assert Outcome.objects.count() == 3000


def restart_postgresql() -> None:
    version = subprocess.run(["ls", "/etc/postgresql"], capture_output=True, text=True).stdout
    subprocess.run(
        [
            "pg_ctlcluster",
            "--skip-systemctl-redirect",
            version.split()[0],
            "main",
            "restart",
            "-m",
            "fast",
        ],
        check=True,
        timeout=120,
    )


def test_postgresql_restarted_under_load__nothing_accepted_is_lost(
    raw_key, web_server, workers
) -> None:
    # Given web and worker processes on PostgreSQL
    server = web_server(workers=1)
    workers("w").start()
    accepted = 0
    # When PostgreSQL restarts in the middle of a stream of 40 batches
    for index in range(40):
        if index == 15:
            restart_postgresql()
        status, body = http_post(server.url, raw_key, outcomes(index * 250, 250, prefix="p"))
        assert status == 202, body  # /events needs only the broker, not the database
        accepted += body["accepted"]
    # Then the workers retry through the outage and every accepted event is stored once
    connection.close()
    assert wait_until(lambda: Outcome.objects.count() >= accepted, timeout=180, interval=1), (
        Outcome.objects.count(),
        accepted,
    )
    time.sleep(2)
    assert Outcome.objects.count() == accepted == 10_000
