"""Writes of events. Workers call `events_ingest`; it tolerates replays (tasks may run twice).

Each raw event is inserted once by its `event_id` (INSERT ... ON CONFLICT DO NOTHING
RETURNING), and only the rows this call really inserted move the per-unit exposure summary,
in the same transaction. A replayed batch therefore changes nothing, and two workers racing
on one unit serialise on its summary row.
"""

from __future__ import annotations

import json
import logging
import traceback
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerError

from core.errors import UnavailableError
from core.sql import jsonb_cast
from core.sql import least as least_function
from events.models import DeadLetter, Exposure, ExposureEvent, Outcome
from events.tasks import events_ingest_task
from experiments.models import Experiment

logger = logging.getLogger(__name__)

CHUNK = 500


def events_enqueue(*, exposures: Sequence[Mapping], outcomes: Sequence[Mapping]) -> None:
    """Hand one batch to the workers as one task; 503 when the broker cannot take it."""
    if not exposures and not outcomes:
        return
    batch = {"exposures": [_wire(e) for e in exposures], "outcomes": [_wire(e) for e in outcomes]}
    try:
        events_ingest_task.delay(batch)
    except BrokerError as exc:
        logger.error("events.enqueue_failed: %s", exc)
        raise UnavailableError(
            "The event queue is unavailable; nothing was accepted. Retry with the same event ids."
        ) from exc


def _wire(event: Mapping[str, Any]) -> dict[str, Any]:
    wire = dict(event)
    if isinstance(wire.get("timestamp"), datetime):
        wire["timestamp"] = wire["timestamp"].isoformat()
    return wire


def events_ingest(*, batch: Mapping[str, Sequence[Mapping[str, Any]]]) -> dict[str, int]:
    """Store one batch; returns how many raw events were new (the rest were replays).

    A batch holds `outcomes` and `exposures` (events as POST /events validated them) and/or
    `assignments`: /assign's compact records, one per request (`assignment_exposures`).
    """
    exposures = [*batch.get("exposures", ()), *assignment_exposures(batch.get("assignments", ()))]
    with transaction.atomic():
        new_outcomes = _outcomes_insert(batch.get("outcomes", ()))
        new_exposures = _exposures_insert(exposures)
    return {"outcomes": new_outcomes, "exposures": new_exposures}


def assignment_exposures(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The exposure events of /assign records: one per experiment the unit was assigned in."""
    return [
        {
            "event_id": f"a-{record['request_id']}-{index}",
            "experiment": experiment,
            "unit_id": record["unit_id"],
            "variant": variant,
            "timestamp": record["timestamp"],
            "attributes": record["attributes"],
        }
        for record in records
        for index, (experiment, variant) in enumerate(record["variants"].items())
    ]


def _timestamp(value: str | datetime) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


def _outcomes_insert(events: Sequence[Mapping[str, Any]]) -> int:
    adapt = connection.ops.adapt_datetimefield_value
    rows = [
        (
            e["event_id"],
            e["unit_id"],
            e["name"],
            float(e["value"]),
            adapt(_timestamp(e["timestamp"])),
            json.dumps(e.get("properties") or {}),
        )
        for e in events
    ]
    columns = ("event_id", "unit_id", "name", "value", "timestamp", "properties")
    return len(_insert_new(Outcome._meta.db_table, columns, rows))


def _exposures_insert(events: Sequence[Mapping[str, Any]]) -> int:
    if not events:
        return 0
    keys = {e["experiment"] for e in events}
    experiment_ids = dict(Experiment.objects.filter(key__in=keys).values_list("key", "id"))
    # An experiment deleted between validation and this write: nothing to attach its events to.
    events = [e for e in events if e["experiment"] in experiment_ids]
    adapt = connection.ops.adapt_datetimefield_value
    rows = [
        (
            e["event_id"],
            experiment_ids[e["experiment"]],
            e["unit_id"],
            e["variant"],
            adapt(_timestamp(e["timestamp"])),
            json.dumps(e.get("attributes") or {}),
        )
        for e in events
    ]
    columns = ("event_id", "experiment_id", "unit_id", "variant", "timestamp", "attributes")
    inserted = _insert_new(ExposureEvent._meta.db_table, columns, rows)
    fresh = [e for e in events if e["event_id"] in inserted]
    _exposure_summary_upsert(fresh, experiment_ids)
    return len(fresh)


def _insert_new(table: str, columns: Sequence[str], rows: Sequence[tuple]) -> set[str]:
    """Multi-row INSERT skipping known event ids; returns the event ids really inserted."""
    if not rows:
        return set()
    if connection.vendor == "postgresql":
        return _insert_new_copy(table, columns, rows)
    placeholders = ", ".join("%s" for _ in columns)
    received_at = connection.ops.adapt_datetimefield_value(timezone.now())
    inserted: set[str] = set()
    with connection.cursor() as cursor:
        for start in range(0, len(rows), CHUNK):
            chunk = rows[start : start + CHUNK]
            values = ", ".join([f"({placeholders}, %s)"] * len(chunk))
            params = [value for row in chunk for value in (*row, received_at)]
            cursor.execute(
                f"INSERT INTO {table} ({', '.join(columns)}, received_at) VALUES {values} "
                "ON CONFLICT (event_id) DO NOTHING RETURNING event_id",
                params,
            )
            inserted.update(row[0] for row in cursor.fetchall())
    return inserted


def _insert_new_copy(table: str, columns: Sequence[str], rows: Sequence[tuple]) -> set[str]:
    """PostgreSQL: COPY the rows into a session-local staging table, then one
    `INSERT ... SELECT ... ON CONFLICT (event_id) DO NOTHING RETURNING event_id`.

    Same result as the multi-row INSERT (duplicates in the batch or already stored are skipped,
    the ids really inserted come back), at a fraction of the cost: no 7-parameters-per-row
    statement to build, send and parse. The staging table empties itself at commit, so it must
    be filled and read in one transaction.
    """
    stage = f"{table}_stage"
    names = ", ".join(columns)
    received_at = timezone.now()
    with transaction.atomic(savepoint=False), connection.cursor() as cursor:
        # Kept for the session; re-made if a rolled-back transaction took it away.
        cursor.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {stage} ON COMMIT DELETE ROWS AS "
            f"SELECT {names} FROM {table} WITH NO DATA"
        )
        with cursor.cursor.copy(f"COPY {stage} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        cursor.execute(
            f"INSERT INTO {table} ({names}, received_at) SELECT {names}, %s FROM {stage} "
            "ON CONFLICT (event_id) DO NOTHING RETURNING event_id",
            [received_at],
        )
        inserted = {row[0] for row in cursor.fetchall()}
    return inserted


def _exposure_summary_upsert(events: Sequence[Mapping], experiment_ids: Mapping[str, int]) -> None:
    """Fold new exposures into one summary row per (experiment, unit)."""
    if not events:
        return
    # One row per unit and experiment: ON CONFLICT cannot touch the same row twice per statement.
    grouped: dict[tuple[int, str], list[Mapping]] = defaultdict(list)
    for e in events:
        grouped[(experiment_ids[e["experiment"]], e["unit_id"])].append(e)
    table = Exposure._meta.db_table
    jsonb = jsonb_cast(connection.vendor)
    least = least_function(connection.vendor)
    adapt = connection.ops.adapt_datetimefield_value
    # Sorted keys: concurrent workers lock summary rows in one order, so they cannot deadlock.
    keys = sorted(grouped)
    with connection.cursor() as cursor:
        for start in range(0, len(keys), CHUNK):
            chunk = keys[start : start + CHUNK]
            values = ", ".join([f"(%s, %s, %s, %s, %s{jsonb}, %s, %s, %s)"] * len(chunk))
            params: list[Any] = []
            for key in chunk:
                group = grouped[key]
                first = min(group, key=lambda e: _timestamp(e["timestamp"]))
                params += [
                    key[0],
                    key[1],
                    first["variant"],
                    adapt(_timestamp(first["timestamp"])),
                    json.dumps(first.get("attributes") or {}),
                    len(group),
                    len({e["variant"] for e in group}) > 1,
                    sum(1 for e in group if e.get("mismatched")),
                ]
            earlier = f"EXCLUDED.first_exposed_at < {table}.first_exposed_at"
            cursor.execute(
                f"INSERT INTO {table} AS {table} (experiment_id, unit_id, variant, "
                "first_exposed_at, attributes, exposure_count, multiple_variants, "
                f"mismatched_count) VALUES {values} "
                "ON CONFLICT (experiment_id, unit_id) DO UPDATE SET "
                f"multiple_variants = {table}.multiple_variants OR EXCLUDED.multiple_variants "
                f"OR {table}.variant <> EXCLUDED.variant, "
                f"variant = CASE WHEN {earlier} THEN EXCLUDED.variant ELSE {table}.variant END, "
                f"attributes = CASE WHEN {earlier} THEN EXCLUDED.attributes "
                f"ELSE {table}.attributes END, "
                f"first_exposed_at = {least}({table}.first_exposed_at, "
                "EXCLUDED.first_exposed_at), "
                f"exposure_count = {table}.exposure_count + EXCLUDED.exposure_count, "
                f"mismatched_count = {table}.mismatched_count + EXCLUDED.mismatched_count",
                params,
            )


def dead_letter_record(
    *, task_name: str, payload: Any, error: BaseException, attempts: int
) -> None:
    """Keep a batch that cannot be written, whole, with its error, for a later replay."""
    DeadLetter.objects.create(
        task_name=task_name,
        payload=payload,
        error="".join(traceback.format_exception(error))[-10000:],
        attempts=attempts,
    )
    logger.error("events.dead_lettered task=%s error=%s", task_name, error)


def dead_letter_replay(*, dead_letter: DeadLetter) -> None:
    """Send a dead-lettered batch through the workers again (idempotent, so always safe)."""
    events_ingest_task.delay(dead_letter.payload)
    DeadLetter.objects.filter(pk=dead_letter.pk).update(replayed_at=timezone.now())
