"""What the analysis endpoints send, as serializers: the OpenAPI schema describes these bodies.

The views build their answers from the statistics engine's results; these classes only describe
them (docs/api.md §5, §8). Fields that older snapshots may lack are not required.
"""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from experiments.models import Role

DECISIONS = ["win", "loss", "inconclusive", "not_ready"]


def _interval(**kwargs: Any) -> serializers.ListField:
    return serializers.ListField(
        child=serializers.FloatField(allow_null=True),
        min_length=2,
        max_length=2,
        allow_null=True,
        help_text="[low, high]; null (or null bounds) when undefined.",
        **kwargs,
    )


def _number(**kwargs: Any) -> serializers.FloatField:
    return serializers.FloatField(allow_null=True, **kwargs)


class LookOutput(serializers.Serializer):
    number = serializers.IntegerField(help_text="0 before the first group-sequential look.")
    information_fraction = _number()
    z_boundary = _number()
    final = serializers.BooleanField()


class WarningOutput(serializers.Serializer):
    code = serializers.CharField(help_text="e.g. heavy_tail, interval_conflict")
    message = serializers.CharField()
    metric = serializers.CharField(required=False)


class SrmOutput(serializers.Serializer):
    p_value = _number(help_text="Pearson χ² p-value of exposed units against the weights.")
    sequential_p_value = _number(required=False, help_text="The always-valid SRM p-value.")
    observed = serializers.DictField(child=serializers.IntegerField())
    expected_weights = serializers.DictField(child=serializers.FloatField())
    flagged = serializers.BooleanField()
    threshold = serializers.FloatField(required=False)
    reason = serializers.CharField(required=False, allow_null=True)
    first_flagged_at = serializers.CharField(required=False, allow_null=True)


class VariantSummaryOutput(serializers.Serializer):
    variant = serializers.CharField()
    units = serializers.IntegerField()
    mean = _number()
    variance = _number()


class ComparisonOutput(serializers.Serializer):
    """A treatment against the control (docs/api.md §7, §8)."""

    variant = serializers.CharField()
    baseline = serializers.CharField()
    absolute_effect = _number()
    absolute_ci = _interval()
    relative_effect = _number()
    relative_ci = _interval()
    p_value = _number()
    adjusted_p_value = _number()
    significant = serializers.BooleanField()
    decision = serializers.ChoiceField(choices=DECISIONS)
    reason = serializers.CharField(allow_null=True, required=False)
    direction = serializers.CharField(required=False)
    statistic = _number(required=False)
    adjusted_ci = _interval(required=False)
    effective_alpha = _number(required=False)
    variance = _number(required=False)
    total_units = serializers.IntegerField(allow_null=True, required=False)
    z_boundary = _number(required=False)
    harm = serializers.BooleanField(
        allow_null=True, required=False, help_text="Guardrails only: the harm test's verdict."
    )


class MetricResultOutput(serializers.Serializer):
    metric = serializers.CharField()
    name = serializers.CharField(required=False)
    aggregation = serializers.CharField()
    metric_type = serializers.CharField(required=False)
    direction = serializers.CharField(required=False)
    role = serializers.ChoiceField(choices=Role.choices)
    cuped = serializers.BooleanField()
    variants = VariantSummaryOutput(many=True)
    comparisons = ComparisonOutput(many=True)
    notes = serializers.ListField(child=serializers.CharField(), required=False)


class ExposuresByDayOutput(serializers.Serializer):
    date = serializers.DateField()
    variant = serializers.CharField()
    units = serializers.IntegerField()


class DiagnosticsOutput(serializers.Serializer):
    units_by_variant = serializers.DictField(child=serializers.IntegerField(), required=False)
    multiple_variant_units = serializers.IntegerField()
    mismatched_exposures = serializers.IntegerField()
    exposures_by_day = ExposuresByDayOutput(many=True)


class GuardrailAlertOutput(serializers.Serializer):
    metric = serializers.CharField()
    variant = serializers.CharField()


class ResultsOutput(serializers.Serializer):
    """A finished snapshot's results (docs/api.md §8)."""

    experiment = serializers.CharField()
    snapshot_id = serializers.IntegerField()
    computed_at = serializers.DateTimeField(allow_null=True)
    method = serializers.CharField()
    alpha = serializers.FloatField()
    correction = serializers.CharField(required=False)
    look = LookOutput(required=False)
    warnings = WarningOutput(many=True, required=False)
    srm = SrmOutput()
    diagnostics = DiagnosticsOutput()
    metrics = MetricResultOutput(many=True)
    guardrail_status = serializers.CharField(required=False)
    guardrail_alerts = GuardrailAlertOutput(many=True, required=False)
    planned_sample_size = serializers.IntegerField(allow_null=True, required=False)
    total_units = serializers.IntegerField(required=False)
    summary = serializers.CharField()


class SnapshotQueuedOutput(serializers.Serializer):
    snapshot_id = serializers.IntegerField()
    state = serializers.ChoiceField(choices=["queued", "running", "done", "failed"])


class SnapshotSummaryOutput(serializers.Serializer):
    snapshot_id = serializers.IntegerField()
    state = serializers.ChoiceField(choices=["queued", "running", "done", "failed"])
    requested_at = serializers.DateTimeField()
    computed_at = serializers.DateTimeField(allow_null=True)
    srm_flagged = serializers.BooleanField()
    guardrail_alert = serializers.BooleanField()
    error = serializers.CharField(allow_null=True)


class StatsOutput(serializers.Serializer):
    """The analysis of the posted sufficient statistics (docs/api.md §5, §7)."""

    method = serializers.CharField()
    alpha = serializers.FloatField()
    correction = serializers.CharField()
    look = LookOutput()
    warnings = WarningOutput(many=True)
    srm = SrmOutput()
    metric_type = serializers.CharField()
    cuped = serializers.BooleanField()
    variants = VariantSummaryOutput(many=True)
    comparisons = ComparisonOutput(many=True)
    notes = serializers.ListField(child=serializers.CharField())
    sequential_tuning = serializers.FloatField(
        allow_null=True, help_text="N* used (sequential only)."
    )
    interval_note = serializers.CharField(
        required=False, help_text="Sequential with looks: why the interval can be narrower."
    )


class BoundariesOutput(serializers.Serializer):
    looks = serializers.IntegerField()
    alpha = serializers.FloatField()
    information_fractions = serializers.ListField(child=serializers.FloatField())
    z_boundaries = serializers.ListField(child=serializers.FloatField())
    nominal_alpha = serializers.ListField(
        child=serializers.FloatField(), help_text="Two-sided nominal level at each look."
    )
