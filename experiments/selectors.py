"""Reads of experiment configuration in the API's JSON shapes."""

from __future__ import annotations

from django.db.models import QuerySet
from variantlab_client.engine import ExperimentConfig, VariantConfig

from audit.models import AuditEntry
from experiments.models import Experiment, ExperimentMetric, Metric


def experiment_list() -> QuerySet[Experiment]:
    return Experiment.objects.select_related("layer").prefetch_related(
        "variants", "metrics__metric", "forced_assignments__variant"
    )


def experiment_json(experiment: Experiment) -> dict:
    return {
        "key": experiment.key,
        "name": experiment.name,
        "hypothesis": experiment.hypothesis,
        "owner": experiment.owner,
        "status": experiment.status,
        "seed": experiment.effective_seed,
        "hash_version": experiment.hash_version,
        "coverage": experiment.coverage,
        "layer": (
            {
                "key": experiment.layer.key,
                "start": experiment.layer_start,
                "end": experiment.layer_end,
            }
            if experiment.layer is not None
            else None
        ),
        "condition": experiment.condition,
        "variants": [
            {
                "key": v.key,
                "name": v.name,
                "weight": v.weight,
                "is_control": v.is_control,
                "payload": v.payload,
                "rolled_back_at": v.rolled_back_at,
                "rolled_back_reason": v.rolled_back_reason or None,
            }
            for v in experiment.variants.all()
        ],
        "forced_assignments": {
            f.unit_id: f.variant.key for f in experiment.forced_assignments.all()
        },
        "metrics": [_metric_link(m) for m in experiment.metrics.all()],
        "analysis": {
            "alpha": experiment.alpha,
            "method": experiment.method,
            "sequential_tuning": experiment.sequential_tuning,
            "planned_looks": experiment.planned_looks,
            "cuped": experiment.cuped,
            "correction": experiment.correction,
            "srm_threshold": experiment.srm_threshold,
            "schedule_minutes": experiment.schedule_minutes,
            "auto_rollback": experiment.auto_rollback,
            # v1's name (docs/api.md §5), kept as an alias: §10 replaced it with auto_rollback.
            "auto_pause_on_guardrail": experiment.auto_rollback,
            "guardrail_check_minutes": experiment.guardrail_check_minutes,
            "min_units_per_variant": experiment.min_units_per_variant,
            "guardrail_alpha": experiment.guardrail_alpha,
        },
        "planned_sample_size": experiment.planned_sample_size,
        "model_guardrails": experiment.model_guardrails,
        "shipped_variant": experiment.shipped_variant or None,
        "started_at": experiment.started_at,
        "stopped_at": experiment.stopped_at,
    }


def rollbacks_list(experiment: Experiment) -> list[dict]:
    """Rolled-back variants: when, why, and who or what did it (from the audit log)."""
    rolled = [v for v in experiment.variants.all() if v.rolled_back_at is not None]
    entries = {
        e.object_key: e
        for e in AuditEntry.objects.filter(
            experiment_key=experiment.key, action="rollback", object_type="variant"
        ).order_by("id")
    }
    result = []
    for variant in rolled:
        entry = entries.get(f"{experiment.key}:{variant.key}")
        actor = "unknown" if entry is None else entry.actor_name
        kind = "" if entry is None else entry.actor_type
        result.append(
            {
                "variant": variant.key,
                "at": variant.rolled_back_at,
                "reason": variant.rolled_back_reason,
                "by": "automatic rollback" if kind == "system" else actor,
                "by_type": kind,
            }
        )
    return result


def _metric_link(link: ExperimentMetric) -> dict:
    data: dict = {"metric": link.metric.key, "role": link.role}
    if link.harm_margin is not None:
        data["harm_margin"] = link.harm_margin
    return data


METRIC_FIELDS = (
    "key",
    "name",
    "event",
    "aggregation",
    "denominator_event",
    "direction",
    "winsorize_percentile",
    "conversion_window_hours",
    "cuped_lookback_days",
    "quantile",
)


def metric_json(metric: Metric) -> dict:
    data = {field: getattr(metric, field) for field in METRIC_FIELDS}
    data["denominator_event"] = metric.denominator_event or None
    return data


def experiment_config_build(experiment: Experiment) -> ExperimentConfig:
    """An experiment as the assignment engine's input (its variants, forced units, layer)."""
    variants = tuple(
        VariantConfig(
            key=v.key,
            weight=v.weight,
            is_control=v.is_control,
            payload=v.payload,
            rolled_back=v.rolled_back_at is not None,
        )
        for v in experiment.variants.all()
    )
    forced = {f.unit_id: f.variant.key for f in experiment.forced_assignments.all()}
    layer = (
        (experiment.layer.key, experiment.layer_start, experiment.layer_end)
        if experiment.layer is not None
        else None
    )
    return ExperimentConfig(
        key=experiment.key,
        status=experiment.status,
        seed=experiment.effective_seed,
        hash_version=experiment.hash_version,
        coverage=experiment.coverage,
        variants=variants,
        condition=experiment.condition or {},
        layer=layer,
        forced=forced,
        shipped_variant=experiment.shipped_variant or None,
    )
