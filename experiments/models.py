"""Experiment configuration: what product teams edit in the admin and the API.

Validation that must hold wherever an experiment is edited lives in `clean()` methods and in
`experiments.validation`, so the admin's forms and the API's services enforce one rule.
"""

from __future__ import annotations

import hashlib
import secrets

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models

from experiments.validation import experiment_field_errors

KEY_VALIDATOR = RegexValidator(
    r"^[a-z0-9][a-z0-9_-]{0,99}\Z",
    "Use 1-100 lowercase letters, digits, '-' or '_', starting with a letter or digit.",
)


class Status(models.TextChoices):
    DRAFT = "draft"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"
    # docs/api.md §13: retired; no longer served by /assign, /config or /features.
    ARCHIVED = "archived"


class Method(models.TextChoices):
    SEQUENTIAL = "sequential"
    FIXED = "fixed"
    GROUP_SEQUENTIAL = "group_sequential"


class Correction(models.TextChoices):
    HOLM = "holm"
    BH = "bh"
    NONE = "none"


class Aggregation(models.TextChoices):
    CONVERSION = "conversion"
    COUNT = "count"
    SUM = "sum"
    MEAN = "mean"
    RATIO = "ratio"
    QUANTILE = "quantile"


class Direction(models.TextChoices):
    INCREASE = "increase"
    DECREASE = "decrease"


class Role(models.TextChoices):
    PRIMARY = "primary"
    SECONDARY = "secondary"
    GUARDRAIL = "guardrail"


class Layer(models.Model):
    """A group of mutually exclusive experiments; each owns a non-overlapping range of it."""

    key = models.CharField(max_length=100, unique=True, validators=[KEY_VALIDATOR])
    name = models.CharField(max_length=200, blank=True)
    description = models.TextField(blank=True)

    class Meta:
        ordering = ["key"]

    def __str__(self) -> str:
        return self.key


class Metric(models.Model):
    key = models.CharField(max_length=100, unique=True, validators=[KEY_VALIDATOR])
    name = models.CharField(max_length=200, blank=True)
    description = models.TextField(blank=True)
    event = models.CharField(
        max_length=200, help_text="Outcome event name (the numerator for ratio metrics)."
    )
    aggregation = models.CharField(max_length=20, choices=Aggregation.choices)
    denominator_event = models.CharField(
        max_length=200, blank=True, help_text="Ratio metrics only: the denominator event name."
    )
    direction = models.CharField(
        max_length=10, choices=Direction.choices, default=Direction.INCREASE
    )
    winsorize_percentile = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(50.0), MaxValueValidator(100.0)],
        help_text=(
            "Cap per-unit values at this percentile of all units. New sum and mean metrics "
            "get 99 unless told otherwise (in the admin, leave it empty for 99; 100 keeps "
            "every value); empty on a saved metric: no capping."
        ),
    )
    conversion_window_hours = models.PositiveIntegerField(
        null=True, blank=True, help_text="Count outcomes only this long after first exposure."
    )
    cuped_lookback_days = models.PositiveIntegerField(
        default=14, help_text="Pre-exposure window for the CUPED covariate; 0 turns CUPED off."
    )
    # docs/api.md §1: quantile metrics only, 0 < q < 1 (0.95 = p95 of the event values).
    quantile = models.FloatField(
        null=True,
        blank=True,
        help_text="Quantile metrics only: the quantile of all event values, e.g. 0.95 for p95.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["key"]

    def __str__(self) -> str:
        return self.key

    def clean(self) -> None:
        if self.aggregation == Aggregation.RATIO and not self.denominator_event:
            raise ValidationError(
                {"denominator_event": "A ratio metric needs a denominator event."}
            )
        if self.aggregation != Aggregation.RATIO and self.denominator_event:
            raise ValidationError(
                {"denominator_event": "Only ratio metrics take a denominator event."}
            )
        if self.aggregation == Aggregation.QUANTILE:
            if self.quantile is None or not 0.0 < self.quantile < 1.0:
                raise ValidationError(
                    {"quantile": "A quantile metric needs a quantile strictly between 0 and 1."}
                )
            if self.winsorize_percentile is not None:
                raise ValidationError(
                    {"winsorize_percentile": "Quantile metrics are not winsorized."}
                )
        elif self.quantile is not None:
            raise ValidationError({"quantile": "Only quantile metrics take a quantile."})


class Experiment(models.Model):
    key = models.CharField(max_length=100, unique=True, validators=[KEY_VALIDATOR])
    name = models.CharField(max_length=200)
    hypothesis = models.TextField(blank=True)
    owner = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    seed = models.CharField(
        max_length=200, blank=True, help_text="Hashing seed; defaults to the key. Frozen once run."
    )
    hash_version = models.PositiveSmallIntegerField(
        choices=[(2, "2"), (1, "1 (legacy)")], default=2
    )
    coverage = models.FloatField(
        default=1.0,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="Share of eligible units that enter the experiment.",
    )
    layer = models.ForeignKey(
        Layer, null=True, blank=True, on_delete=models.PROTECT, related_name="experiments"
    )
    layer_start = models.FloatField(
        default=0.0, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)]
    )
    layer_end = models.FloatField(
        default=1.0, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)]
    )
    condition = models.JSONField(
        default=dict, blank=True, help_text="Targeting in GrowthBook's condition language."
    )
    planned_sample_size = models.PositiveIntegerField(null=True, blank=True)
    shipped_variant = models.CharField(max_length=100, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    stopped_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    # Analysis settings (docs/api.md §9).
    alpha = models.FloatField(
        default=0.05, validators=[MinValueValidator(0.0001), MaxValueValidator(0.5)]
    )
    method = models.CharField(max_length=20, choices=Method.choices, default=Method.SEQUENTIAL)
    sequential_tuning = models.PositiveIntegerField(
        null=True, blank=True, help_text="N* of the confidence sequence; default planned size."
    )
    planned_looks = models.PositiveSmallIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(100)]
    )
    cuped = models.BooleanField(default=True)
    correction = models.CharField(
        max_length=5, choices=Correction.choices, default=Correction.HOLM
    )
    srm_threshold = models.FloatField(
        default=0.001, validators=[MinValueValidator(0.0), MaxValueValidator(0.5)]
    )
    schedule_minutes = models.PositiveIntegerField(
        default=60, validators=[MinValueValidator(1)], help_text="Snapshot every N minutes."
    )
    # docs/api.md §10: replaces v1's auto_pause_on_guardrail (migration 0005 carried it over;
    # the API still reads and writes that name as an alias of this field).
    auto_rollback = models.BooleanField(
        default=False,
        help_text="Roll a variant back as soon as a guardrail detects harm on it.",
    )
    guardrail_check_minutes = models.PositiveIntegerField(
        default=5,
        validators=[MinValueValidator(1), MaxValueValidator(1440)],
        help_text="Check the guardrails (only them) every N minutes between snapshots.",
    )
    min_units_per_variant = models.PositiveIntegerField(
        default=100, help_text="No decision while either arm has fewer analysed units."
    )
    # docs/api.md §10: create-time switch; the three model guardrails are linked at creation.
    model_guardrails = models.BooleanField(
        default=False,
        help_text=(
            "Attach p95 model latency, model error rate and model cost per unit as guardrails "
            "(from the standard model_* events)."
        ),
    )
    guardrail_alpha = models.FloatField(
        default=0.05,
        validators=[MinValueValidator(0.0001), MaxValueValidator(0.5)],
        help_text="Error rate of the harm tests, shared by every guardrail × treatment pair.",
    )

    class Meta:
        ordering = ["-created_at", "key"]
        indexes = [models.Index(fields=["status"])]

    def __str__(self) -> str:
        return self.key

    @property
    def effective_seed(self) -> str:
        return self.seed or self.key

    def clean(self) -> None:
        errors = experiment_field_errors(self)
        if errors:
            raise ValidationError(errors)


class Variant(models.Model):
    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="variants")
    key = models.CharField(max_length=100, validators=[KEY_VALIDATOR])
    name = models.CharField(max_length=200, blank=True)
    weight = models.FloatField(validators=[MinValueValidator(0.0), MaxValueValidator(1.0)])
    is_control = models.BooleanField(default=False)
    payload = models.JSONField(
        default=dict, blank=True, help_text='What the app receives, e.g. {"model": "ranker"}.'
    )
    position = models.PositiveSmallIntegerField(default=0)
    # docs/api.md §10: a rolled-back treatment is served as control from then on.
    rolled_back_at = models.DateTimeField(null=True, blank=True)
    rolled_back_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["position", "id"]
        constraints = [
            models.UniqueConstraint(fields=["experiment", "key"], name="variant_key_unique")
        ]

    def __str__(self) -> str:
        return f"{self.experiment.key}:{self.key}"

    def clean(self) -> None:
        if not isinstance(self.payload, dict):
            raise ValidationError({"payload": "The payload must be a JSON object."})


class ExperimentMetric(models.Model):
    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="metrics")
    metric = models.ForeignKey(Metric, on_delete=models.PROTECT, related_name="experiments")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.PRIMARY)
    harm_margin = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(0.0), MaxValueValidator(10.0)],
        help_text="Guardrails: harm only beyond this relative change (0.05 = 5 %). Empty: 0.",
    )

    class Meta:
        ordering = ["role", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["experiment", "metric"], name="experiment_metric_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.metric.key} ({self.role})"


class ForcedAssignment(models.Model):
    """A unit pinned to a variant for QA. Forced units are never analysed."""

    experiment = models.ForeignKey(
        Experiment, on_delete=models.CASCADE, related_name="forced_assignments"
    )
    unit_id = models.CharField(max_length=256)
    variant = models.ForeignKey(Variant, on_delete=models.CASCADE, related_name="+")

    class Meta:
        ordering = ["unit_id"]
        constraints = [
            models.UniqueConstraint(fields=["experiment", "unit_id"], name="forced_unit_unique")
        ]

    def __str__(self) -> str:
        return f"{self.unit_id} → {self.variant.key}"

    def clean(self) -> None:
        if (
            self.variant_id
            and self.experiment_id
            and self.variant.experiment_id != self.experiment_id
        ):
            raise ValidationError({"variant": "The variant belongs to another experiment."})


class ApiKeyScope(models.TextChoices):
    ASSIGN = "assign"
    EVENTS = "events"
    READ = "read"
    WRITE = "write"
    ALL = "all"


class ApiKey(models.Model):
    """A bearer key. Only its SHA-256 is stored; the key itself is shown once."""

    name = models.CharField(max_length=200)
    prefix = models.CharField(max_length=12, db_index=True, editable=False)
    hashed_key = models.CharField(max_length=64, unique=True, editable=False)
    scopes = models.JSONField(default=list)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Requests per second, shared by all web processes (core/ratelimit.py); empty: no
    # limit.
    rate_limit = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="Requests per second across all web processes; empty for no limit.",
    )

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @staticmethod
    def hash(raw_key: str) -> str:
        # Keys are 256 random bits, so a fast unsalted hash is enough (no dictionary to attack).
        return hashlib.sha256(raw_key.encode()).hexdigest()

    @staticmethod
    def generate() -> str:
        return "vl_" + secrets.token_urlsafe(32)

    def clean(self) -> None:
        allowed = set(ApiKeyScope.values)
        if not isinstance(self.scopes, list) or not self.scopes:
            raise ValidationError({"scopes": "Give at least one scope."})
        unknown = [s for s in self.scopes if s not in allowed]
        if unknown:
            names = ", ".join(map(str, unknown))
            raise ValidationError({"scopes": f"Unknown scope(s) {names}; use {sorted(allowed)}."})

    def allows(self, scope: str) -> bool:
        return ApiKeyScope.ALL in self.scopes or scope in self.scopes
