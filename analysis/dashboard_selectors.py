"""Reads for the admin dashboard: a fixed, small number of queries whatever the history length.

The overview reads one query per table (experiments with their latest finished snapshot id,
those snapshots' few JSON keys, their primary comparisons). The results page reads the latest
snapshot's JSON once and the history from `SnapshotComparison` columns only: old snapshots'
JSON is never loaded or parsed.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from django.db.models import OuterRef, Subquery
from django.db.models.fields.json import KeyTransform

from analysis.models import ACTIVE_STATES, Snapshot, SnapshotComparison, SnapshotState
from analysis.results import GuardrailAlert
from experiments.models import Experiment, Role


def _latest_done(experiment_ref: Any) -> Any:
    return Snapshot.objects.filter(experiment=experiment_ref, state=SnapshotState.DONE).order_by(
        "-computed_at", "-id"
    )


def _json_key(*path: str) -> KeyTransform:
    expression: Any = "results"
    for key in path:
        expression = KeyTransform(key, expression)
    return expression


@dataclass
class OverviewRow:
    experiment: Experiment
    snapshot_id: int | None = None
    computed_at: dt.datetime | None = None
    units_by_variant: dict[str, int] = field(default_factory=dict)
    srm_flagged: bool = False
    srm_p_value: float | None = None
    guardrail_alerts: list[GuardrailAlert] = field(default_factory=list)
    # "no_guardrails" | "not_enough_data" | "no_harm_detected" | "harm_detected"; None for
    # results written before the decision rule kept it.
    guardrail_status: str | None = None
    # (metric, variant, decision, relative effect) of the primary metrics, in stored order.
    primary: list[tuple[str, str, str, float | None]] = field(default_factory=list)


def experiments_overview() -> list[OverviewRow]:
    """Every experiment with what its latest finished snapshot says: three queries in all."""
    experiments = list(
        Experiment.objects.only(
            "id", "key", "name", "status", "started_at", "stopped_at", "created_at", "owner"
        )
        .annotate(latest_snapshot_id=Subquery(_latest_done(OuterRef("pk")).values("pk")[:1]))
        .order_by("status", "-started_at", "key")
    )
    rows = {e.pk: OverviewRow(experiment=e) for e in experiments}
    by_snapshot = {
        e.latest_snapshot_id: rows[e.pk] for e in experiments if e.latest_snapshot_id is not None
    }
    if by_snapshot:
        snapshots = Snapshot.objects.filter(pk__in=by_snapshot).values_list(
            "pk",
            "computed_at",
            "srm_flagged",
            _json_key("diagnostics", "units_by_variant"),
            _json_key("srm", "p_value"),
            _json_key("guardrail_alerts"),
            _json_key("guardrail_status"),
        )
        for pk, computed_at, srm_flagged, units, srm_p, alerts, status in snapshots:
            row = by_snapshot[pk]
            row.snapshot_id, row.computed_at, row.srm_flagged = pk, computed_at, srm_flagged
            row.units_by_variant = units if isinstance(units, dict) else {}
            row.srm_p_value = srm_p if isinstance(srm_p, int | float) else None
            row.guardrail_alerts = [
                GuardrailAlert.from_json(a)
                for a in (alerts if isinstance(alerts, list) else [])
                if isinstance(a, dict)
            ]
            row.guardrail_status = status if isinstance(status, str) else None
        primary = (
            SnapshotComparison.objects.filter(snapshot_id__in=by_snapshot, role=Role.PRIMARY)
            .order_by("snapshot_id", "id")
            .values_list("snapshot_id", "metric", "variant", "decision", "relative_effect")
        )
        for snapshot_id, metric, variant, decision, relative in primary:
            by_snapshot[snapshot_id].primary.append((metric, variant, decision, relative))
    return list(rows.values())


@dataclass
class ResultsData:
    experiment: Experiment
    snapshot: Snapshot | None
    # An unfinished snapshot of this experiment, if any: (id, state, requested_at).
    active: tuple[int, str, dt.datetime] | None
    # (computed_at, metric, variant, relative effect, low, high) of primary comparisons;
    # computed_at is set on every finished snapshot, but its column allows null.
    history: list[tuple[dt.datetime | None, str, str, float | None, float | None, float | None]]


def experiment_results(*, experiment: Experiment) -> ResultsData:
    """The latest finished snapshot (JSON included) and the primary metrics' history."""
    snapshot = (
        _latest_done(experiment)
        .only("id", "experiment_id", "computed_at", "results", "srm_flagged", "guardrail_alert")
        .first()
    )
    active = (
        Snapshot.objects.filter(experiment=experiment, state__in=ACTIVE_STATES)
        .values_list("pk", "state", "requested_at")
        .first()
    )
    history = list(
        SnapshotComparison.objects.filter(
            snapshot__experiment=experiment,
            snapshot__state=SnapshotState.DONE,
            role=Role.PRIMARY,
        )
        .order_by("snapshot__computed_at", "snapshot_id", "id")
        .values_list(
            "snapshot__computed_at",
            "metric",
            "variant",
            "relative_effect",
            "relative_low",
            "relative_high",
        )
    )
    return ResultsData(experiment=experiment, snapshot=snapshot, active=active, history=history)


def metric_names() -> dict[str, str]:
    """Metric key → name, so pages and alerts name metrics the way people defined them."""
    from experiments.models import Metric

    return dict(Metric.objects.values_list("key", "name"))


@dataclass(frozen=True)
class GuardrailLink:
    metric: str
    name: str
    direction: str
    harm_margin: float | None


def guardrail_links(*, experiment: Experiment) -> list[GuardrailLink]:
    """The experiment's guardrail metrics with what the harm test needs to be drawn."""
    rows = (
        experiment.metrics.filter(role=Role.GUARDRAIL)
        .order_by("id")
        .values_list("metric__key", "metric__name", "metric__direction", "harm_margin")
    )
    return [
        GuardrailLink(key, name or key, direction, margin) for key, name, direction, margin in rows
    ]


def guardrail_history(
    *, experiment: Experiment, limit: int = 3000
) -> list[tuple[dt.datetime, str, dict[str, Any]]]:
    """The newest `limit` looks of the GuardrailCheck chain, oldest first: (checked_at,
    source, guardrail decision state). One query."""
    from analysis.models import GuardrailCheck

    rows = (
        GuardrailCheck.objects.filter(experiment=experiment)
        .order_by("-id")
        .values_list("checked_at", "source", "decision_state")[:limit]
    )
    return list(reversed(rows))
