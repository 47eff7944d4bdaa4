"""Client behaviour against a stand-in server: local assignment, delivery, degradation."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

import pytest
from client_fakes import CONFIG, FakeServer
from variantlab_client import FALLBACK, Assignment, Client
from variantlab_client.config import LoadedConfig
from variantlab_client.engine import assign

WAIT = 10.0  # generous bound on waiting for a background thread; never a timing assertion


@pytest.fixture
def make_client():
    clients: list[Client] = []

    def make(url: str, **options: Any) -> Client:
        options = {"refresh_seconds": 0.05, "flush_seconds": 0.05, "timeout": 1.0, **options}
        client = Client(url, "vl_test_key", **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close(timeout=0.5)


def test_assign__before_any_config__fallback_for_named_and_empty_otherwise(
    make_client, closed_port: int
) -> None:
    # Given a client whose server refuses connections
    client = make_client(f"http://127.0.0.1:{closed_port}")
    # When the app assigns
    named = client.assign("u-1", {"country": "US"}, ["ranker", "other"])
    everything = client.assign("u-1")
    # Then named experiments get the fallback (no variant), and nothing else is invented
    assert named == {"ranker": FALLBACK, "other": FALLBACK}
    assert Assignment(None, None, False, "fallback") == FALLBACK
    assert everything == {}
    assert client.flush(timeout=0.2)  # no exposure was queued for fallbacks


def test_assign__log_exposures_off__same_answers_no_exposure_outcomes_still_sent(
    make_client, fake_server: FakeServer
) -> None:
    # Given a client told that the app logs its own exposures
    client = make_client(fake_server.url, log_exposures=False)
    assert client.wait_ready(WAIT)
    expected_config = LoadedConfig.parse(CONFIG, None).experiments
    # When units are assigned (some in the experiment) and one outcome is tracked
    answers = {f"u-{i}": client.assign(f"u-{i}") for i in range(50)}
    client.track("u-1", "purchase")
    assert client.flush(timeout=WAIT)
    # Then the answers are the engine's, and only the outcome was posted
    assert any(a.in_experiment for got in answers.values() for a in got.values())
    for unit, got in answers.items():
        assert got == {k: assign(c, unit, {}) for k, c in expected_config.items()}
    assert [e["type"] for e in fake_server.events] == ["outcome"]


def test_assign__config_loaded__same_as_engine_and_exposures_delivered_with_ids(
    make_client, fake_server: FakeServer
) -> None:
    # Given a client that loaded the server's config
    client = make_client(fake_server.url)
    assert client.wait_ready(WAIT)
    expected_config = LoadedConfig.parse(CONFIG, None).experiments
    # When 200 units are assigned without naming experiments
    answers = {f"u-{i}": client.assign(f"u-{i}", {"plan": "pro"}) for i in range(200)}
    assert client.flush(timeout=WAIT)
    # Then each answer is the engine's on the served config (running and paused)
    for unit, got in answers.items():
        assert got == {k: assign(c, unit, {"plan": "pro"}) for k, c in expected_config.items()}
    # And exactly the in-experiment assignments were posted as exposure events, ids unique
    exposures = fake_server.events
    wanted = {(u, k, a.variant) for u, got in answers.items() for k, a in got.items()}
    in_experiment = {
        (u, k, a.variant) for u, got in answers.items() for k, a in got.items() if a.in_experiment
    }
    assert {(e["unit_id"], e["experiment"], e["variant"]) for e in exposures} == in_experiment
    assert in_experiment < wanted and len(exposures) == len(in_experiment)
    assert len({e["event_id"] for e in exposures}) == len(exposures)
    assert all(e["type"] == "exposure" and e["attributes"] == {"plan": "pro"} for e in exposures)
    assert all(isinstance(e["timestamp"], str) and "T" in e["timestamp"] for e in exposures)


def test_assign__forced_paused_and_unknown__reasons(make_client, fake_server) -> None:
    client = make_client(fake_server.url)
    assert client.wait_ready(WAIT)
    got = client.assign("qa", None, ["ranker", "old", "missing"])
    assert got["ranker"] == Assignment("treatment", {"m": 2}, False, "forced")
    assert got["old"] == Assignment("control", {}, False, "not_running")
    assert got["missing"] == FALLBACK


def test_refresh__etag__if_none_match_sent_and_304_keeps_config(make_client, fake_server) -> None:
    # Given a loaded client that keeps polling
    client = make_client(fake_server.url)
    assert client.wait_ready(WAIT)
    first = client._config
    threading.Event().wait(0.3)
    # Then later polls carried the ETag, got 304 and kept the same parsed config
    assert any(h.get("If-None-Match") == '"v1"' for h in fake_server.config_requests[1:])
    assert client._config is first
    assert all(h.get("Authorization") == "Bearer vl_test_key" for h in fake_server.config_requests)


def test_refresh__server_fails_after_load__last_good_config_serves(
    make_client, fake_server
) -> None:
    client = make_client(fake_server.url)
    assert client.wait_ready(WAIT)
    before = client.assign("u-7", None, ["ranker"])
    # When /config starts failing with 500s
    fake_server.config_status = 500
    seen = len(fake_server.config_requests)
    while len(fake_server.config_requests) < seen + 3:
        threading.Event().wait(0.05)
    # Then the last good configuration still answers
    assert client.assign("u-7", None, ["ranker"]) == before
    assert before["ranker"].reason in ("assigned", "not_in_traffic")


def test_events__503_and_429_then_ok__retried_with_same_ids(make_client, fake_server) -> None:
    # Given a server that answers 503, then 429 with Retry-After, then accepts
    fake_server.events_statuses = [(503, {}), (429, {"Retry-After": "0"})]
    client = make_client(fake_server.url)
    # When outcomes are tracked
    for i in range(5):
        client.track(f"u-{i}", "purchase", 9.5, event_id=f"e-{i}", properties={"sku": "a"})
    # Then after the retries each was delivered once, with its own id and content
    assert client.flush(timeout=WAIT)
    assert fake_server.events_statuses == []
    events = fake_server.events
    assert sorted(e["event_id"] for e in events) == [f"e-{i}" for i in range(5)]
    assert events[0] | {"timestamp": None} == {
        "type": "outcome",
        "unit_id": "u-0",
        "name": "purchase",
        "value": 9.5,
        "timestamp": None,
        "event_id": "e-0",
        "properties": {"sku": "a"},
    }


def test_events__400__dropped_not_retried(make_client, fake_server) -> None:
    fake_server.events_statuses = [(400, {})]
    client = make_client(fake_server.url)
    client.track("u-1", "purchase")
    assert client.flush(timeout=WAIT)
    client.track("u-2", "purchase")
    assert client.flush(timeout=WAIT)
    assert [e["unit_id"] for e in fake_server.events] == ["u-2"]


def test_events__queue_overflows__oldest_dropped_and_counted(
    make_client, closed_port: int, caplog
) -> None:
    # Given a client with room for 5 events and no server
    client = make_client(f"http://127.0.0.1:{closed_port}", max_queue=5, flush_seconds=60)
    # When 8 events are tracked
    for i in range(8):
        client.track("u", "click", event_id=f"e-{i}")
    # Then 3 were dropped, counted and logged; the 5 newest wait
    assert client.dropped_events == 3
    assert [e["event_id"] for e in client._queue] == [f"e-{i}" for i in range(3, 8)]
    assert "variantlab.events_dropped" in caplog.text
    assert client.flush(timeout=0.3) is False  # nowhere to deliver: the timeout holds


def test_model_call__success_error_and_cost__model_events(make_client, fake_server) -> None:
    client = make_client(fake_server.url)
    assert client.wait_ready(WAIT)
    # When one call succeeds with a cost and one raises
    with client.model_call("ranker", "u-1") as call:
        call.cost(0.002)
    with pytest.raises(ZeroDivisionError), client.model_call("ranker", "u-2"):
        1 / 0  # noqa: B018
    assert client.flush(timeout=WAIT)
    # Then the model events were recorded per unit, with the experiment and variant
    outcomes = [e for e in fake_server.events if e["type"] == "outcome"]
    names = {(e["unit_id"], e["name"]) for e in outcomes}
    assert names == {
        ("u-1", "model_call"),
        ("u-1", "model_latency_ms"),
        ("u-1", "model_cost_usd"),
        ("u-2", "model_call"),
        ("u-2", "model_latency_ms"),
        ("u-2", "model_error"),
    }
    by_name = {(e["unit_id"], e["name"]): e for e in outcomes}
    assert by_name[("u-1", "model_cost_usd")]["value"] == 0.002
    assert by_name[("u-1", "model_latency_ms")]["value"] >= 0
    assert by_name[("u-2", "model_error")]["value"] == 1.0
    assert call.assignment == client.assign("u-1", None, ["ranker"])["ranker"]
    assert by_name[("u-1", "model_call")]["properties"] == {
        "experiment": "ranker",
        "variant": call.assignment.variant,
    }


def test_config_path__persisted__restart_during_outage_still_assigns(
    make_client, fake_server, closed_port: int, tmp_path: Path
) -> None:
    # Given a client that loaded the config and persisted it
    path = tmp_path / "variantlab-config.json"
    first = make_client(fake_server.url, config_path=path)
    assert first.wait_ready(WAIT)
    while not path.exists():
        threading.Event().wait(0.02)
    expected = first.assign("u-3", None, ["ranker"])
    # When the app restarts while the server is unreachable
    second = make_client(f"http://127.0.0.1:{closed_port}", config_path=path)
    # Then the persisted configuration answers at once
    assert second.assign("u-3", None, ["ranker"]) == expected
    assert json.loads(path.read_text())["etag"] == '"v1"'


def test_assign_and_track__bad_input__never_raise_and_good_events_still_delivered(
    make_client, fake_server
) -> None:
    client = make_client(fake_server.url)
    assert client.wait_ready(WAIT)
    # When the app passes a non-string unit id, a NaN value and an unencodable property
    assert client.assign(None, None, ["ranker"]) == {"ranker": FALLBACK}  # type: ignore[arg-type]
    assert client.assign("", None, ["ranker"]) == {"ranker": FALLBACK}
    assert client.assign("") == {}
    client.track("", "no-unit")
    client.track("u", "nan", value=float("nan"))
    client.track("u", "odd", properties={"when": object()})
    client.track("u", "fine")
    # Then nothing raised, NaN was refused at once, and the other events were delivered
    assert client.flush(timeout=WAIT)
    names = [e["name"] for e in fake_server.events]
    assert names == ["odd", "fine"]
    assert fake_server.events[0]["properties"]["when"].startswith("<object object")


def test_events__large_batch__split_under_the_body_limit(make_client, fake_server) -> None:
    # Given 500 events of about 4 KB each (2 MB together, over /events' 1 MiB)
    client = make_client(fake_server.url, flush_seconds=60)
    for i in range(500):
        client.track(f"u-{i}", "big", properties={"blob": "x" * 4000})
    # When they are flushed
    assert client.flush(timeout=WAIT)
    # Then they went in several bodies, each under the limit, all delivered once
    assert len(fake_server.batches) >= 2
    assert all(len(json.dumps({"events": b})) < 1_048_576 for b in fake_server.batches)
    assert sorted(e["unit_id"] for e in fake_server.events) == sorted(f"u-{i}" for i in range(500))


def test_assign__attributes_changed_after_call__exposure_keeps_the_values_assigned(
    make_client, fake_server
) -> None:
    client = make_client(fake_server.url, flush_seconds=60)
    assert client.wait_ready(WAIT)
    attributes = {"plan": "pro"}
    units = [f"u-{i}" for i in range(20)]
    for unit in units:
        client.assign(unit, attributes, ["ranker"])
    attributes["plan"] = "free"
    assert client.flush(timeout=WAIT)
    assert fake_server.events and all(
        e["attributes"] == {"plan": "pro"} for e in fake_server.events
    )


def test_silent_server__calls_fast_no_thread_leak(make_client, silent_server: str) -> None:
    # Given a server that accepts connections and never answers
    before = set(threading.enumerate())
    client = make_client(silent_server, timeout=0.2)
    # When the app keeps assigning and tracking
    for i in range(2000):
        client.assign(f"u-{i}", None, ["ranker"])
        client.track(f"u-{i}", "click")
    # Then every call answered (fallback), flush gives up at its timeout, and the client runs
    # exactly its two threads however many requests timed out
    assert client.assign("u", None, ["ranker"]) == {"ranker": FALLBACK}
    assert client.flush(timeout=0.3) is False
    threading.Event().wait(0.5)
    new = sorted(t.name for t in set(threading.enumerate()) - before)
    assert new == ["variantlab-config", "variantlab-events"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX-only")
def test_fork__child_gets_fresh_threads_and_delivers_its_events(make_client, fake_server) -> None:
    # Given a loaded client in a parent process (gunicorn --preload, Celery prefork)
    client = make_client(fake_server.url, flush_seconds=60)
    assert client.wait_ready(WAIT)
    client.track("parent", "click", event_id="parent-1")
    pid = os.fork()
    if pid == 0:  # the child: inherited config, its own queue and threads
        code = 1
        try:
            got = client.assign("child-unit", None, ["ranker"])
            client.track("child", "click", event_id="child-1")
            ok = got["ranker"].reason != "fallback" and client.flush(timeout=WAIT)
            code = 0 if ok and [e["event_id"] for e in client._queue] == [] else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert client.flush(timeout=WAIT)
    # Then each process delivered its own events once: the child did not resend the parent's
    ids = sorted(e["event_id"] for e in fake_server.events if e["type"] == "outcome")
    assert ids == ["child-1", "parent-1"]


def test_events__max_queue_zero__treated_as_one_and_assign_still_answers(
    make_client, fake_server
) -> None:
    client = make_client(fake_server.url, max_queue=0, flush_seconds=60)
    assert client.wait_ready(WAIT)
    for i in range(10):
        client.track("u", "click", event_id=f"e-{i}")
    assert client.assign("qa", None, ["ranker"])["ranker"].reason == "forced"
    assert client.max_queue == 1 and client.dropped_events == 9
