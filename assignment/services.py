"""The assignment hot path: in-memory config, pure engine, exposures handed to Celery."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerError

from assignment.engine import Assignment, assign
from assignment.selectors import assignment_config

logger = logging.getLogger(__name__)


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
) -> UnitAssignments:
    config = assignment_config.get()
    keys = config.running_keys if experiment_keys is None else experiment_keys
    assignments: dict[str, Assignment] = {}
    unknown: list[str] = []
    for key in keys:
        experiment = config.experiments.get(key)
        if experiment is None:
            unknown.append(key)
        else:
            assignments[key] = assign(experiment, unit_id, attributes)
    logged = False
    if log_exposure:
        exposed = [k for k, a in assignments.items() if a.in_experiment]
        logged = exposures_enqueue(
            unit_id=unit_id,
            attributes=attributes,
            assignments={k: assignments[k].variant for k in exposed},
        )
    return UnitAssignments(assignments, unknown, logged)


def exposures_enqueue(
    *, unit_id: str, attributes: Mapping[str, Any], assignments: Mapping[str, str]
) -> bool:
    """Hand one request's exposures to a worker as one task. False if the broker refused."""
    if not assignments:
        return False
    from events.tasks import events_ingest_task

    now = timezone.now().isoformat()
    # Each /assign call is one exposure event per experiment: one random id for the request,
    # so a redelivered task is stored once, as with POST /events.
    request_id = uuid.uuid4().hex
    exposures = [
        {
            "event_id": f"a-{request_id}-{index}",
            "experiment": key,
            "unit_id": unit_id,
            "variant": variant,
            "timestamp": now,
            "attributes": dict(attributes),
        }
        for index, (key, variant) in enumerate(assignments.items())
    ]
    try:
        events_ingest_task.delay({"exposures": exposures, "outcomes": []})
    except BrokerError:
        # The unit still gets its variant; losing its exposure is better than failing the app.
        logger.exception("exposure.enqueue_failed unit=%s", unit_id)
        return False
    return True
