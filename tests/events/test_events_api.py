"""POST /api/v1/events (docs/api.md §5): per-event validation, idempotency, limits.

These run with eager Celery; tests/integration repeats the key ones with real workers.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from assignment.engine import assign as engine_assign
from assignment.selectors import experiment_config_build
from events.models import Exposure, ExposureEvent, Outcome
from events.tasks import events_ingest_task
from tests.factories import make_experiment

pytestmark = pytest.mark.django_db


def post(client, events):
    return client.post("/api/v1/events", {"events": events}, format="json")


def outcome(i: int, **extra):
    return {
        "type": "outcome",
        "unit_id": f"u{i}",
        "name": "purchase",
        "value": 9.5,
        "event_id": f"o-{i}",
        **extra,
    }


@pytest.fixture
def events_client(make_api_client):
    return make_api_client("events")


def test_events__valid_batch__202_and_stored(events_client) -> None:
    make_experiment("ranker")
    batch = [
        outcome(1),
        outcome(2, timestamp="2026-01-02T03:04:05Z"),
        {
            "type": "exposure",
            "unit_id": "u1",
            "experiment": "ranker",
            "variant": "treatment",
            "event_id": "e-1",
            "attributes": {"plan": "pro"},
        },
    ]
    response = post(events_client, batch)
    assert response.status_code == 202
    assert response.json() == {"accepted": 3, "rejected": []}
    assert Outcome.objects.count() == 2
    stored = Outcome.objects.get(event_id="o-2")
    assert stored.value == 9.5 and stored.timestamp == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    exposure = Exposure.objects.get(unit_id="u1")
    assert exposure.variant == "treatment" and exposure.attributes == {"plan": "pro"}


def test_events__same_batch_twice_and_split__stored_once(events_client) -> None:
    batch = [outcome(i) for i in range(10)]
    assert post(events_client, batch).status_code == 202
    assert post(events_client, batch).status_code == 202
    for i in range(0, 10, 3):
        post(events_client, batch[i : i + 3])
    assert Outcome.objects.count() == 10


def test_events__no_event_id__derived_from_content_so_retries_dedupe(events_client) -> None:
    event = {
        "type": "outcome",
        "unit_id": "u",
        "name": "click",
        "timestamp": "2026-01-01T00:00:00Z",
    }
    post(events_client, [event])
    post(events_client, [event])
    post(events_client, [{**event, "value": 2}])
    assert sorted(Outcome.objects.values_list("value", flat=True)) == [1.0, 2.0]


def test_events__partly_bad_batch__good_kept_bad_listed_by_index(events_client) -> None:
    make_experiment("ranker")
    future = (datetime.now(UTC) + timedelta(minutes=10)).isoformat()
    batch = [
        outcome(0),
        {"type": "outcome", "name": "x"},  # 1 no unit_id
        outcome(2, value="lots"),  # 2 bad value
        outcome(3, timestamp=future),  # 3 future
        outcome(4, timestamp="yesterday"),  # 4 not ISO
        {"type": "exposure", "unit_id": "u", "experiment": "nope", "variant": "a"},  # 5
        {"type": "exposure", "unit_id": "u", "experiment": "ranker", "variant": "zzz"},  # 6
        {"type": "click", "unit_id": "u"},  # 7 bad type
        "not an object",  # 8
        outcome(9, event_id="x" * 65),  # 9 id too long
        outcome(10, unit_id="u" * 257),  # 10 unit too long
        outcome(11, properties=[1]),  # 11
        outcome(12),
    ]
    response = post(events_client, batch)
    assert response.status_code == 202
    body = response.json()
    assert body["accepted"] == 2
    fields = {r["index"]: set(r["error"]["fields"]) for r in body["rejected"]}
    assert fields == {
        1: {"unit_id"},
        2: {"value"},
        3: {"timestamp"},
        4: {"timestamp"},
        5: {"experiment"},
        6: {"variant"},
        7: {"type"},
        8: {"event"},
        9: {"event_id"},
        10: {"unit_id"},
        11: {"properties"},
    }
    assert "unknown experiment 'nope'" in body["rejected"][4]["error"]["message"]
    assert set(Outcome.objects.values_list("event_id", flat=True)) == {"o-0", "o-12"}


def test_events__nothing_valid__400_with_rejections(events_client) -> None:
    response = post(events_client, [{"type": "outcome"}])
    assert response.status_code == 400
    assert response.json()["rejected"][0]["index"] == 0
    assert response.json()["error"]["fields"] == {"events": "none valid"}


@pytest.mark.parametrize("body", [{}, {"events": "x"}, [1, 2], {"events": None}])
def test_events__no_event_list__400_names_events(events_client, body) -> None:
    response = events_client.post("/api/v1/events", body, format="json")
    assert response.status_code == 400
    assert "events" in response.json()["error"]["fields"]


def test_events__over_1000_events__413_nothing_stored(events_client) -> None:
    response = post(events_client, [outcome(i) for i in range(1001)])
    assert response.status_code == 413
    assert "events" in response.json()["error"]["fields"]
    assert not Outcome.objects.exists()


def test_events__body_over_1_mib__413(events_client) -> None:
    big = [outcome(i, properties={"pad": "x" * 2000}) for i in range(600)]
    assert len(json.dumps({"events": big})) > 1024 * 1024
    response = post(events_client, big)
    assert response.status_code == 413
    assert "body" in response.json()["error"]["fields"]


def test_events__malformed_json__400(events_client) -> None:
    response = events_client.post("/api/v1/events", "{", content_type="application/json")
    assert response.status_code == 400 and "JSON" in response.json()["error"]["message"]


def test_events__wrong_scope__403(make_api_client) -> None:
    assert post(make_api_client("assign"), [outcome(1)]).status_code == 403


def test_exposures__repeats_other_variants_and_mismatches__summarised(events_client) -> None:
    # Given a running experiment and the variant the server gives each unit
    experiment = make_experiment("ranker")
    config = experiment_config_build(experiment)
    server = {u: engine_assign(config, u, {}).variant for u in ("a", "b")}
    other = {u: "control" if v == "treatment" else "treatment" for u, v in server.items()}

    def exposure(unit, variant, ts, event_id):
        return {
            "type": "exposure",
            "unit_id": unit,
            "experiment": "ranker",
            "variant": variant,
            "timestamp": ts,
            "event_id": event_id,
        }

    # When unit a is exposed three times to its variant (out of order, one replayed),
    # and unit b first to its variant then to the other one
    post(
        events_client,
        [
            exposure("a", server["a"], "2026-01-02T00:00:00Z", "1"),
            exposure("a", server["a"], "2026-01-01T00:00:00Z", "2"),
        ],
    )
    post(
        events_client,
        [
            exposure("a", server["a"], "2026-01-01T00:00:00Z", "2"),
            exposure("a", server["a"], "2026-01-03T00:00:00Z", "3"),
            exposure("b", server["b"], "2026-01-01T00:00:00Z", "4"),
        ],
    )
    post(events_client, [exposure("b", other["b"], "2026-01-02T00:00:00Z", "5")])
    # Then each unit has one summary row with its first exposure and the right counts
    a = Exposure.objects.get(unit_id="a")
    assert a.exposure_count == 3 and not a.multiple_variants and a.mismatched_count == 0
    assert a.first_exposed_at == datetime(2026, 1, 1, tzinfo=UTC)
    b = Exposure.objects.get(unit_id="b")
    assert b.variant == server["b"] and b.multiple_variants and b.mismatched_count == 1
    assert ExposureEvent.objects.count() == 5


def test_assign_exposures__go_through_the_event_pipeline(make_api_client) -> None:
    make_experiment("ranker")
    client = make_api_client("assign")
    client.post("/api/v1/assign", {"unit_id": "u-1"}, format="json")
    client.post("/api/v1/assign", {"unit_id": "u-1"}, format="json")
    assert ExposureEvent.objects.filter(unit_id="u-1").count() == 2
    assert Exposure.objects.get(unit_id="u-1").exposure_count == 2


def test_assign_record__replayed_task__one_event_per_experiment_stored_once() -> None:
    # Given the compact record /assign publishes for a unit assigned in two experiments
    make_experiment("ranker")
    make_experiment("recs")
    record = {
        "request_id": "0" * 32,
        "unit_id": "u-9",
        "timestamp": "2026-03-01T12:00:00+00:00",
        "attributes": {"country": "FR"},
        "variants": {"ranker": "control", "recs": "treatment"},
    }
    # When its task is delivered twice (a worker died before acknowledging it)
    events_ingest_task.delay({"assignments": [record]})
    events_ingest_task.delay({"assignments": [record]})
    # Then each experiment has one exposure event, with the record's time and attributes
    stored = {
        e.experiment.key: e
        for e in ExposureEvent.objects.select_related("experiment").filter(unit_id="u-9")
    }
    assert {k: e.variant for k, e in stored.items()} == record["variants"]
    assert {e.event_id for e in stored.values()} == {f"a-{'0' * 32}-0", f"a-{'0' * 32}-1"}
    assert all(e.attributes == {"country": "FR"} for e in stored.values())
    assert all(e.timestamp == datetime(2026, 3, 1, 12, tzinfo=UTC) for e in stored.values())
    assert Exposure.objects.get(unit_id="u-9", experiment__key="recs").exposure_count == 1
