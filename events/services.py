"""Writes of events. Workers call these; they tolerate replays (tasks may run twice)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from django.utils.dateparse import parse_datetime

from events.models import Exposure
from experiments.models import Experiment


def exposures_record(*, exposures: Iterable[Mapping[str, Any]]) -> int:
    """Store first exposures; an (experiment, unit) already stored keeps its first row."""
    exposures = list(exposures)
    keys = {e["experiment"] for e in exposures}
    experiment_ids = dict(Experiment.objects.filter(key__in=keys).values_list("key", "id"))
    rows = [
        Exposure(
            experiment_id=experiment_ids[e["experiment"]],
            unit_id=e["unit_id"],
            variant=e["variant"],
            first_exposed_at=_as_datetime(e["timestamp"]),
            attributes=e.get("attributes") or {},
        )
        for e in exposures
        if e["experiment"] in experiment_ids
    ]
    created = Exposure.objects.bulk_create(rows, ignore_conflicts=True, batch_size=1000)
    return len(created)


def _as_datetime(value: str | datetime) -> datetime:
    return value if isinstance(value, datetime) else parse_datetime(value)
