"""Snapshots: the analysis of an experiment at one moment, kept as a history.

The history is what sequential reporting (running minimum p, intersected intervals) and the
dashboard's charts read. `SnapshotComparison` keeps each metric × treatment result as a row so
charts over hundreds of snapshots never parse their JSON.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone

from analysis.results import SnapshotResults
from experiments.models import Experiment


class SnapshotState(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


ACTIVE_STATES = (SnapshotState.QUEUED, SnapshotState.RUNNING)


class Snapshot(models.Model):
    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="snapshots")
    state = models.CharField(
        max_length=10, choices=SnapshotState.choices, default=SnapshotState.QUEUED
    )
    requested_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    computed_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    results = models.JSONField(null=True, blank=True)
    guardrail_alert = models.BooleanField(default=False)
    srm_flagged = models.BooleanField(default=False)
    # What the decision rule carries to the next snapshot (analysis.stats.decisions).
    decision_state = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["-requested_at", "-id"]
        indexes = [models.Index(fields=["experiment", "state", "-computed_at"])]
        constraints = [
            # One snapshot at a time per experiment: a second request joins the first.
            models.UniqueConstraint(
                fields=["experiment"],
                condition=Q(state__in=["queued", "running"]),
                name="one_active_snapshot_per_experiment",
            )
        ]

    def __str__(self) -> str:
        return f"{self.experiment.key} #{self.pk} ({self.state})"

    def typed_results(self) -> SnapshotResults | None:
        """The stored results as types (`analysis.results`); None before they are computed."""
        return SnapshotResults.from_json(self.results) if self.results else None


class SnapshotComparison(models.Model):
    """One metric × treatment result of a snapshot, as reported (running values if sequential)."""

    snapshot = models.ForeignKey(Snapshot, on_delete=models.CASCADE, related_name="comparisons")
    metric = models.CharField(max_length=100)
    role = models.CharField(max_length=10)
    variant = models.CharField(max_length=100)
    baseline = models.CharField(max_length=100)
    units = models.PositiveIntegerField(default=0)
    baseline_units = models.PositiveIntegerField(default=0)
    absolute_effect = models.FloatField(null=True)
    absolute_low = models.FloatField(null=True)
    absolute_high = models.FloatField(null=True)
    relative_effect = models.FloatField(null=True)
    relative_low = models.FloatField(null=True)
    relative_high = models.FloatField(null=True)
    p_value = models.FloatField(null=True)
    raw_p_value = models.FloatField(null=True)
    adjusted_p_value = models.FloatField(null=True)
    significant = models.BooleanField(default=False)
    decision = models.CharField(max_length=20)
    looks = models.PositiveIntegerField(default=1)
    adjusted_low = models.FloatField(null=True)
    adjusted_high = models.FloatField(null=True)
    effective_alpha = models.FloatField(null=True)
    harm = models.BooleanField(null=True)
    reason = models.CharField(max_length=50, blank=True)
    # This look's own estimate, so its intervals can be recomputed (docs/api.md §7).
    look_effect = models.FloatField(null=True)
    look_variance = models.FloatField(null=True)
    look_total_units = models.PositiveIntegerField(null=True)

    class Meta:
        indexes = [models.Index(fields=["snapshot", "metric", "variant"])]

    def __str__(self) -> str:
        return f"{self.metric}:{self.variant} vs {self.baseline}"


class GuardrailCheckSource(models.TextChoices):
    MONITOR = "monitor"
    SNAPSHOT = "snapshot"


class GuardrailCheck(models.Model):
    """One look of the guardrail harm tests (docs/api.md §10), by the monitor or a snapshot.

    The rows of an experiment form one chain: each check starts from the guardrail state of
    the newest row and appends its own, under the experiment's row lock (analysis/guardrails.py),
    so a monitor check and a snapshot never fold the same state twice or drop each other's.
    """

    experiment = models.ForeignKey(
        Experiment, on_delete=models.CASCADE, related_name="guardrail_checks"
    )
    checked_at = models.DateTimeField(default=timezone.now)
    source = models.CharField(max_length=10, choices=GuardrailCheckSource.choices)
    snapshot = models.ForeignKey(
        "Snapshot", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # {"metric|variant": ComparisonState.to_json()} of the guardrail comparisons only.
    decision_state = models.JSONField(default=dict)
    # [{"metric", "variant", "message"}]: every pair with harm (sticky), and the ones first
    # detected by this check (what alerts go out for, once).
    harms = models.JSONField(default=list)
    new_harms = models.JSONField(default=list)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["experiment", "-id"])]

    def __str__(self) -> str:
        return f"{self.experiment_id} guardrails #{self.pk} ({self.source})"
