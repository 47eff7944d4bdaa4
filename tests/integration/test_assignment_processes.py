"""Assignment across real processes: gunicorn, Redis version stamp, Celery worker, PostgreSQL."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest

from events.models import Exposure
from experiments import services
from experiments.models import Experiment
from tests.factories import make_experiment
from tests.integration.conftest import wait_until

pytestmark = pytest.mark.integration


def http_assign(base_url: str, key: str, unit_id: str, **body) -> dict:
    request = urllib.request.Request(
        f"{base_url}/api/v1/assign",
        data=json.dumps({"unit_id": unit_id, "log_exposure": False, **body}).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)["assignments"]


@pytest.fixture
def raw_key(transactional_db) -> str:
    return services.api_key_create(name="it", scopes=["all"])[1]


def test_assign__exposure__written_by_a_real_worker(api, celery_worker) -> None:
    # Given a running experiment and a worker process
    make_experiment("ranker")
    # When a unit is assigned with exposure logging
    got = api.post("/api/v1/assign", {"unit_id": "w-1"}, format="json").json()
    # Then the worker (not this process) writes its exposure to PostgreSQL
    assert wait_until(lambda: Exposure.objects.filter(unit_id="w-1").exists(), timeout=30)
    assert Exposure.objects.get(unit_id="w-1").variant == got["assignments"]["ranker"]["variant"]


def test_assign__warm_cache_with_real_broker__zero_sql(
    api, celery_worker, settings, django_assert_num_queries
) -> None:
    # Given ten running experiments and a warm cache; exposures go to the real Redis broker
    settings.VARIANTLAB_CONFIG_POLL_SECONDS = 60
    for i in range(10):
        make_experiment(f"exp-{i}")
    api.post("/api/v1/assign", {"unit_id": "warm"}, format="json")
    # When units are assigned with exposure logging, Then no SQL runs in the web process
    with django_assert_num_queries(0):
        for i in range(20):
            assert (
                api.post("/api/v1/assign", {"unit_id": f"z-{i}"}, format="json").status_code == 200
            )
    assert wait_until(lambda: Exposure.objects.filter(unit_id="z-19").count() == 10, timeout=30)


def test_assign__across_processes_and_restarts__identical_variants(
    api, raw_key, web_server, broker_purged
) -> None:
    # Given experiments with uneven weights, partial coverage and hash version 1
    make_experiment(
        "weights",
        variants=[
            {"key": "control", "weight": 0.2, "is_control": True},
            {"key": "b", "weight": 0.3},
            {"key": "c", "weight": 0.5},
        ],
    )
    make_experiment("legacy", hash_version=1, coverage=0.7)
    units = [f"user-{i}" for i in range(200)]

    def variants(fetch) -> list[tuple[str, str]]:
        return [(fetch(u)["weights"]["variant"], fetch(u)["legacy"]["variant"]) for u in units]

    in_process = variants(
        lambda u: api.post(
            "/api/v1/assign", {"unit_id": u, "log_exposure": False}, format="json"
        ).json()["assignments"]
    )
    # When a separate gunicorn process with two workers answers, then is restarted
    server = web_server(workers=2)
    first = variants(lambda u: http_assign(server.url, raw_key, u))
    server.stop()
    restarted = web_server(workers=2)
    second = variants(lambda u: http_assign(restarted.url, raw_key, u))
    # Then every process gives every unit the same variants
    assert first == in_process and second == in_process
    assert {v for v, _ in in_process} == {"control", "b", "c"}


def test_config_change__reaches_another_process_within_seconds(
    raw_key, web_server, broker_purged
) -> None:
    # Given a gunicorn process serving a running experiment from its warm cache
    experiment = make_experiment("ranker")
    server = web_server(workers=1)
    assert http_assign(server.url, raw_key, "u-1")["ranker"]["reason"] == "assigned"
    # When its coverage drops to zero here (the commit bumps the Redis version stamp)
    services.experiment_save(
        data={"coverage": 0.0}, experiment=Experiment.objects.get(pk=experiment.pk)
    )
    # Then the other process serves the change once its next version check (≤ 1 s) sees it;
    # the bound is generous for a loaded CI machine, and without the stamp it would never come
    assert wait_until(
        lambda: http_assign(server.url, raw_key, "u-1")["ranker"]["reason"] == "not_in_traffic",
        timeout=10,
        interval=0.05,
    )


def test_buffered_exposures__gunicorn_and_worker__all_stored_after_graceful_stop(
    raw_key, web_server, celery_worker
) -> None:
    # Given a web process that batches exposures every 0.3 s
    make_experiment("ranker")
    server = web_server(workers=1, extra_env={"VARIANTLAB_EXPOSURE_FLUSH_SECONDS": "0.3"})
    # When 60 units are assigned with exposure logging, and the server is then stopped
    for i in range(60):
        http_assign(server.url, raw_key, f"b-{i}", log_exposure=True)
    assert wait_until(lambda: Exposure.objects.count() > 0, timeout=20)
    http_assign(server.url, raw_key, "b-last", log_exposure=True)
    server.stop()  # SIGTERM: the worker process flushes what it still holds
    # Then every exposure reaches the database through the Celery worker
    assert wait_until(lambda: Exposure.objects.count() == 61, timeout=30), Exposure.objects.count()


def test_batched_exposures__broker_down_then_back__kept_and_all_stored(
    raw_key, own_redis, web_server, workers
) -> None:
    # Given gunicorn (default: exposures batched every 0.2 s) and a worker on a Redis of the
    # test's own
    broker = {
        "CELERY_BROKER_URL": own_redis.url,
        "REDIS_URL": own_redis.url,
        "CELERY_VISIBILITY_TIMEOUT": "5",
    }
    make_experiment("ranker")
    server = web_server(workers=1, extra_env=broker)
    workers("w", extra_env=broker).start()
    for i in range(20):
        http_assign(server.url, raw_key, f"up-{i}", log_exposure=True)
    assert wait_until(lambda: Exposure.objects.count() == 20, timeout=30)
    # When Redis stops, units keep being assigned, and Redis comes back
    own_redis.stop()
    answers = [http_assign(server.url, raw_key, f"down-{i}", log_exposure=True) for i in range(30)]
    time.sleep(1)  # several flush ticks find the broker down
    own_redis.start()
    # Then every unit got its variant while Redis was down, and no exposure was lost
    assert all(a["ranker"]["reason"] == "assigned" for a in answers)
    assert wait_until(lambda: Exposure.objects.count() == 50, timeout=60, interval=0.5), (
        Exposure.objects.count()
    )
    assert Exposure.objects.filter(unit_id__startswith="down-").count() == 30
