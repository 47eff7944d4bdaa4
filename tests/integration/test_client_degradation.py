"""The Python client against a real gunicorn + Celery stack when the server fails (issue 11).

Experimentation must never take the app down: with the server down before start, killed
mid-traffic, or hung, every client call answers from memory; events wait and are stored once
each when the server is back.
"""

from __future__ import annotations

import os
import signal
import statistics
import threading
import time
import urllib.request

import pytest
from variantlab_client import FALLBACK, Client

from events.models import ExposureEvent, Outcome
from experiments import services
from tests.factories import make_experiment
from tests.integration.conftest import WebServer, free_port, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def app_key(transactional_db) -> str:
    return services.api_key_create(name="app", scopes=["assign", "events"])[1]


@pytest.fixture
def network_threads(monkeypatch) -> set[str]:
    """The names of the threads that opened an HTTP connection."""
    seen: set[str] = set()
    real = urllib.request.urlopen

    def recording(*args, **kwargs):
        seen.add(threading.current_thread().name)
        return real(*args, **kwargs)

    monkeypatch.setattr(urllib.request, "urlopen", recording)
    return seen


def _timed_assign(client: Client, units: range, experiments=None) -> tuple[list, float]:
    answers, durations = [], []
    for i in range(units.start, units.stop):
        started = time.perf_counter()
        answers.append(client.assign(f"u-{i}", {"plan": "pro"}, experiments))
        durations.append(time.perf_counter() - started)
    return answers, statistics.median(durations) * 1e6


def test_client__server_down_before_start__fallback_and_no_network_on_calls(
    network_threads: set[str],
) -> None:
    # Given a server that is not running when the app starts
    client = Client(f"http://127.0.0.1:{free_port()}", "vl_key", refresh_seconds=0.2)
    try:
        # When the app serves 2,000 requests
        answers, median_us = _timed_assign(client, range(2000), ["ranker"])
        # Then each got the fallback (the app serves its default), none failed
        assert all(a == {"ranker": FALLBACK} for a in answers)
        assert client.assign("u-1") == {}
        # And no call touched the network: only the client's own threads did
        assert wait_until(lambda: "variantlab-config" in network_threads, timeout=10)
        assert threading.current_thread().name not in network_threads
        print(f"\nserver down before start: median client.assign {median_us:.1f} µs")
    finally:
        client.close(timeout=0.5)


def test_client__server_killed_mid_traffic_then_back__last_config_serves_events_stored_once(
    web_server, celery_worker, app_key: str, network_threads: set[str]
) -> None:
    # Given a running experiment, a real server and worker, and a client that loaded /config
    make_experiment("ranker")
    make_experiment("checkout", coverage=0.5)
    server = web_server()
    client = Client(server.url, app_key, refresh_seconds=0.2, flush_seconds=0.2, timeout=1.0)
    sent: list[dict] = []
    enqueue = client._enqueue
    client._enqueue = lambda event: (sent.append(event), enqueue(event))[1]  # type: ignore[method-assign]
    try:
        assert client.wait_ready(30)
        network_threads.clear()  # starting gunicorn polled its health check from this thread
        before, _ = _timed_assign(client, range(300))
        for i in range(300):
            client.track(f"u-{i}", "purchase", 10.0)
        assert client.flush(timeout=30)
        # When the server is killed (SIGKILL) while traffic goes on
        os.killpg(server.process.pid, signal.SIGKILL)
        server.process.wait(10)
        during, median_us = _timed_assign(client, range(600))
        for i in range(300, 600):
            client.track(f"u-{i}", "purchase", 10.0)
        # Then the last good configuration keeps answering, identically
        assert during[:300] == before
        assert all(set(a) == {"ranker", "checkout"} for a in during)
        assert all(a["ranker"].reason in ("assigned", "not_in_traffic") for a in during)
        # And events queue up instead of failing the app
        assert client.flush(timeout=1.0) is False
        assert len(client._queue) > 0
        assert threading.current_thread().name not in network_threads
        print(f"\nserver killed: median client.assign {median_us:.1f} µs")
        # When the server comes back on the same address
        back = WebServer()
        back.port = server.port
        back.start()
        try:
            # Then every event is delivered and stored exactly once, counted by event id
            assert client.flush(timeout=120)
            exposure_ids = [e["event_id"] for e in sent if e["type"] == "exposure"]
            outcome_ids = [e["event_id"] for e in sent if e["type"] == "outcome"]
            assert len(set(exposure_ids)) == len(exposure_ids) > 300
            assert len(outcome_ids) == 600
            assert wait_until(
                lambda: (
                    ExposureEvent.objects.filter(event_id__in=exposure_ids).count()
                    == len(exposure_ids)
                    and Outcome.objects.filter(event_id__in=outcome_ids).count() == 600
                ),
                timeout=120,
            )
            assert ExposureEvent.objects.count() == len(exposure_ids)
            assert Outcome.objects.count() == 600
            assert client.dropped_events == 0
        finally:
            back.stop()
    finally:
        client.close(timeout=1)


def test_client__server_hangs__calls_fast_no_thread_leak(web_server, app_key: str) -> None:
    # Given a client that loaded /config from a real server
    make_experiment("ranker")
    server = web_server()
    client = Client(server.url, app_key, refresh_seconds=0.1, flush_seconds=0.1, timeout=0.5)
    try:
        assert client.wait_ready(30)
        expected = client.assign("u-1", None, ["ranker"])
        threads_before = set(threading.enumerate())
        # When the server hangs: its processes are stopped, the kernel still accepts connections
        os.killpg(server.process.pid, signal.SIGSTOP)
        try:
            answers, median_us = _timed_assign(client, range(3000), ["ranker"])
            for i in range(3000):
                client.track(f"u-{i}", "click")
            threading.Event().wait(2.0)  # several refresh and delivery timeouts go by
            # Then calls kept answering from memory, flush gives up at its timeout
            assert client.assign("u-1", None, ["ranker"]) == expected
            assert all(a["ranker"].reason != "fallback" for a in answers)
            assert client.flush(timeout=0.5) is False
            # And no thread was added however many requests timed out
            leaked = [t.name for t in set(threading.enumerate()) - threads_before]
            assert leaked == []
            print(f"\nserver hung: median client.assign {median_us:.1f} µs")
        finally:
            os.killpg(server.process.pid, signal.SIGCONT)
    finally:
        client.close(timeout=1)
