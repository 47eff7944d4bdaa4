"""The assignment hot path: in-memory config, pure engine, exposures handed to Celery."""

from __future__ import annotations

import itertools
import json.encoder
import logging
import os
import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from json.encoder import encode_basestring_ascii
from typing import Any

from celery import current_app
from celery.utils import uuid as task_uuid
from django.conf import settings
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerError
from kombu.utils.json import JSONEncoder

from assignment.engine import Assignment
from assignment.exposure_buffer import ExposureBuffer
from assignment.selectors import AssignmentConfig, assignment_config

# The events app's ingest task (events/tasks.py), which stores /assign's exposure records.
EVENTS_INGEST_TASK = "events.tasks.events_ingest_task"

logger = logging.getLogger(__name__)

# Each thread of a web process keeps one Celery producer (on its own broker connection) for
# exposures, instead of taking one from the app's pool on every /assign call.
_publishing = threading.local()


@dataclass(frozen=True, slots=True)
class UnitAssignments:
    assignments: dict[str, Assignment]
    unknown: list[str]
    exposure_logged: bool


def unit_assign(
    *,
    unit_id: str,
    attributes: Mapping[str, Any],
    experiment_keys: Sequence[str] | None = None,
    log_exposure: bool = True,
    config: AssignmentConfig | None = None,
) -> UnitAssignments:
    """Assign the unit in each experiment (all running ones by default) of `config`, the current
    configuration unless given, and hand its exposures to the workers."""
    if config is None:
        config = assignment_config.get()
    unknown: list[str] = []
    if experiment_keys is None:
        experiments = config.served
    else:
        known = tuple(dict.fromkeys(k for k in experiment_keys if k in config.experiments))
        unknown = [k for k in experiment_keys if k not in config.experiments]
        experiments = config.experiment_set(known)
    assignments = experiments.assign(unit_id, attributes)
    logged = False
    if log_exposure:
        exposed = [k for k, a in assignments.items() if a.in_experiment]
        logged = exposures_enqueue(
            unit_id=unit_id,
            attributes=attributes,
            assignments={k: assignments[k].variant for k in exposed},
        )
    return UnitAssignments(assignments, unknown, logged)


_request_id_prefix = ""
_request_id_counter = itertools.count()


def _request_ids_reset() -> None:
    global _request_id_prefix, _request_id_counter
    _request_id_prefix = uuid.uuid4().hex[:20]
    _request_id_counter = itertools.count()


_request_ids_reset()
# A forked worker (gunicorn, Celery prefork) draws a prefix of its own.
os.register_at_fork(after_in_child=_request_ids_reset)


def request_id_next() -> str:
    """A unique 32-hex-digit id: a random prefix per process and a counter.

    uuid4() reads the kernel's random source on every call, which cost about 15 µs of a
    /assign request; 80 random bits per process make a shared prefix as unlikely.
    """
    return f"{_request_id_prefix}{next(_request_id_counter):012x}"


def exposures_enqueue(
    *, unit_id: str, attributes: Mapping[str, Any], assignments: Mapping[str, str | None]
) -> bool:
    """Hand one request's exposures to the workers: now as one task, or batched when enabled.

    One compact record per request (the worker expands it into one exposure event per
    experiment), so that the web process builds and serializes as little as possible.
    """
    if not assignments:
        return False
    record = {
        # One id per request; the events get `a-<id>-<index>`, so a redelivered task is stored
        # once, as with POST /events.
        "request_id": request_id_next(),
        "unit_id": unit_id,
        "timestamp": timezone.now().isoformat(),
        "attributes": attributes,
        "variants": dict(assignments),
    }
    if settings.VARIANTLAB_EXPOSURE_FLUSH_SECONDS > 0 and not _eager():
        # Encoded here, a few µs on every request alike, rather than all together in the flush
        # thread, where the whole batch's encoding held the GIL on some request's time.
        _buffer().add([exposure_record_json(record)])
        return True
    return exposures_publish([record])


# Celery's JSON serializer is kombu's `dumps`, i.e. this encoder class with its defaults: one
# instance, made once, encodes a record exactly as Celery would inside the task's body.
_kombu_encoder = JSONEncoder()
_encode_json = _kombu_encoder.encode
# The same encoding with the C encoder built once: `encode` builds one per call, which was about
# a third of a record's encoding on the request path. No circular check: a record is built
# here from JSON-decoded values.
_make_c_encoder = getattr(json.encoder, "c_make_encoder", None)  # None without CPython's _json
_c_encoder = (
    _make_c_encoder(
        None, _kombu_encoder.default, encode_basestring_ascii, None, ": ", ", ", False, False, True
    )
    if _make_c_encoder is not None
    else None
)

JSON = "application/json"


def exposure_record_json(record: Mapping[str, Any]) -> bytes:
    """One exposure record as it appears inside the ingest task's body (kombu's JSON)."""
    if _c_encoder is None:
        return _encode_json(record).encode()
    return "".join(_c_encoder(record, 0)).encode()


def ingest_task_body(encoded_records: Sequence[bytes], rest: Sequence[Any]) -> bytes:
    """The body (protocol 2: args, kwargs, embed) of `events_ingest_task({"assignments":
    [records]})` as Celery's JSON serializer writes it, from records already encoded and the
    message's kwargs and embed (`rest`). Byte for byte what kombu's `dumps` gives for the same
    message (tests/assignment/test_exposure_publish.py)."""
    tail = _encode_json(list(rest)).encode()  # '[{}, {"callbacks": null, ...}]'
    return b'[[{"assignments": [' + b", ".join(encoded_records) + b"]}], " + tail[1:]


def exposures_publish_encoded(encoded_records: list[bytes], producer: Any = None) -> bool:
    """Publish records encoded by `exposure_record_json` as one ingest task, with the message
    `exposures_publish` would send (same headers, properties, queue and body), but without
    encoding the records again: Celery's `apply_async` would serialize the whole batch in the
    flush thread, and kombu then wraps it in its envelope, about 6 µs per record with the GIL
    held. False (and logged) if the broker refused."""
    events_ingest_task = current_app.tasks[EVENTS_INGEST_TASK]
    app = events_ingest_task.app
    # As apply_async: the reprs go into the headers and, as send options, the properties.
    reprs = {"argsrepr": f"(<{len(encoded_records)} assignment records>,)", "kwargsrepr": "{}"}
    message = app.amqp.create_task_message(
        task_uuid(),
        events_ingest_task.name,
        reply_to=app.thread_oid,
        ignore_result=events_ingest_task.ignore_result,
        **reprs,
    )
    body = ingest_task_body(encoded_records, message.body[1:])
    try:
        # With a content type given, kombu sends the body as it is (no serializer runs).
        app.amqp.send_task_message(
            producer or _thread_producer(app),
            events_ingest_task.name,
            message._replace(body=body),
            content_type=JSON,
            content_encoding="utf-8",
            **reprs,
        )
    except BrokerError:
        logger.exception("exposure.enqueue_failed records=%d", len(encoded_records))
        _thread_producer_drop()
        return False
    return True


def exposures_publish(records: list[dict[str, Any]]) -> bool:
    """Publish /assign exposure records as one Celery task (the per-request mode and eager
    runs; the flush thread publishes pre-encoded records). False (and logged) if the broker
    refused."""
    # By name: the events stage sits above assignment (EventsConfig.ready registers the task).
    events_ingest_task = current_app.tasks[EVENTS_INGEST_TASK]
    try:
        # argsrepr/kwargsrepr: a short label instead of Celery's saferepr() of every record,
        # which cost more than the rest of the request's assignment work.
        events_ingest_task.apply_async(
            ({"assignments": records},),
            argsrepr=f"(<{len(records)} assignment records>,)",
            kwargsrepr="{}",
            producer=_thread_producer(events_ingest_task.app),
        )
    except BrokerError:
        # The unit still gets its variant; losing its exposure is better than failing the app.
        logger.exception("exposure.enqueue_failed records=%d", len(records))
        _thread_producer_drop()
        return False
    return True


def _eager() -> bool:
    # Django's setting, not Celery's app.conf: a lookup there costs ~10 µs on every request.
    return bool(settings.CELERY_TASK_ALWAYS_EAGER)


@cache
def _buffer() -> ExposureBuffer[bytes]:
    return ExposureBuffer(exposures_publish_encoded, settings.VARIANTLAB_EXPOSURE_FLUSH_SECONDS)


def _thread_producer(app: Any) -> Any:
    """This thread's producer, made on first use (lazily connected; unused in eager mode)."""
    producer = getattr(_publishing, "producer", None)
    if producer is None or _publishing.pid != os.getpid():
        producer = app.amqp.Producer(app.connection_for_write())
        _publishing.producer, _publishing.pid = producer, os.getpid()
    return producer


def _thread_producer_drop() -> None:
    """Forget a producer whose broker failed; the next exposure starts a fresh connection."""
    producer = getattr(_publishing, "producer", None)
    _publishing.producer = None
    if producer is not None:
        try:
            producer.connection.release()
        except Exception:  # already broken: nothing more to release
            logger.debug("exposure.producer_release_failed", exc_info=True)
