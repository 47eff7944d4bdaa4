"""Per-event validation for POST /events: plain functions, one error dict per bad event.

Kept free of DRF serializers on purpose: a batch holds up to 1000 events and this runs for
each of them on the request path.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from core.errors import error_body, first_message
from core.parsers import NUL_MESSAGE, nul_path

MAX_EVENTS = 1000
MAX_BODY_BYTES = 1024 * 1024
MAX_FUTURE = timedelta(minutes=5)
MAX_UNIT_ID = 256
MAX_EVENT_ID = 64
MAX_NAME = 200


class EventError(ValueError):
    def __init__(self, fields: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in fields.items()))
        self.fields = fields

    def as_json(self) -> dict:
        return error_body("invalid", first_message(self.fields), self.fields)["error"]


@dataclass(frozen=True, slots=True)
class KnownExperiment:
    """What validation needs to know of an experiment: its variants, and the server's choice."""

    variants: frozenset[str]
    server_variant: Callable[[str, Mapping[str, Any]], str | None]


def derived_event_id(event: Mapping[str, Any]) -> str:
    """A retry of the same event content gets the same id, so it is stored once."""
    canonical = json.dumps(event, sort_keys=True, separators=(",", ":"), default=str)
    return "d-" + hashlib.sha256(canonical.encode()).hexdigest()[:40]


def parse_timestamp(value: Any, now: datetime) -> datetime:
    if not isinstance(value, str):
        raise ValueError("must be an ISO 8601 string")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"'{value[:40]}' is not ISO 8601") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)  # naive timestamps are read as UTC
    if parsed - now > MAX_FUTURE:
        raise ValueError("is more than 5 minutes in the future")
    return parsed


def _string(event: Mapping[str, Any], field: str, limit: int, errors: dict[str, str]) -> str:
    value = event.get(field)
    if value is None:
        errors[field] = "This field is required."
    elif not isinstance(value, str) or not value:
        errors[field] = "must be a non-empty string"
    elif len(value) > limit:
        errors[field] = f"must be at most {limit} characters"
    else:
        return value
    return ""


def _common(event: Mapping[str, Any], now: datetime, errors: dict[str, str]) -> dict[str, Any]:
    unit_id = _string(event, "unit_id", MAX_UNIT_ID, errors)
    timestamp = now
    if event.get("timestamp") is not None:
        try:
            timestamp = parse_timestamp(event["timestamp"], now)
        except ValueError as exc:
            errors["timestamp"] = str(exc)
    event_id = event.get("event_id")
    if event_id is not None and (
        not isinstance(event_id, str) or not event_id or len(event_id) > MAX_EVENT_ID
    ):
        errors["event_id"] = f"must be a non-empty string of at most {MAX_EVENT_ID} characters"
    return {"unit_id": unit_id, "timestamp": timestamp, "event_id": event_id}


def validate_exposure(
    event: Mapping[str, Any], now: datetime, experiments: Mapping[str, KnownExperiment]
) -> dict[str, Any]:
    errors: dict[str, str] = {}
    clean = _common(event, now, errors)
    key = _string(event, "experiment", 100, errors)
    variant = _string(event, "variant", 100, errors)
    known = experiments.get(key) if key else None
    if key and known is None:
        errors["experiment"] = f"unknown experiment '{key}'"
    elif known is not None and variant and variant not in known.variants:
        errors["variant"] = f"experiment '{key}' has no variant '{variant}'"
    attributes = event.get("attributes", {})
    if attributes is None:
        attributes = {}
    if not isinstance(attributes, dict):
        errors["attributes"] = "must be a JSON object"
    if errors:
        raise EventError(errors)
    assert known is not None  # no error: the experiment was named and is known
    server = known.server_variant(clean["unit_id"], attributes)
    return {
        **clean,
        "event_id": clean["event_id"] or derived_event_id(event),
        "experiment": key,
        "variant": variant,
        "attributes": attributes,
        "mismatched": server is not None and server != variant,
    }


def validate_outcome(event: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    errors: dict[str, str] = {}
    clean = _common(event, now, errors)
    name = _string(event, "name", MAX_NAME, errors)
    value = event.get("value", 1)
    if value is None:
        value = 1
    if isinstance(value, bool) or not isinstance(value, int | float):
        errors["value"] = "must be a number"
    elif not math.isfinite(value):
        errors["value"] = "must be a finite number"
    properties = event.get("properties", {})
    if properties is None:
        properties = {}
    if not isinstance(properties, dict):
        errors["properties"] = "must be a JSON object"
    if errors:
        raise EventError(errors)
    return {
        **clean,
        "event_id": clean["event_id"] or derived_event_id(event),
        "name": name,
        "value": float(value),
        "properties": properties,
    }


def validate_batch(
    events: list[Any],
    now: datetime,
    experiments: Mapping[str, KnownExperiment],
    *,
    check_nul: bool = False,
) -> tuple[list[dict], list[dict], list[dict]]:
    """Split a batch into clean exposures, clean outcomes and rejections by index.

    `check_nul`: some string of the body holds a NUL, which PostgreSQL cannot store; the
    events holding one are rejected (naming the field), the others are kept.
    """
    exposures, outcomes, rejected = [], [], []
    for index, event in enumerate(events):
        try:
            if not isinstance(event, dict):
                raise EventError({"event": "must be a JSON object"})
            if check_nul and (path := nul_path(event)):
                raise EventError({path: NUL_MESSAGE})
            kind = event.get("type")
            if kind == "exposure":
                exposures.append(validate_exposure(event, now, experiments))
            elif kind == "outcome":
                outcomes.append(validate_outcome(event, now))
            else:
                raise EventError({"type": "must be 'exposure' or 'outcome'"})
        except EventError as exc:
            rejected.append({"index": index, "error": exc.as_json()})
    return exposures, outcomes, rejected
