"""Snapshots: SQL sufficient statistics → statistics engine → stored results (CONTRACT §5).

`snapshot_request` queues at most one snapshot per experiment; `snapshot_compute` claims it
with a conditional update (a replayed task finds nothing to claim), computes every metric and
stores the results with one row per comparison for the charts.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, InterfaceError, OperationalError, transaction
from django.db.models import Q
from django.utils import timezone

from analysis.models import ACTIVE_STATES, Snapshot, SnapshotComparison, SnapshotState
from analysis.selectors import exposure_diagnostics, metric_variant_stats
from analysis.stats import (
    AnalysisResult,
    Comparison,
    SequentialState,
    StatsInputError,
    analyze,
    correct_comparisons,
    sample_ratio_mismatch,
    sequential_state_update,
)
from experiments.models import Aggregation, Experiment, ExperimentMetric, Method, Role, Status

logger = logging.getLogger(__name__)

METRIC_TYPE = {
    Aggregation.CONVERSION: "proportion",
    Aggregation.COUNT: "mean",
    Aggregation.SUM: "mean",
    Aggregation.MEAN: "mean",
    Aggregation.RATIO: "ratio",
}


def snapshot_request(*, experiment: Experiment) -> Snapshot:
    """Queue a snapshot on a worker, or return the one already queued or running.

    An active snapshot that is stuck (see `snapshot_recover`) is recovered first, so asking
    again is always enough to get a fresh result.
    """
    active = Snapshot.objects.filter(experiment=experiment, state__in=ACTIVE_STATES).first()
    if active is not None:
        active = snapshot_recover(snapshot=active)
        if active is not None:
            return active
    try:
        with transaction.atomic():
            snapshot = Snapshot.objects.create(experiment=experiment)
    except IntegrityError:
        # Another request queued one between our check and insert: join it.
        return Snapshot.objects.get(experiment=experiment, state__in=ACTIVE_STATES)
    transaction.on_commit(lambda: _snapshot_publish(snapshot.pk))
    return snapshot


def snapshot_compute_now(*, experiment: Experiment) -> Snapshot:
    """Compute a snapshot in this process (`analyze` command, demo); joins an active one."""
    try:
        with transaction.atomic():
            snapshot = Snapshot.objects.create(experiment=experiment)
    except IntegrityError:
        snapshot = Snapshot.objects.get(experiment=experiment, state__in=ACTIVE_STATES)
    snapshot_compute(snapshot_id=snapshot.pk)
    snapshot.refresh_from_db()
    return snapshot


def snapshots_due() -> list[Snapshot]:
    """Queue snapshots of running experiments whose schedule has come (called by beat)."""
    now = timezone.now()
    queued = []
    for experiment in Experiment.objects.filter(status=Status.RUNNING):
        last = (
            experiment.snapshots.order_by("-requested_at")
            .values_list("requested_at", flat=True)
            .first()
        )
        if last is None or (now - last).total_seconds() >= experiment.schedule_minutes * 60:
            queued.append(snapshot_request(experiment=experiment))
    return queued


def snapshot_compute(*, snapshot_id: int) -> Snapshot | None:
    claimed = Snapshot.objects.filter(pk=snapshot_id, state=SnapshotState.QUEUED).update(
        state=SnapshotState.RUNNING, started_at=timezone.now()
    )
    if claimed != 1:
        return None  # another worker owns it, or it is finished: a replay changes nothing
    snapshot = Snapshot.objects.select_related("experiment").get(pk=snapshot_id)
    try:
        results, rows = _analyse(snapshot)
    except (OperationalError, InterfaceError):
        # The database blinked: put the snapshot back so the task's retry can claim it again.
        Snapshot.objects.filter(pk=snapshot_id).update(state=SnapshotState.QUEUED)
        raise
    except Exception as error:
        logger.exception("snapshot.failed id=%s", snapshot_id)
        Snapshot.objects.filter(pk=snapshot_id).update(
            state=SnapshotState.FAILED, error=repr(error)[:2000], computed_at=timezone.now()
        )
        return None
    with transaction.atomic():
        still_ours = Snapshot.objects.select_for_update().filter(
            pk=snapshot_id, state=SnapshotState.RUNNING
        )
        if not still_ours.exists():
            # Recovered as stuck while this ran (snapshot_recover): its replacement reports.
            return None
        SnapshotComparison.objects.bulk_create(rows)
        snapshot.results = results
        snapshot.state = SnapshotState.DONE
        snapshot.computed_at = timezone.now()
        snapshot.srm_flagged = results["srm"]["flagged"]
        snapshot.guardrail_alert = bool(results["guardrail_alerts"])
        snapshot.results["computed_at"] = snapshot.computed_at.isoformat()
        snapshot.save()
    _maybe_auto_pause(snapshot)
    return snapshot


def _maybe_auto_pause(snapshot: Snapshot) -> None:
    experiment = snapshot.experiment
    if snapshot.guardrail_alert and experiment.auto_pause_on_guardrail:
        from experiments.services import experiment_pause

        experiment.refresh_from_db()
        if experiment.status == Status.RUNNING:
            experiment_pause(experiment=experiment)
            logger.warning("experiment.auto_paused key=%s guardrail", experiment.key)


def _previous_states(experiment: Experiment) -> dict[tuple[str, str], SequentialState]:
    previous = (
        Snapshot.objects.filter(experiment=experiment, state=SnapshotState.DONE)
        .order_by("-computed_at", "-id")
        .first()
    )
    if previous is None:
        return {}
    return {
        (row.metric, row.variant): SequentialState(
            looks=row.looks,
            p_value=row.p_value,
            absolute_ci=_pair(row.absolute_low, row.absolute_high),
            relative_ci=_pair(row.relative_low, row.relative_high),
        )
        for row in previous.comparisons.all()
    }


def _pair(low: float | None, high: float | None) -> tuple[float, float] | None:
    return None if low is None or high is None else (low, high)


def _analyse(snapshot: Snapshot) -> tuple[dict[str, Any], list[SnapshotComparison]]:
    experiment = snapshot.experiment
    variants = sorted(experiment.variants.all(), key=lambda v: (not v.is_control, v.position))
    keys = [v.key for v in variants]
    weights = [v.weight for v in variants]
    diagnostics = exposure_diagnostics(experiment=experiment)
    observed = {key: diagnostics.units_by_variant.get(key, 0) for key in keys}
    srm = sample_ratio_mismatch(observed, weights, experiment.srm_threshold)
    looks_done = Snapshot.objects.filter(experiment=experiment, state=SnapshotState.DONE).count()
    previous = _previous_states(experiment) if experiment.method == Method.SEQUENTIAL else {}

    analysed: list[tuple[ExperimentMetric, AnalysisResult]] = []
    for link in experiment.metrics.select_related("metric"):
        metric = link.metric
        cuped = experiment.cuped and metric.cuped_lookback_days > 0
        stats = metric_variant_stats(experiment=experiment, metric=metric, cuped=cuped)
        options: dict[str, Any] = {}
        if experiment.method == Method.GROUP_SEQUENTIAL:
            planned = experiment.planned_looks or 5
            options = {"look": min(looks_done + 1, planned), "planned_looks": planned}
        try:
            result = analyze(
                METRIC_TYPE[metric.aggregation],
                experiment.method,
                [stats[key] for key in keys],
                alpha=experiment.alpha,
                sequential_tuning=experiment.sequential_tuning or experiment.planned_sample_size,
                expected_weights=weights,
                srm_threshold=experiment.srm_threshold,
                cuped=cuped,
                direction=metric.direction,
                correction="none",
                **options,
            )
        except StatsInputError as error:
            logger.error("snapshot.metric_skipped metric=%s error=%s", metric.key, error)
            continue
        analysed.append((link, result))

    states: dict[tuple[str, str], SequentialState] = {}
    reported: dict[tuple[str, str], Comparison] = {}
    for link, result in analysed:
        for comparison in result.comparisons:
            key = (link.metric.key, comparison.variant)
            if experiment.method == Method.SEQUENTIAL:
                state = sequential_state_update(
                    previous.get(key),
                    comparison.p_value,
                    comparison.absolute_ci,
                    comparison.relative_ci,
                )
                states[key] = state
                comparison = replace(
                    comparison,
                    p_value=state.p_value,
                    absolute_ci=state.absolute_ci,
                    relative_ci=state.relative_ci,
                    reason=comparison.reason or state.reason,
                )
            reported[key] = comparison

    # Holm/BH over primary and secondary metrics × treatments; guardrails are judged alone.
    families = {
        "main": [
            k
            for (link, r) in analysed
            if link.role != Role.GUARDRAIL
            for k in [(link.metric.key, c.variant) for c in r.comparisons]
        ],
        "guardrail": [
            k
            for (link, r) in analysed
            if link.role == Role.GUARDRAIL
            for k in [(link.metric.key, c.variant) for c in r.comparisons]
        ],
    }
    for name, family in families.items():
        correction = experiment.correction if name == "main" else "none"
        corrected = correct_comparisons(
            [reported[k] for k in family], correction, experiment.alpha
        )
        reported.update(zip(family, corrected, strict=True))

    raw_p = {
        (link.metric.key, c.variant): c.p_value for link, r in analysed for c in r.comparisons
    }
    metrics_json, rows, alerts = [], [], []
    for link, result in analysed:
        comparisons = [reported[(link.metric.key, c.variant)] for c in result.comparisons]
        units = {v.variant: v.units for v in result.variants}
        for c in comparisons:
            if link.role == Role.GUARDRAIL and c.decision == "loss":
                alerts.append({"metric": link.metric.key, "variant": c.variant})
            rows.append(_row(snapshot, link, c, units, raw_p, states))
        metrics_json.append(
            {
                "metric": link.metric.key,
                "name": link.metric.name or link.metric.key,
                "aggregation": link.metric.aggregation,
                "direction": link.metric.direction,
                "role": link.role,
                "cuped": result.cuped,
                "variants": [v.to_dict() for v in result.variants],
                "comparisons": [c.to_dict() for c in comparisons],
                "notes": list(result.notes),
            }
        )
    results = {
        "experiment": experiment.key,
        "snapshot_id": snapshot.pk,
        "computed_at": None,
        "method": experiment.method,
        "alpha": experiment.alpha,
        "correction": experiment.correction,
        "srm": srm.to_dict(),
        "diagnostics": {
            "units_by_variant": diagnostics.units_by_variant,
            "multiple_variant_units": diagnostics.multiple_variant_units,
            "mismatched_exposures": diagnostics.mismatched_exposures,
            "exposures_by_day": [
                {"date": d.date.isoformat(), "variant": d.variant, "units": d.units}
                for d in diagnostics.exposures_by_day
            ],
        },
        "metrics": metrics_json,
        "guardrail_alerts": alerts,
        "planned_sample_size": experiment.planned_sample_size,
        "total_units": sum(observed.values()),
    }
    results["summary"] = results_summary(results)
    return results, rows


def _row(
    snapshot: Snapshot,
    link: ExperimentMetric,
    c: Comparison,
    units: dict[str, int],
    raw_p: dict[tuple[str, str], float | None],
    states: dict[tuple[str, str], SequentialState],
) -> SnapshotComparison:
    key = (link.metric.key, c.variant)
    absolute = c.absolute_ci or (None, None)
    relative = c.relative_ci or (None, None)
    return SnapshotComparison(
        snapshot=snapshot,
        metric=link.metric.key,
        role=link.role,
        variant=c.variant,
        baseline=c.baseline,
        units=units.get(c.variant, 0),
        baseline_units=units.get(c.baseline, 0),
        absolute_effect=c.absolute_effect,
        absolute_low=absolute[0],
        absolute_high=absolute[1],
        relative_effect=c.relative_effect,
        relative_low=relative[0],
        relative_high=relative[1],
        p_value=c.p_value,
        raw_p_value=raw_p.get(key),
        adjusted_p_value=c.adjusted_p_value,
        significant=c.significant,
        decision=c.decision,
        looks=states[key].looks if key in states else 1,
    )


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:+.1f}%"


def results_summary(results: dict[str, Any]) -> str:
    """One plain-language paragraph a product manager can act on."""
    parts: list[str] = []
    if results["srm"]["flagged"]:
        parts.append(
            "Sample ratio mismatch: units are not split as configured, so the results "
            "cannot be trusted until the cause is found."
        )
    primary = [m for m in results["metrics"] if m["role"] == "primary"]
    interval = {
        "sequential": "always-valid interval",
        "fixed": "interval",
        "group_sequential": "interval",
    }[results["method"]]
    level = round((1 - results["alpha"]) * 100)
    for metric in primary:
        for c in metric["comparisons"]:
            name = metric["name"]
            if c["relative_effect"] is None:
                parts.append(f"{c['variant']} vs {c['baseline']} on {name}: not enough data yet.")
                continue
            verb = "raises" if c["relative_effect"] > 0 else "lowers"
            low, high = c["relative_ci"] or (None, None)
            verdict = {
                "win": "significant win",
                "loss": "significant loss",
                "inconclusive": "not significant yet",
            }[c["decision"]]
            parts.append(
                f"{c['variant']} {verb} {name} by {abs(c['relative_effect']) * 100:.1f}% "
                f"({level}% {interval} {_percent(low)} to {_percent(high)}); {verdict}."
            )
    if not primary:
        parts.append("No primary metric is configured.")
    alerts = results["guardrail_alerts"]
    parts.append(
        "Guardrails healthy."
        if not alerts
        else "Guardrail alert: "
        + ", ".join(f"{a['variant']} harms {a['metric']}" for a in alerts)
        + "."
    )
    return " ".join(parts)


# Recovery of stuck snapshots (CONTRACT §8.4: within 10 minutes by default, by beat and on
# the next request). A snapshot is stuck when it is `running` but its worker died (killed,
# out of memory: the redelivered task cannot claim it), or `queued` but its task was never
# published (broker down at commit) or was lost. Neither can be told apart from a slow
# snapshot without asking the workers, so "stuck" is "active for longer than
# VARIANTLAB_SNAPSHOT_RECOVERY_SECONDS", which must stay well above the longest compute
# (docs/benchmarks.md: under a minute for a million units).


def _snapshot_publish(snapshot_id: int) -> bool:
    """Send the compute task; False when the broker refuses (recovery publishes it later)."""
    from analysis.tasks import snapshot_compute_task

    try:
        snapshot_compute_task.delay(snapshot_id)
    except Exception:
        # A broker outage must not turn the request into a 500 after the snapshot committed;
        # the row stays queued and `snapshots_recover` re-publishes it once the broker is back.
        logger.warning("snapshot.publish_failed id=%s", snapshot_id, exc_info=True)
        return False
    return True


def snapshot_recover(*, snapshot: Snapshot, now: Any = None) -> Snapshot | None:
    """Recover `snapshot` if it is stuck. Returns the active snapshot standing for it
    (itself, re-published, when queued), or None when a stuck running one was failed and
    the experiment has no active snapshot any more (the caller may queue a new one)."""
    now = now or timezone.now()
    limit = now - timedelta(seconds=settings.VARIANTLAB_SNAPSHOT_RECOVERY_SECONDS)
    if snapshot.state == SnapshotState.QUEUED:
        if snapshot.requested_at < limit:
            logger.warning("snapshot.recovered id=%s was=queued", snapshot.pk)
            _snapshot_publish(snapshot.pk)  # a duplicate task is harmless: the claim is atomic
        return snapshot
    if snapshot.state == SnapshotState.RUNNING and (snapshot.started_at or now) < limit:
        # Conditional: only the attempt we judged stuck is failed, once. Its worker, if it was
        # only slow, finds the snapshot no longer running and drops its result.
        failed = Snapshot.objects.filter(
            pk=snapshot.pk, state=SnapshotState.RUNNING, started_at=snapshot.started_at
        ).update(
            state=SnapshotState.FAILED,
            computed_at=now,
            error=f"recovered: still running after "
            f"{settings.VARIANTLAB_SNAPSHOT_RECOVERY_SECONDS} s (worker lost); "
            "replaced by a new snapshot",
        )
        if failed:
            logger.warning("snapshot.recovered id=%s was=running", snapshot.pk)
            return None
    snapshot.refresh_from_db()
    return snapshot if snapshot.state in ACTIVE_STATES else None


def snapshots_recover() -> list[Snapshot]:
    """Recover every stuck snapshot (called by beat): queued ones are re-published, running
    ones failed and replaced by a new snapshot. Returns the snapshots now active for them."""
    now = timezone.now()
    limit = now - timedelta(seconds=settings.VARIANTLAB_SNAPSHOT_RECOVERY_SECONDS)
    stuck = Snapshot.objects.select_related("experiment").filter(
        Q(state=SnapshotState.QUEUED, requested_at__lt=limit)
        | Q(state=SnapshotState.RUNNING, started_at__lt=limit)
    )
    recovered = []
    for snapshot in stuck:
        active = snapshot_recover(snapshot=snapshot, now=now)
        recovered.append(active or snapshot_request(experiment=snapshot.experiment))
    return recovered


def snapshot_oldest_pending_seconds(*, now: Any = None) -> float | None:
    """Age of the oldest queued or running snapshot (for /readyz and the admin), or None."""
    oldest = (
        Snapshot.objects.filter(state__in=ACTIVE_STATES)
        .order_by("requested_at")
        .values_list("requested_at", flat=True)
        .first()
    )
    return None if oldest is None else ((now or timezone.now()) - oldest).total_seconds()
