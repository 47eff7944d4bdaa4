"""Guardrail checks between snapshots and at every snapshot (docs/api.md §7, §10).

The harm test of a guardrail is an always-valid one-sided test (analysis.stats.decisions), so
looking more often (every `guardrail_check_minutes` plus every snapshot) does not inflate its
error, provided every look folds into one running state: the running minimum p, the running
intersection of intervals, and the sticky `harm` flag. That state must never be lost (a
look's harm forgotten) nor folded twice from the same starting point.

Design: one chain of `GuardrailCheck` rows per experiment is the only home of the guardrail
state. Every look, whether by the monitor or by a snapshot:

1. computes its sufficient statistics without any lock (the expensive SQL; the monitor only
   for the guardrail metrics, with the same `metric_variant_stats` as snapshots);
2. locks the experiment row, reads the newest check (the chain head), replaces the guardrail
   comparisons of its starting state with the head's, runs `decide_look`, and appends a new
   check, in one transaction. Looks are serialised per experiment, so each one starts from
   the previous one's result;
3. once that transaction commits, acts (`guardrail_act`): an alert for each (metric,
   variant) whose harm is new at this check (once: harm is sticky and the previous head
   already had it otherwise), and with `auto_rollback` a rollback of every harmed arm not
   yet rolled back.

Snapshots keep their own chain (`Snapshot.decision_state`) for the primary and secondary
comparisons; only the guardrail comparisons come from, and go to, the check chain. Before the
first check of an experiment the guardrail state is taken from its newest snapshot, so
experiments analysed before this module existed keep their history.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from django.db import transaction
from django.utils import timezone

from analysis.alerts import alert_send
from analysis.models import GuardrailCheck, GuardrailCheckSource, Snapshot
from analysis.stats.decisions import (
    GUARDRAIL,
    ComparisonState,
    DecisionState,
    LookResult,
    MetricInput,
    decide_look,
)
from analysis.tasks import guardrail_check_task
from experiments.models import Experiment, Metric, Role, Status
from experiments.services import guardrail_rollback

logger = logging.getLogger(__name__)


def guardrail_keys(inputs: Sequence[MetricInput]) -> list[str]:
    return [f"{m.key}|{v.key}" for m in inputs if m.role == GUARDRAIL for v in m.variants[1:]]


def guardrail_head(experiment: Experiment) -> GuardrailCheck | None:
    return GuardrailCheck.objects.filter(experiment=experiment).order_by("-id").first()


def _percent(value: float) -> str:
    return f"{value * 100:+.1f}%"


def harm_message(result: LookResult, metric: str, variant: str) -> str:
    """What the always-valid interval says, for reasons, alerts and the banner."""
    for m in result.metrics:
        if m.key != metric:
            continue
        for c in m.comparisons:
            if c.variant != variant:
                continue
            level = f"{(1 - (c.effective_alpha or 0.05)) * 100:g}%"
            if c.relative_ci is not None and c.relative_effect is not None:
                low, high = c.relative_ci
                return (
                    f"{variant} vs {c.baseline}: {_percent(c.relative_effect)}, always-valid "
                    f"{level} interval {_percent(low)} to {_percent(high)}"
                )
            if c.absolute_ci is not None and c.absolute_effect is not None:
                low, high = c.absolute_ci
                return (
                    f"{variant} vs {c.baseline}: {c.absolute_effect:+.4g}, always-valid "
                    f"{level} interval {low:+.4g} to {high:+.4g}"
                )
    return f"{variant} harms {metric}"


class DecidedLook(Protocol):
    """A decided look as the chain needs it: the engine's result and the state it leaves."""

    @property
    def look(self) -> LookResult: ...

    @property
    def state(self) -> DecisionState: ...


Decided = TypeVar("Decided", bound=DecidedLook)


@dataclass(frozen=True, slots=True)
class MonitorLook:
    look: LookResult
    state: DecisionState


def decide_with_guardrail_chain(
    *,
    experiment: Experiment,
    inputs: Sequence[MetricInput],
    previous: DecisionState | None,
    decide: Callable[[DecisionState | None], Decided],
    source: str,
    snapshot: Snapshot | None = None,
    expected_head: int | bool | None = False,
) -> tuple[Decided | None, GuardrailCheck | None]:
    """`decide` (a pure look: `decide_look`, or a snapshot's `snapshot_look`) run with the
    guardrail comparisons carried by the check chain (see above).

    `expected_head` (the monitor): the id of the head when the check was scheduled (None: no
    check yet); if another look has been appended since, this one is skipped and returns
    (None, None). The default (False) always decides (snapshots).
    """
    keys = guardrail_keys(inputs)
    if not keys:
        # No guardrails: nothing to carry, lock or act on.
        return decide(previous), None
    with transaction.atomic():
        # The row lock serialises every guardrail look of this experiment (and its rollbacks).
        Experiment.objects.select_for_update().filter(pk=experiment.pk).first()
        head = guardrail_head(experiment)
        if expected_head is not False and (head.pk if head else None) != expected_head:
            return None, None
        state = DecisionState.from_json(previous.to_json() if previous else None)
        known: set[tuple[str, ...]]
        if head is not None:
            for key in keys:
                state.comparisons.pop(key, None)
            state.comparisons.update(
                {
                    key: ComparisonState.from_json(value)
                    for key, value in head.decision_state.items()
                }
            )
            known = {(h["metric"], h["variant"]) for h in head.harms}
        else:
            known = {
                tuple(key.split("|", 1))
                for key in keys
                if key in state.comparisons and state.comparisons[key].harm
            }
        decided = decide(state)
        result, new_state = decided.look, decided.state
        harms = [
            {
                "metric": metric,
                "variant": variant,
                "message": harm_message(result, metric, variant),
            }
            for metric, variant in result.harms
        ]
        check = GuardrailCheck.objects.create(
            experiment=experiment,
            source=source,
            snapshot=snapshot,
            decision_state={
                key: new_state.comparisons[key].to_json()
                for key in keys
                if key in new_state.comparisons
            },
            harms=harms,
            new_harms=[h for h in harms if (h["metric"], h["variant"]) not in known],
        )
        # Act once the look is committed, whatever happens to the snapshot that took it
        # (a snapshot recovered as stuck drops its results, not its guardrail look).
        if harms:
            transaction.on_commit(lambda: guardrail_act(check=check))
    return decided, check


def experiment_settings(experiment: Experiment) -> Any:
    # analysis.services imports this module (snapshots run the same guardrail chain), so its
    # helpers are imported at call time until they move below both.
    from analysis.services import decision_settings

    return decision_settings(experiment)


def guardrail_check(
    *, experiment_id: int, expected_head: int | bool | None = False
) -> GuardrailCheck | None:
    """The monitor's look: only the guardrail metrics, never the whole snapshot."""
    # At call time: analysis.services imports this module (see experiment_settings).
    from analysis.services import _previous_state, metric_inputs

    experiment = Experiment.objects.filter(pk=experiment_id, status=Status.RUNNING).first()
    if experiment is None:
        return None
    links = list(experiment.metrics.select_related("metric").filter(role=Role.GUARDRAIL))
    if not links:
        return None
    inputs = metric_inputs(experiment, links)
    settings, at = experiment_settings(experiment), timezone.now().isoformat()
    _, check = decide_with_guardrail_chain(
        experiment=experiment,
        inputs=inputs,
        previous=_previous_state(experiment),
        decide=lambda state: MonitorLook(*decide_look(settings, inputs, state, at=at)),
        source=GuardrailCheckSource.MONITOR,
        expected_head=expected_head,
    )
    return check


def guardrail_act(*, check: GuardrailCheck) -> None:
    """After a check commits: alerts for new harm, and rollbacks when asked for."""

    experiment = Experiment.objects.get(pk=check.experiment_id)
    for harm in check.new_harms:
        logger.warning(
            "guardrail.harm experiment=%s metric=%s variant=%s",
            experiment.key,
            harm["metric"],
            harm["variant"],
        )
        alert_send(
            kind="harm",
            experiment=experiment,
            variant=harm["variant"],
            metric=harm["metric"],
            message=(
                f"Guardrail {_metric_name(harm['metric'])}: harm detected ({harm['message']})."
            ),
        )
    if not experiment.auto_rollback:
        return
    live = set(
        experiment.variants.filter(rolled_back_at__isnull=True, is_control=False).values_list(
            "key", flat=True
        )
    )
    for harm in check.harms:
        if harm["variant"] in live:
            guardrail_rollback(
                experiment=experiment,
                metric=harm["metric"],
                variant_key=harm["variant"],
                detail=harm["message"],
            )
            live.discard(harm["variant"])


def guardrail_checks_due() -> list[int]:
    """Schedule the monitor's checks of running experiments whose interval has passed since
    their last look (monitor or snapshot). Called by beat every minute."""
    now = timezone.now()
    scheduled = []
    running = Experiment.objects.filter(
        status=Status.RUNNING, metrics__role=Role.GUARDRAIL
    ).distinct()
    for experiment in running:
        head = guardrail_head(experiment)
        if head is None or (now - head.checked_at).total_seconds() >= (
            experiment.guardrail_check_minutes * 60
        ):
            guardrail_check_task.delay(experiment.pk, head.pk if head else None)
            scheduled.append(experiment.pk)
    return scheduled


def _metric_name(key: str) -> str:
    """The metric's name for people (alerts); its key when it has none or is gone."""
    return Metric.objects.filter(key=key).values_list("name", flat=True).first() or key
