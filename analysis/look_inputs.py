"""What a look reads before it decides: settings, the previous state, each metric's statistics.

Snapshots (analysis.services) and the guardrail monitor (analysis.guardrails) both build their
looks from here, so a guardrail look is the same computation whoever takes it, and neither
module has to import the other for it.
"""

from __future__ import annotations

from typing import Any

from analysis.models import Snapshot, SnapshotState
from analysis.selectors import metric_variant_stats, quantile_variant_stats
from analysis.stats.decisions import (
    DEFAULT_PLANNED_LOOKS,
    DecisionSettings,
    DecisionState,
    MetricInput,
)
from experiments.models import Aggregation, Experiment

METRIC_TYPE = {
    Aggregation.CONVERSION: "proportion",
    Aggregation.COUNT: "mean",
    Aggregation.SUM: "mean",
    Aggregation.MEAN: "mean",
    Aggregation.RATIO: "ratio",
    # Q̂ with its delta-method variance, expressed as a mean's totals (analysis.stats.quantile).
    Aggregation.QUANTILE: "mean",
}
# Unbounded per-unit values: wait for each arm to reach 355·skewness² units before deciding.
HEAVY_TAIL_GATED = (Aggregation.SUM, Aggregation.MEAN)


def decision_settings(experiment: Experiment) -> DecisionSettings:
    return DecisionSettings(
        method=experiment.method,
        alpha=experiment.alpha,
        sequential_tuning=experiment.sequential_tuning,
        planned_sample_size=experiment.planned_sample_size,
        planned_looks=experiment.planned_looks or DEFAULT_PLANNED_LOOKS,
        correction=experiment.correction,
        min_units_per_variant=experiment.min_units_per_variant,
        guardrail_alpha=experiment.guardrail_alpha,
        srm_threshold=experiment.srm_threshold,
    )


def previous_decision_state(experiment: Experiment) -> DecisionState | None:
    previous = (
        Snapshot.objects.filter(experiment=experiment, state=SnapshotState.DONE)
        .order_by("-computed_at", "-id")
        .values_list("decision_state", flat=True)
        .first()
    )
    return None if previous is None else DecisionState.from_json(previous)


def variant_order(experiment: Experiment) -> list[Any]:
    """Control first, then the treatments in their configured order."""
    return sorted(experiment.variants.all(), key=lambda v: (not v.is_control, v.position))


def metric_inputs(experiment: Experiment, links: list[Any]) -> list[MetricInput]:
    """Each linked metric's sufficient statistics per arm (control first), for decide_look.

    Snapshots and the guardrail monitor both build their inputs here, so a guardrail look is
    the same computation whoever takes it.
    """
    keys = [v.key for v in variant_order(experiment)]
    inputs: list[MetricInput] = []
    for link in links:
        metric = link.metric
        if metric.aggregation == Aggregation.QUANTILE:
            # Event-level quantiles have no per-unit covariate: no CUPED.
            cuped = False
            stats = quantile_variant_stats(experiment=experiment, metric=metric)
        else:
            cuped = experiment.cuped and metric.cuped_lookback_days > 0
            stats = metric_variant_stats(experiment=experiment, metric=metric, cuped=cuped)
        inputs.append(
            MetricInput(
                key=metric.key,
                metric_type=METRIC_TYPE[metric.aggregation],
                variants=tuple(stats[key] for key in keys),
                role=link.role,
                direction=metric.direction,
                cuped=cuped,
                harm_margin=link.harm_margin,
                gate_heavy_tail=metric.aggregation in HEAVY_TAIL_GATED,
            )
        )
    return inputs
