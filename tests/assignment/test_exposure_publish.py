"""The flush thread's publish of pre-encoded exposure records (assignment.services).

The oracle is Celery itself: `apply_async` of the same records, through the same kind of
producer, on kombu's in-memory broker. The two messages must be the same task to a worker.
"""

from __future__ import annotations

import pytest
from kombu import Connection

from assignment import services

RECORDS = [
    {
        "request_id": "0123456789abcdef0123456789abcdef",
        "unit_id": 'user-é-\u2028-"quoted"',
        "timestamp": "2026-11-29T03:20:00.123456+00:00",
        "attributes": {"country": "US", "nested": {"a": [1, 2.5, None, True]}, "emoji": "😀"},
        "variants": {"exp-0": "treatment", "exp-1": None},
    },
    {
        "request_id": "0123456789abcdef0123456789abcdf0",
        "unit_id": "u-2",
        "timestamp": "2026-11-29T03:20:00.223456+00:00",
        "attributes": {},
        "variants": {"exp-2": "control"},
    },
]

# Differ between any two messages, whoever sends them.
PER_MESSAGE_HEADERS = {"id", "root_id"}
PER_MESSAGE_PROPERTIES = {"correlation_id", "delivery_tag"}


@pytest.fixture
def broker():
    from config.celery import app

    # Unit tests run tasks eagerly; here apply_async must really publish.
    eager, app.conf.task_always_eager = app.conf.task_always_eager, False
    try:
        with Connection("memory://") as connection:
            queue = connection.SimpleQueue("celery")
            queue.clear()
            yield app, app.amqp.Producer(connection), queue
            queue.clear()
            queue.close()
    finally:
        app.conf.task_always_eager = eager


def test_publish_encoded__same_message_as_celerys_apply_async(broker) -> None:
    app, producer, queue = broker
    task = app.tasks[services.EVENTS_INGEST_TASK]
    # Given the message Celery sends for a batch of records (as exposures_publish does)
    task.apply_async(
        ({"assignments": RECORDS},),
        argsrepr=f"(<{len(RECORDS)} assignment records>,)",
        kwargsrepr="{}",
        producer=producer,
    )
    # When the flush thread publishes the same records, each encoded on its request
    encoded = [services.exposure_record_json(r) for r in RECORDS]
    assert services.exposures_publish_encoded(encoded, producer=producer) is True
    celerys, ours = queue.get(timeout=1), queue.get(timeout=1)
    # Then the body is byte for byte Celery's, and decodes to the task's arguments
    assert ours.body == celerys.body
    assert ours.decode() == [[{"assignments": RECORDS}], {}, celerys.decode()[2]]
    assert (ours.content_type, ours.content_encoding) == ("application/json", "utf-8")
    assert ours.content_type == celerys.content_type
    assert ours.content_encoding == celerys.content_encoding
    # ... and headers, properties and routing are Celery's, apart from the message's own ids
    assert ours.headers["task"] == services.EVENTS_INGEST_TASK
    assert ours.headers["id"] != celerys.headers["id"]
    assert ours.headers["root_id"] == ours.headers["id"]

    def without(d: dict, keys: set[str]) -> dict:
        return {k: v for k, v in d.items() if k not in keys}

    assert without(ours.headers, PER_MESSAGE_HEADERS) == without(
        celerys.headers, PER_MESSAGE_HEADERS
    )
    assert without(ours.properties, PER_MESSAGE_PROPERTIES) == without(
        celerys.properties, PER_MESSAGE_PROPERTIES
    )
    assert ours.properties["correlation_id"] == ours.headers["id"]
    assert ours.delivery_info["routing_key"] == celerys.delivery_info["routing_key"] == "celery"


def test_ingest_task_body__many_records__kombus_json_of_the_whole_message() -> None:
    from kombu.utils.json import dumps

    records = [dict(RECORDS[i % 2], request_id=f"{i:032x}") for i in range(250)]
    embed = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
    body = services.ingest_task_body(
        [services.exposure_record_json(r) for r in records], ({}, embed)
    )
    assert body == dumps((({"assignments": records},), {}, embed)).encode()


def test_publish_encoded__broker_refuses__false_and_logged(monkeypatch, caplog) -> None:
    from kombu.exceptions import OperationalError

    from config.celery import app

    def refuse(*args, **kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(app.amqp, "send_task_message", refuse)
    encoded = [services.exposure_record_json(RECORDS[0])]
    assert services.exposures_publish_encoded(encoded, producer=object()) is False
    assert "exposure.enqueue_failed records=1" in caplog.text


@pytest.mark.parametrize("c_encoder", [True, False])
def test_exposure_record_json__with_or_without_the_c_encoder__kombus_json(
    monkeypatch, c_encoder: bool
) -> None:
    from kombu.utils.json import dumps

    if not c_encoder:  # as on a Python without the _json accelerator
        monkeypatch.setattr(services, "_c_encoder", None)
    for record in RECORDS:
        assert services.exposure_record_json(record) == dumps(record).encode()
