"""Writes to experiment configuration. The admin and the API both call these."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from audit.services import audit_changes, audit_record
from core.actors import SYSTEM, Actor, current_actor
from core.errors import ConflictError, FrozenError, NotFoundError, ServiceError
from experiments.models import (
    ApiKey,
    Experiment,
    ExperimentMetric,
    ForcedAssignment,
    Layer,
    Metric,
    Role,
    Status,
    Variant,
)
from experiments.selectors import experiment_json, experiment_list, metric_json
from experiments.signals import variant_rolled_back
from experiments.validation import VariantSpec, frozen_variant_errors, variant_set_errors

logger = logging.getLogger(__name__)

ALLOWED_MOVES: dict[str, set[str]] = {
    Status.DRAFT: {Status.RUNNING},
    Status.RUNNING: {Status.PAUSED, Status.STOPPED},
    Status.PAUSED: {Status.RUNNING, Status.STOPPED},
    # A stopped experiment (with a shipped variant: still served to every unit) is retired by
    # archiving it (docs/api.md §13); an archived one is final.
    Status.STOPPED: {Status.ARCHIVED},
    Status.ARCHIVED: set(),
}
# Statuses whose configuration can no longer change.
CLOSED_STATUSES = (Status.STOPPED, Status.ARCHIVED)

ANALYSIS_FIELDS = (
    "alpha",
    "method",
    "sequential_tuning",
    "planned_looks",
    "cuped",
    "correction",
    "srm_threshold",
    "schedule_minutes",
    "auto_rollback",
    "guardrail_check_minutes",
    "min_units_per_variant",
    "guardrail_alpha",
)
# Settings that shape the analysis: frozen once an experiment has started (docs/api.md §7),
# so nobody can pick a method or a level after seeing the data.
FROZEN_ANALYSIS_FIELDS = (
    "alpha",
    "method",
    "sequential_tuning",
    "planned_looks",
    "cuped",
    "correction",
    "min_units_per_variant",
    "guardrail_alpha",
)
FROZEN_METRIC_FIELDS = (
    "event",
    "aggregation",
    "denominator_event",
    "direction",
    "winsorize_percentile",
    "conversion_window_hours",
    "cuped_lookback_days",
    "quantile",
)
FROZEN_REASON = "frozen while the experiment is running or paused (settings freeze at start)"
# Sum and mean metrics are capped at this percentile of per-unit values unless the metric
# says otherwise (null turns capping off); docs/statistics.md shows the simulation behind it.
DEFAULT_WINSORIZE_PERCENTILE = 99.0
WINSORIZED_BY_DEFAULT = ("sum", "mean")
PLAN_NEEDED = ("fixed", "group_sequential")
PLAIN_FIELDS = (
    "key",
    "name",
    "hypothesis",
    "owner",
    "seed",
    "hash_version",
    "coverage",
    "condition",
    "planned_sample_size",
)
# docs/api.md §10: the standard model events and the guardrails `model_guardrails` links. Missing
# metrics are created (with an audit entry each) the first time an experiment asks for them.
MODEL_GUARDRAIL_METRICS: tuple[dict[str, Any], ...] = (
    {
        "key": "model_latency_p95",
        "name": "Model latency p95 (ms)",
        "event": "model_latency_ms",
        "aggregation": "quantile",
        "quantile": 0.95,
        "direction": "decrease",
        "winsorize_percentile": None,
        "cuped_lookback_days": 0,
    },
    {
        "key": "model_error_rate",
        "name": "Model error rate (errors per call)",
        "event": "model_error",
        "aggregation": "ratio",
        "denominator_event": "model_call",
        "direction": "decrease",
        "cuped_lookback_days": 0,
    },
    {
        "key": "model_cost_per_unit",
        "name": "Model cost per unit (USD)",
        "event": "model_cost_usd",
        "aggregation": "sum",
        "direction": "decrease",
        "cuped_lookback_days": 0,
    },
)


def _move(experiment: Experiment, target: str) -> None:
    if target not in ALLOWED_MOVES[experiment.status]:
        raise ConflictError(
            f"Cannot move experiment '{experiment.key}' from {experiment.status} to {target}.",
            fields={
                "status": f"allowed from {experiment.status}: "
                f"{sorted(ALLOWED_MOVES[experiment.status]) or 'none'}"
            },
            code="invalid_status_change",
        )


def _variant_specs(experiment: Experiment) -> list[VariantSpec]:
    return [VariantSpec(v.key, v.weight, v.is_control) for v in experiment.variants.all()]


@transaction.atomic
def experiment_start(*, experiment: Experiment) -> Experiment:
    """Start a draft, or resume a paused experiment."""
    experiment = Experiment.objects.select_for_update().get(pk=experiment.pk)
    _move(experiment, Status.RUNNING)
    problems = variant_set_errors(_variant_specs(experiment))
    if problems:
        raise ServiceError(" ".join(problems), fields={"variants": problems})
    if experiment.method in PLAN_NEEDED and not experiment.planned_sample_size:
        raise ServiceError(
            f"A {experiment.method} experiment needs a planned sample size before it starts.",
            fields={"planned_sample_size": f"required for method {experiment.method}"},
        )
    experiment.full_clean()
    before = experiment.status
    experiment.status = Status.RUNNING
    if experiment.started_at is None:
        experiment.started_at = timezone.now()
    experiment.save(update_fields=["status", "started_at", "updated_at"])
    _audit_move(experiment, "start" if before == Status.DRAFT else "resume", before)
    return experiment


def _audit_move(experiment: Experiment, action: str, before: str, reason: str = "") -> None:
    changes: dict[str, list[str | None]] = {"status": [before, experiment.status]}
    if experiment.shipped_variant:
        changes["shipped_variant"] = [None, experiment.shipped_variant]
    audit_record(
        action=action,
        object_type="experiment",
        object_key=experiment.key,
        experiment_key=experiment.key,
        changes=changes,
        reason=reason,
    )


@transaction.atomic
def experiment_pause(*, experiment: Experiment, reason: str = "") -> Experiment:
    experiment = Experiment.objects.select_for_update().get(pk=experiment.pk)
    _move(experiment, Status.PAUSED)
    before = experiment.status
    experiment.status = Status.PAUSED
    experiment.save(update_fields=["status", "updated_at"])
    _audit_move(experiment, "pause", before, reason)
    return experiment


@transaction.atomic
def experiment_stop(*, experiment: Experiment, shipped_variant: str = "") -> Experiment:
    experiment = Experiment.objects.select_for_update().get(pk=experiment.pk)
    _move(experiment, Status.STOPPED)
    if shipped_variant and not experiment.variants.filter(key=shipped_variant).exists():
        keys = list(experiment.variants.values_list("key", flat=True))
        raise ServiceError(
            f"Unknown variant '{shipped_variant}'; this experiment has {keys}.",
            fields={"shipped_variant": f"must be one of {keys}"},
        )
    before = experiment.status
    experiment.status = Status.STOPPED
    experiment.shipped_variant = shipped_variant
    experiment.stopped_at = timezone.now()
    experiment.save(update_fields=["status", "shipped_variant", "stopped_at", "updated_at"])
    _audit_move(experiment, "stop", before)
    return experiment


@transaction.atomic
def experiment_archive(*, experiment: Experiment, reason: str = "") -> Experiment:
    """Retire a stopped experiment (docs/api.md §13): from the next config version it is no
    longer served by /assign (a named key is `unknown`), /config or /features, so a shipped
    variant stops being handed out and the app's own default takes over. Final.

    Saving the row bumps the config version (experiments/signals.py).
    """
    experiment = Experiment.objects.select_for_update().get(pk=experiment.pk)
    _move(experiment, Status.ARCHIVED)
    before = experiment.status
    experiment.status = Status.ARCHIVED
    experiment.save(update_fields=["status", "updated_at"])
    audit_record(
        action="archive",
        object_type="experiment",
        object_key=experiment.key,
        experiment_key=experiment.key,
        changes={"status": [before, experiment.status]},
        reason=reason,
    )
    return experiment


ROLLBACK_STATUSES = (Status.RUNNING, Status.PAUSED)


@transaction.atomic
def variant_rollback(
    *, experiment: Experiment, variant_key: str, reason: str, actor: Actor | None = None
) -> Variant:
    """Roll a treatment back (docs/api.md §10): from now on its units are served control with
    reason `rolled_back`. Final: there is no restore.

    Saving the variant bumps the config version (experiments/signals.py), so `/assign`,
    `/config` and `/features` caches reload within VARIANTLAB_CONFIG_POLL_SECONDS. The
    experiment row is locked first, so two rollbacks of one arm (the monitor and a snapshot,
    or two admins) serialise and the second finds it done (409).
    """
    experiment = Experiment.objects.select_for_update().get(pk=experiment.pk)
    variant = experiment.variants.filter(key=variant_key).first()
    if variant is None:
        raise NotFoundError(
            f"Experiment '{experiment.key}' has no variant '{variant_key}'.",
            fields={"variant": "unknown variant"},
        )
    if variant.is_control:
        raise ServiceError(
            "The control cannot be rolled back: it is what a rolled-back arm is served as.",
            fields={"variant": "the control cannot be rolled back"},
        )
    if variant.rolled_back_at is not None:
        raise ConflictError(
            f"Variant '{variant_key}' was already rolled back at "
            f"{variant.rolled_back_at.isoformat()}.",
            fields={"variant": "already rolled back"},
            code="already_rolled_back",
        )
    if experiment.status not in ROLLBACK_STATUSES:
        raise ConflictError(
            f"Only a running or paused experiment's variants can be rolled back; "
            f"'{experiment.key}' is {experiment.status}.",
            fields={"status": f"must be running or paused, is {experiment.status}"},
            code="invalid_status",
        )
    reason = (reason or "").strip()
    if not reason:
        raise ServiceError("Say why the variant is rolled back.", fields={"reason": "required"})
    variant.rolled_back_at = timezone.now()
    variant.rolled_back_reason = reason
    variant.save(update_fields=["rolled_back_at", "rolled_back_reason"])
    audit_record(
        action="rollback",
        object_type="variant",
        object_key=f"{experiment.key}:{variant.key}",
        experiment_key=experiment.key,
        changes={
            f"variants.{variant.key}.rolled_back_at": [None, variant.rolled_back_at.isoformat()],
            f"variants.{variant.key}.rolled_back_reason": [None, reason],
        },
        reason=reason,
        actor=actor,
    )
    who = (actor or current_actor()).name
    variant_rolled_back.send(
        sender=Variant,
        experiment=experiment,
        variant=variant.key,
        metric=_guardrail_of(reason),
        message=f"{variant.key} was rolled back by {who}: {reason}. Its units now get the "
        "control; nobody else moves.",
    )
    return variant


def _guardrail_of(reason: str) -> str | None:
    """The metric named by an automatic rollback's reason ("guardrail <metric>: …")."""
    if reason.startswith("guardrail ") and ":" in reason:
        return reason[len("guardrail ") : reason.index(":")]
    return None


def guardrail_rollback(
    *, experiment: Experiment, metric: str, variant_key: str, detail: str = ""
) -> Variant | None:
    """The automatic rollback on harm (docs/api.md §10), by the system, once: an arm already
    rolled back, a control, or an experiment no longer running or paused is left alone."""
    reason = f"guardrail {metric}: harm detected" + (f" ({detail})" if detail else "")
    try:
        variant = variant_rollback(
            experiment=experiment, variant_key=variant_key, reason=reason, actor=SYSTEM
        )
    except ServiceError:
        return None  # done before (a replay, a concurrent check) or nothing left to act on
    logger.warning(
        "variant.auto_rolled_back experiment=%s variant=%s metric=%s",
        experiment.key,
        variant_key,
        metric,
    )
    return variant


def _as_validation_error(exc: ValidationError, prefix: str = "") -> ServiceError:
    fields: dict[str, Any] = (
        exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
    )
    if prefix:
        fields = {prefix: fields}
    return ServiceError.from_fields(fields)


@transaction.atomic
def experiment_save(
    *, data: Mapping[str, Any], experiment: Experiment | None = None
) -> Experiment:
    """Create an experiment, or update one with the fields present in `data` (a PATCH).

    `data` is the API's experiment shape, already type-checked: `variants`, `metrics` and
    `forced_assignments`, when present, replace the whole set.
    """
    creating = experiment is None
    if experiment is None:
        experiment = Experiment()
        before = None
    else:
        experiment = Experiment.objects.select_for_update().get(pk=experiment.pk)
        before = experiment_state(experiment.pk)
    if not creating and experiment.status in CLOSED_STATUSES:
        raise ConflictError(
            f"Experiment '{experiment.key}' is {experiment.status} and can no longer change."
        )
    if not creating and experiment.status in (Status.RUNNING, Status.PAUSED):
        _refuse_frozen_changes(experiment, data)

    for field in PLAIN_FIELDS:
        if field in data:
            setattr(experiment, field, data[field])
    if "model_guardrails" in data:
        experiment.model_guardrails = data["model_guardrails"]
    for field in ANALYSIS_FIELDS:
        if field in data.get("analysis", {}):
            setattr(experiment, field, data["analysis"][field])
    if "layer" in data:
        _apply_layer(experiment, data["layer"])
    try:
        experiment.full_clean()
    except ValidationError as exc:
        raise _as_validation_error(exc) from exc
    experiment.save()

    if "variants" in data:
        _replace_variants(experiment, data["variants"])
    elif creating:
        raise ServiceError("An experiment needs variants.", fields={"variants": "required"})
    if "metrics" in data:
        _replace_metrics(experiment, data["metrics"])
    if experiment.model_guardrails and (
        creating or "metrics" in data or data.get("model_guardrails")
    ):
        model_guardrails_attach(experiment=experiment)
    if "forced_assignments" in data:
        _replace_forced(experiment, data["forced_assignments"])
    experiment_audit_save(experiment=experiment, before=before)
    return experiment


def model_guardrail_metrics() -> list[Metric]:
    """The three standard model metrics (docs/api.md §10), created through `metric_save` when
    missing; existing metrics of those keys are used as they are."""
    keys = [d["key"] for d in MODEL_GUARDRAIL_METRICS]
    found = {m.key: m for m in Metric.objects.filter(key__in=keys)}
    return [found.get(d["key"]) or metric_save(data=d) for d in MODEL_GUARDRAIL_METRICS]


def model_guardrails_attach(*, experiment: Experiment) -> None:
    """Link the model guardrails to `experiment`; links it already has (any role) stay."""
    linked = set(experiment.metrics.values_list("metric__key", flat=True))
    ExperimentMetric.objects.bulk_create(
        ExperimentMetric(experiment=experiment, metric=metric, role=Role.GUARDRAIL)
        for metric in model_guardrail_metrics()
        if metric.key not in linked
    )


def frozen_changes(experiment: Experiment, data: Mapping[str, Any]) -> dict[str, str]:
    """Fields of `data` that would change a started experiment's frozen analysis settings.

    Resending an unchanged value is not a change.
    """
    changed: dict[str, str] = {}
    analysis = data.get("analysis") or {}
    for field in FROZEN_ANALYSIS_FIELDS:
        if field in analysis and analysis[field] != getattr(experiment, field):
            changed[f"analysis.{field}"] = FROZEN_REASON
    if (
        "planned_sample_size" in data
        and data["planned_sample_size"] != experiment.planned_sample_size
    ):
        changed["planned_sample_size"] = FROZEN_REASON
    if "model_guardrails" in data and data["model_guardrails"] != experiment.model_guardrails:
        changed["model_guardrails"] = FROZEN_REASON
    if "metrics" in data:
        proposed_links = list(data["metrics"])
        if experiment.model_guardrails:
            # The model guardrails are re-linked after a replacement, so resending the
            # metrics without them is not a change.
            listed = {m["metric"] for m in proposed_links}
            proposed_links += [
                {"metric": d["key"], "role": Role.GUARDRAIL}
                for d in MODEL_GUARDRAIL_METRICS
                if d["key"] not in listed
            ]
        current = {
            (m.metric.key, m.role, m.harm_margin)
            for m in experiment.metrics.select_related("metric")
        }
        proposed = {(m["metric"], m["role"], m.get("harm_margin")) for m in proposed_links}
        if current != proposed:
            changed["metrics"] = FROZEN_REASON
    return changed


def _refuse_frozen_changes(experiment: Experiment, data: Mapping[str, Any]) -> None:
    changed = frozen_changes(experiment, data)
    if changed:
        raise FrozenError(
            f"Experiment '{experiment.key}' has started: {', '.join(changed)} can no longer "
            "change.",
            fields=changed,
        )


def experiment_state(pk: int) -> dict[str, Any]:
    return experiment_json(experiment_list().get(pk=pk))


def experiment_audit_save(*, experiment: Experiment, before: dict[str, Any] | None) -> None:
    """One entry for a create or an update (no entry when nothing changed). `before` is
    `experiment_state` read before the change, None for a create."""
    changes = audit_changes(before, experiment_state(experiment.pk))
    if before is not None and not changes:
        return
    audit_record(
        action="create" if before is None else "update",
        object_type="experiment",
        object_key=experiment.key,
        experiment_key=experiment.key,
        changes=changes,
    )


def _apply_layer(experiment: Experiment, layer: Mapping[str, Any] | None) -> None:
    if layer is None:
        experiment.layer = None
        experiment.layer_start, experiment.layer_end = 0.0, 1.0
        return
    found = Layer.objects.filter(key=layer["key"]).first()
    if found is None:
        raise ServiceError(
            f"Unknown layer '{layer['key']}'.", fields={"layer": {"key": "unknown layer"}}
        )
    experiment.layer = found
    experiment.layer_start = layer.get("start", 0.0)
    experiment.layer_end = layer.get("end", 1.0)


def _replace_variants(experiment: Experiment, variants: Iterable[Mapping[str, Any]]) -> None:
    variants = list(variants)
    proposed = [VariantSpec(v["key"], v["weight"], v.get("is_control", False)) for v in variants]
    problems = variant_set_errors(proposed)
    if experiment.status in (Status.RUNNING, Status.PAUSED):
        problems += frozen_variant_errors(_variant_specs(experiment), proposed)
    if problems:
        raise ServiceError(" ".join(problems), fields={"variants": problems})
    existing = {v.key: v for v in experiment.variants.all()}
    for position, spec in enumerate(variants):
        variant = existing.pop(spec["key"], None) or Variant(
            experiment=experiment, key=spec["key"]
        )
        variant.name = spec.get("name", variant.name)
        variant.weight = spec["weight"]
        variant.is_control = spec.get("is_control", False)
        variant.payload = spec.get("payload", variant.payload)
        variant.position = position
        try:
            variant.full_clean(exclude=["experiment"])
        except ValidationError as exc:
            raise _as_validation_error(exc, prefix=f"variants.{position}") from exc
        variant.save()
    for leftover in existing.values():
        leftover.delete()


def _replace_metrics(experiment: Experiment, metrics: Iterable[Mapping[str, str]]) -> None:
    metrics = list(metrics)
    keys = [m["metric"] for m in metrics]
    found = {m.key: m for m in Metric.objects.filter(key__in=keys)}
    missing = [k for k in keys if k not in found]
    if missing:
        raise ServiceError(
            f"Unknown metric(s): {', '.join(missing)}.", fields={"metrics": f"unknown: {missing}"}
        )
    if len(set(keys)) != len(keys):
        raise ServiceError("A metric may appear once per experiment.", fields={"metrics": keys})
    experiment.metrics.all().delete()
    ExperimentMetric.objects.bulk_create(
        ExperimentMetric(
            experiment=experiment,
            metric=found[m["metric"]],
            role=m["role"],
            harm_margin=m.get("harm_margin"),
        )
        for m in metrics
    )


def _replace_forced(experiment: Experiment, forced: Mapping[str, str]) -> None:
    variants = {v.key: v for v in experiment.variants.all()}
    unknown = {unit: key for unit, key in forced.items() if key not in variants}
    if unknown:
        raise ServiceError(
            f"Forced assignments name unknown variants: {unknown}.",
            fields={"forced_assignments": {u: "unknown variant" for u in unknown}},
        )
    experiment.forced_assignments.all().delete()
    ForcedAssignment.objects.bulk_create(
        ForcedAssignment(experiment=experiment, unit_id=unit, variant=variants[key])
        for unit, key in forced.items()
    )


@transaction.atomic
def metric_save(*, data: Mapping[str, Any], metric: Metric | None = None) -> Metric:
    creating = metric is None
    before = metric_json(metric) if metric is not None and metric.pk else None
    metric = metric or Metric()
    if not creating:
        _refuse_frozen_metric_changes(metric, data)
    elif "winsorize_percentile" not in data and data.get("aggregation") in WINSORIZED_BY_DEFAULT:
        metric.winsorize_percentile = DEFAULT_WINSORIZE_PERCENTILE
    for field, value in data.items():
        setattr(metric, field, value)
    _save_audited(metric, "metric", before, metric_json)
    return metric


def _save_audited(obj: Any, object_type: str, before: dict[str, Any] | None, as_json: Any) -> None:
    """Validate and save `obj`; one audit entry for a create, or an update that changed it."""
    try:
        obj.full_clean()
    except ValidationError as exc:
        raise _as_validation_error(exc) from exc
    obj.save()
    changes = audit_changes(before, as_json(obj))
    if before is None or changes:
        audit_record(
            action="create" if before is None else "update",
            object_type=object_type,
            object_key=obj.key,
            changes=changes,
        )


def _refuse_frozen_metric_changes(metric: Metric, data: Mapping[str, Any]) -> None:
    changed = {
        field: FROZEN_REASON + f" (used by {', '.join(users)})"
        for field in FROZEN_METRIC_FIELDS
        if field in data and data[field] != getattr(metric, field)
        for users in [started_users(metric)]
        if users
    }
    if changed:
        raise FrozenError(
            f"Metric '{metric.key}' is used by a started experiment: "
            f"{', '.join(changed)} can no longer change.",
            fields=changed,
        )


def started_users(metric: Metric) -> list[str]:
    return list(
        Experiment.objects.filter(
            metrics__metric=metric, status__in=(Status.RUNNING, Status.PAUSED)
        ).values_list("key", flat=True)
    )


def api_key_create(
    *, name: str, scopes: list[str], rate_limit: int | None = None
) -> tuple[ApiKey, str]:
    """Create a key and return it with its secret, which is never stored nor shown again."""
    raw_key = ApiKey.generate()
    api_key = ApiKey(
        name=name,
        scopes=scopes,
        prefix=raw_key[:10],
        hashed_key=ApiKey.hash(raw_key),
        rate_limit=rate_limit,
    )
    try:
        api_key.full_clean()
    except ValidationError as exc:
        raise _as_validation_error(exc) from exc
    api_key.save()
    audit_record(
        action="create",
        object_type="api_key",
        object_key=api_key.prefix,
        changes=audit_changes(None, api_key_json(api_key)),
    )
    return api_key, raw_key


def api_key_json(api_key: ApiKey) -> dict[str, Any]:
    """What the audit log shows of a key: never its secret or hash."""
    return {
        "name": api_key.name,
        "prefix": api_key.prefix,
        "scopes": list(api_key.scopes),
        "rate_limit": api_key.rate_limit,
        "is_active": api_key.is_active,
    }


@transaction.atomic
def api_key_update(*, api_key: ApiKey, data: Mapping[str, Any]) -> ApiKey:
    """Change a key's name, scopes, rate limit or active flag (never its secret)."""
    api_key = ApiKey.objects.select_for_update().get(pk=api_key.pk)
    before = api_key_json(api_key)
    for field in ("name", "scopes", "rate_limit", "is_active"):
        if field in data:
            setattr(api_key, field, data[field])
    try:
        api_key.full_clean()
    except ValidationError as exc:
        raise _as_validation_error(exc) from exc
    api_key.save()
    changes = audit_changes(before, api_key_json(api_key))
    if changes:
        action = "revoke" if changes.get("is_active") == [True, False] else "update"
        audit_record(
            action=action, object_type="api_key", object_key=api_key.prefix, changes=changes
        )
    return api_key


def layer_json(layer: Layer) -> dict[str, Any]:
    return {"key": layer.key, "name": layer.name, "description": layer.description}


@transaction.atomic
def layer_save(*, data: Mapping[str, Any], layer: Layer | None = None) -> Layer:
    """Create a layer, or update the fields present in `data`. A layer's key never changes:
    experiments and clients' cached configs name it."""
    before = layer_json(layer) if layer is not None and layer.pk else None
    if layer is not None and before is not None and "key" in data and data["key"] != layer.key:
        raise ServiceError("A layer's key cannot change.", fields={"key": "immutable"})
    layer = layer or Layer()
    for field in ("key", "name", "description"):
        if field in data:
            setattr(layer, field, data[field])
    _save_audited(layer, "layer", before, layer_json)
    return layer


def object_delete_audit(*, object_type: str, object_key: str, before: Mapping[str, Any]) -> None:
    """The entry for a deletion (the admin is the only place that deletes configuration)."""
    audit_record(
        action="delete",
        object_type=object_type,
        object_key=object_key,
        experiment_key=object_key if object_type == "experiment" else "",
        changes=audit_changes(before, None),
    )
