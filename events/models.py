"""What apps report: exposures (which variant a unit saw) and outcomes (what it then did).

Raw events are stored once each, keyed by `event_id` (given by the client, or derived from the
event's content), so retries and task replays never double-count. The `Exposure` table is the
per-unit summary the analysis joins against: one row per experiment and unit.
"""

from django.db import models

from experiments.models import Experiment


class ExposureEvent(models.Model):
    """One raw exposure, as posted or logged by /assign."""

    event_id = models.CharField(max_length=64, unique=True)
    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="+")
    unit_id = models.CharField(max_length=256)
    variant = models.CharField(max_length=100)
    timestamp = models.DateTimeField()
    attributes = models.JSONField(default=dict, blank=True)
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            models.Index(fields=["experiment", "timestamp"], name="exposure_event_by_time"),
        ]

    def __str__(self) -> str:
        return self.event_id


class Exposure(models.Model):
    """A unit's first exposure to an experiment, with what later exposures revealed."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="exposures")
    unit_id = models.CharField(max_length=256)
    variant = models.CharField(max_length=100)
    first_exposed_at = models.DateTimeField()
    attributes = models.JSONField(default=dict, blank=True)
    exposure_count = models.PositiveIntegerField(default=1)
    # Seen in more than one variant: excluded from the analysis, counted in diagnostics.
    multiple_variants = models.BooleanField(default=False)
    # Exposures whose reported variant is not what the server's own assignment gives.
    mismatched_count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["experiment", "unit_id"], name="exposure_first_unique")
        ]
        indexes = [
            models.Index(fields=["experiment", "variant"], name="exposure_by_variant"),
            # The metric queries bound their outcome scans by the experiment's first and last
            # exposure (analysis/metric_sql.py): MIN and MAX read one index entry each.
            models.Index(fields=["experiment", "first_exposed_at"], name="exposure_by_time"),
        ]

    def __str__(self) -> str:
        return f"{self.unit_id} saw {self.variant}"


class Outcome(models.Model):
    """One raw outcome event: a click, a purchase, a latency, a rating."""

    event_id = models.CharField(max_length=64, unique=True)
    unit_id = models.CharField(max_length=256)
    name = models.CharField(max_length=200)
    value = models.FloatField(default=1.0)
    timestamp = models.DateTimeField()
    properties = models.JSONField(default=dict, blank=True)
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            # The analysis reads "this event name, these units, after this time".
            models.Index(fields=["name", "unit_id", "timestamp"], name="outcome_lookup"),
            # ... and only the outcomes of that name within the experiment's time span, so
            # unrelated history does not add to a snapshot's scan (analysis/metric_sql.py).
            models.Index(fields=["name", "timestamp"], name="outcome_by_name_time"),
        ]

    def __str__(self) -> str:
        return f"{self.name} {self.value} by {self.unit_id}"


class DeadLetter(models.Model):
    """A batch that kept failing. Kept whole, with its error, until someone replays it."""

    task_name = models.CharField(max_length=200)
    payload = models.JSONField()
    error = models.TextField()
    attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    replayed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.task_name} failed at {self.created_at:%Y-%m-%d %H:%M}"
