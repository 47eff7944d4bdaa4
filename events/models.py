"""What apps report: exposures (which variant a unit saw) and, later, outcomes."""

from django.db import models

from experiments.models import Experiment


class Exposure(models.Model):
    """The first exposure of a unit to an experiment; later ones only bump the counter."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="exposures")
    unit_id = models.CharField(max_length=256)
    variant = models.CharField(max_length=100)
    first_exposed_at = models.DateTimeField()
    attributes = models.JSONField(default=dict, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["experiment", "unit_id"], name="exposure_first_unique")
        ]
        indexes = [models.Index(fields=["experiment", "variant"], name="exposure_by_variant")]

    def __str__(self) -> str:
        return f"{self.unit_id} saw {self.variant}"
