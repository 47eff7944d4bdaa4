"""The assignment hot path: in-memory config, pure engine, exposures handed to Celery."""

from __future__ import annotations

import logging
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
    from events.tasks import exposures_record_task

    now = timezone.now().isoformat()
    exposures = [
        {
            "experiment": key,
            "unit_id": unit_id,
            "variant": variant,
            "timestamp": now,
            "attributes": dict(attributes),
        }
        for key, variant in assignments.items()
    ]
    try:
        exposures_record_task.delay(exposures)
    except BrokerError:
        # The unit still gets its variant; losing its exposure is better than failing the app.
        logger.exception("exposure.enqueue_failed unit=%s", unit_id)
        return False
    return True
