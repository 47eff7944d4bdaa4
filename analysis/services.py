"""Snapshots: SQL sufficient statistics → statistics engine → stored results (docs/api.md §8).

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

from analysis.alerts import alert_send
from analysis.guardrails import decide_with_guardrail_chain
from analysis.look_inputs import (
    decision_settings,
    metric_inputs,
    previous_decision_state,
    variant_order,
)
from analysis.models import (
    ACTIVE_STATES,
    GuardrailCheck,
    GuardrailCheckSource,
    Snapshot,
    SnapshotComparison,
    SnapshotState,
)
from analysis.results import (
    Diagnostics,
    ExposureDayCount,
    SnapshotInputs,
    SnapshotResults,
    snapshot_look,
)
from analysis.selectors import (
    ExposureDiagnostics,
    exposure_diagnostics,
    units_first_exposed_since,
)
from analysis.stats.decisions import (
    DecisionState,
)
from analysis.stats.srm import SRMResult
from audit.services import audit_record
from core.actors import SYSTEM
from experiments.models import Experiment, Status

logger = logging.getLogger(__name__)


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
        results, rows, state, _check = _analyse(snapshot)
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
        was_flagged = (
            Snapshot.objects.filter(experiment=snapshot.experiment, state=SnapshotState.DONE)
            .order_by("-computed_at", "-id")
            .values_list("srm_flagged", flat=True)
            .first()
        )
        SnapshotComparison.objects.bulk_create(rows)
        snapshot.state = SnapshotState.DONE
        snapshot.computed_at = timezone.now()
        results = replace(results, computed_at=snapshot.computed_at.isoformat())
        snapshot.results = results.to_json()
        snapshot.srm_flagged = results.srm.flagged
        snapshot.decision_state = state.to_json()
        snapshot.guardrail_alert = bool(results.guardrail_alerts)
        snapshot.save()
        if snapshot.srm_flagged and not was_flagged:
            _srm_flag_raised(snapshot.experiment, results.srm)
    # Only the always-valid harm test acts (docs/api.md §7), never a fixed p-value: the
    # guardrail look `_analyse` appended to the check chain acts when it commits
    # (analysis/guardrails.py), alerts for new harm and rollbacks with auto_rollback.
    return snapshot


def _srm_flag_raised(experiment: Experiment, srm: SRMResult) -> None:
    """A new SRM flag (it stays once set): an audit entry by the system and an alert."""
    p = srm.sequential_p_value
    message = (
        f"Sample ratio mismatch: units are not split as configured "
        f"(observed {srm.observed}, sequential p = {p:.2g}); the results cannot be "
        "trusted until the cause is found."
        if p is not None
        else "Sample ratio mismatch: units are not split as configured."
    )
    audit_record(
        action="srm_flag",
        object_type="experiment",
        object_key=experiment.key,
        experiment_key=experiment.key,
        changes={"srm.flagged": [False, True]},
        reason=message,
        actor=SYSTEM,
    )
    alert_send(kind="srm", experiment=experiment, message=message)


def _srm_basis(
    experiment: Experiment,
    variants: list[Any],
    observed: dict[str, int],
    previous: DecisionState | None,
) -> tuple[dict[str, int], list[float], DecisionState | None]:
    """What the SRM test counts (docs/api.md §7, "SRM after a rollback").

    Without a rollback: every analysed unit against the configured weights. After one: the
    arms still live, over units first exposed since the latest rollback, against their
    weights renormalised; the sequential test restarts there (its running minimum p is reset,
    an earlier flag stays), since a rolled-back arm stops receiving units by design.
    """
    rolled = [v.rolled_back_at for v in variants if v.rolled_back_at is not None]
    if not rolled:
        return observed, [v.weight for v in variants], previous
    since = max(rolled)
    live = [v for v in variants if v.rolled_back_at is None]
    counts = units_first_exposed_since(experiment=experiment, since=since)
    total = sum(v.weight for v in live) or 1.0
    state = DecisionState.from_json(previous.to_json() if previous else None)
    if state.srm_since != since.isoformat():
        state.srm_since, state.srm_min_p = since.isoformat(), None
    return {v.key: counts.get(v.key, 0) for v in live}, [v.weight / total for v in live], state


def _analyse(
    snapshot: Snapshot,
) -> tuple[SnapshotResults, list[SnapshotComparison], DecisionState, GuardrailCheck | None]:
    """Gather the look's inputs, decide it (`analysis.results.snapshot_look`, pure) on the
    guardrail check chain, and build the comparison rows; the caller stores them."""
    experiment = snapshot.experiment
    variants = variant_order(experiment)
    keys = [v.key for v in variants]
    diagnostics = exposure_diagnostics(experiment=experiment)
    observed = {key: diagnostics.units_by_variant.get(key, 0) for key in keys}

    links = list(experiment.metrics.select_related("metric"))
    inputs = metric_inputs(experiment, links)
    previous = previous_decision_state(experiment)
    srm_observed, srm_weights, previous = _srm_basis(experiment, variants, observed, previous)
    look_inputs = SnapshotInputs(
        experiment=experiment.key,
        snapshot_id=snapshot.pk,
        settings=decision_settings(experiment),
        variants=tuple(keys),
        metrics=tuple(inputs),
        diagnostics=_diagnostics(diagnostics),
        srm_observed=srm_observed,
        srm_weights=tuple(srm_weights),
        names={link.metric.key: link.metric.name or link.metric.key for link in links},
        aggregations={link.metric.key: link.metric.aggregation for link in links},
        at=timezone.now().isoformat(),
    )
    decided, check = decide_with_guardrail_chain(
        experiment=experiment,
        inputs=inputs,
        previous=previous,
        decide=lambda state: snapshot_look(look_inputs, state),
        source=GuardrailCheckSource.SNAPSHOT,
        snapshot=snapshot,
    )
    assert decided is not None  # only the monitor's looks are skipped (`expected_head`)
    rows = [
        _row(snapshot, metric, c, decided.state)
        for metric in decided.look.metrics
        for c in metric.comparisons
    ]
    return decided.results, rows, decided.state, check


def _diagnostics(diagnostics: ExposureDiagnostics) -> Diagnostics:
    return Diagnostics(
        units_by_variant=diagnostics.units_by_variant,
        multiple_variant_units=diagnostics.multiple_variant_units,
        mismatched_exposures=diagnostics.mismatched_exposures,
        exposures_by_day=tuple(
            ExposureDayCount(date=d.date.isoformat(), variant=d.variant, units=d.units)
            for d in diagnostics.exposures_by_day
        ),
    )


def _row(snapshot: Snapshot, metric: Any, c: Any, state: DecisionState) -> SnapshotComparison:
    absolute = c.absolute_ci or (None, None)
    relative = c.relative_ci or (None, None)
    adjusted = c.adjusted_ci or (None, None)
    units = {v.variant: v.units for v in metric.variants}
    comparison_state = state.comparisons.get(f"{metric.key}|{c.variant}")
    return SnapshotComparison(
        snapshot=snapshot,
        metric=metric.key,
        role=metric.role,
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
        raw_p_value=c.p_value,
        adjusted_p_value=c.adjusted_p_value,
        significant=c.significant,
        decision=c.decision,
        looks=comparison_state.looks if comparison_state else 0,
        adjusted_low=adjusted[0],
        adjusted_high=adjusted[1],
        effective_alpha=c.effective_alpha,
        harm=c.harm,
        reason=c.reason or "",
        look_effect=c.absolute_effect,
        look_variance=c.variance,
        look_total_units=c.total_units,
    )


# Recovery of stuck snapshots (docs/api.md §11: within 10 minutes by default, by beat and on
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
