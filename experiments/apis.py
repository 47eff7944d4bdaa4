"""Experiment and metric configuration over REST (docs/api.md §5)."""

from __future__ import annotations

from typing import Any

from django.db.models import Model
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.errors import ConflictError, ServiceError
from experiments import services
from experiments.models import (
    KEY_VALIDATOR,
    Aggregation,
    Correction,
    Direction,
    Experiment,
    Layer,
    Method,
    Metric,
    Role,
    Status,
)
from experiments.selectors import experiment_json, experiment_list, metric_json

KEY_FIELD: dict[str, Any] = {"max_length": 100, "validators": [KEY_VALIDATOR]}


def _refuse_taken_key(model: type[Model], key: str, noun: str) -> None:
    """409 `conflict` when a `model` row has `key` already: POST only creates."""
    if model._default_manager.filter(key=key).exists():
        raise ConflictError(f"{noun} with this key exists.", fields={"key": "already exists"})


class WholeItem(serializers.Serializer):
    """A nested item stays whole in a PATCH.

    DRF applies a root serializer's `partial` to nested ones too, so in a PATCH an item of
    `variants` or `metrics` could lack its required fields, and the service then failed with a
    KeyError (500). A list item is always replaced whole, so its required fields are checked.
    """

    def validate(self, attrs: dict) -> dict:
        missing = {
            name: "This field is required."
            for name, field in self.fields.items()
            if field.required and not field.read_only and name not in attrs
        }
        if missing:
            raise serializers.ValidationError(missing)
        return attrs


class LayerInput(WholeItem):
    key = serializers.CharField(**KEY_FIELD)
    start = serializers.FloatField(min_value=0.0, max_value=1.0, default=0.0)
    end = serializers.FloatField(min_value=0.0, max_value=1.0, default=1.0)


class VariantInput(WholeItem):
    key = serializers.CharField(**KEY_FIELD)
    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    weight = serializers.FloatField(min_value=0.0, max_value=1.0)
    is_control = serializers.BooleanField(default=False)
    payload = serializers.DictField(required=False, default=dict)


class MetricRoleInput(WholeItem):
    metric = serializers.CharField(**KEY_FIELD)
    role = serializers.ChoiceField(choices=Role.choices, default=Role.PRIMARY)
    harm_margin = serializers.FloatField(
        min_value=0.0, max_value=10.0, required=False, allow_null=True
    )

    def validate(self, attrs: dict) -> dict:
        # Partial validation (a PATCH) skips defaults: a link without "role" is primary, as
        # on create (the frozen-settings check read attrs["role"] and failed with a 500).
        attrs.setdefault("role", Role.PRIMARY)
        return super().validate(attrs)


class AnalysisInput(serializers.Serializer):
    alpha = serializers.FloatField(min_value=0.0001, max_value=0.5, required=False)
    method = serializers.ChoiceField(choices=Method.choices, required=False)
    sequential_tuning = serializers.IntegerField(min_value=2, required=False, allow_null=True)
    planned_looks = serializers.IntegerField(
        min_value=1, max_value=100, required=False, allow_null=True
    )
    cuped = serializers.BooleanField(required=False)
    correction = serializers.ChoiceField(choices=Correction.choices, required=False)
    srm_threshold = serializers.FloatField(min_value=0.0, max_value=0.5, required=False)
    schedule_minutes = serializers.IntegerField(min_value=1, required=False)
    auto_rollback = serializers.BooleanField(required=False)
    # v1's name for auto_rollback (docs/api.md §10 replaced it); accepted as an alias.
    auto_pause_on_guardrail = serializers.BooleanField(required=False)
    guardrail_check_minutes = serializers.IntegerField(min_value=1, max_value=1440, required=False)
    min_units_per_variant = serializers.IntegerField(min_value=0, required=False)
    guardrail_alpha = serializers.FloatField(min_value=0.0001, max_value=0.5, required=False)

    def validate(self, attrs: dict) -> dict:
        if "auto_pause_on_guardrail" in attrs:
            alias = attrs.pop("auto_pause_on_guardrail")
            if "auto_rollback" in attrs and attrs["auto_rollback"] != alias:
                raise serializers.ValidationError(
                    {
                        "auto_pause_on_guardrail": "is the old name of auto_rollback; "
                        "send one of them (or the same value)"
                    }
                )
            attrs["auto_rollback"] = alias
        return attrs


class ExperimentInput(serializers.Serializer):
    key = serializers.CharField(**KEY_FIELD)
    name = serializers.CharField(max_length=200)
    hypothesis = serializers.CharField(required=False, allow_blank=True)
    owner = serializers.CharField(max_length=200, required=False, allow_blank=True)
    seed = serializers.CharField(max_length=200, required=False, allow_blank=True)
    hash_version = serializers.ChoiceField(choices=[1, 2], required=False)
    coverage = serializers.FloatField(min_value=0.0, max_value=1.0, required=False)
    layer = LayerInput(required=False, allow_null=True)
    condition = serializers.DictField(required=False)
    variants = VariantInput(many=True, required=False)
    forced_assignments = serializers.DictField(
        child=serializers.CharField(max_length=100), required=False
    )
    metrics = MetricRoleInput(many=True, required=False)
    analysis = AnalysisInput(required=False)
    planned_sample_size = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    # docs/api.md §10: links p95 model latency, model error rate and cost per unit as guardrails.
    model_guardrails = serializers.BooleanField(required=False)

    def validate_forced_assignments(self, value: dict) -> dict:
        too_long = [unit for unit in value if len(unit) > 256]
        if too_long:
            raise serializers.ValidationError("Unit ids are at most 256 characters.")
        return value


class LayerRangeOutput(serializers.Serializer):
    key = serializers.CharField()
    start = serializers.FloatField()
    end = serializers.FloatField()


class VariantOutput(serializers.Serializer):
    key = serializers.CharField()
    name = serializers.CharField(allow_blank=True)
    weight = serializers.FloatField()
    is_control = serializers.BooleanField()
    payload = serializers.DictField()
    rolled_back_at = serializers.DateTimeField(allow_null=True)
    rolled_back_reason = serializers.CharField(allow_null=True)


class MetricRoleOutput(serializers.Serializer):
    metric = serializers.CharField()
    role = serializers.ChoiceField(choices=Role.choices)
    harm_margin = serializers.FloatField(
        required=False, help_text="Guardrails: the relative margin of the harm test."
    )


class AnalysisOutput(serializers.Serializer):
    alpha = serializers.FloatField()
    method = serializers.ChoiceField(choices=Method.choices)
    sequential_tuning = serializers.IntegerField(allow_null=True)
    planned_looks = serializers.IntegerField(allow_null=True)
    cuped = serializers.BooleanField()
    correction = serializers.ChoiceField(choices=Correction.choices)
    srm_threshold = serializers.FloatField()
    schedule_minutes = serializers.IntegerField()
    auto_rollback = serializers.BooleanField()
    auto_pause_on_guardrail = serializers.BooleanField(
        help_text="Version 1's name of auto_rollback, kept as an alias."
    )
    guardrail_check_minutes = serializers.IntegerField()
    min_units_per_variant = serializers.IntegerField()
    guardrail_alpha = serializers.FloatField()


class ExperimentOutput(serializers.Serializer):
    """An experiment's whole configuration (docs/api.md §1, §5)."""

    key = serializers.CharField()
    name = serializers.CharField()
    hypothesis = serializers.CharField(allow_blank=True)
    owner = serializers.CharField(allow_blank=True)
    status = serializers.ChoiceField(choices=Status.choices)
    seed = serializers.CharField()
    hash_version = serializers.IntegerField()
    coverage = serializers.FloatField()
    layer = LayerRangeOutput(allow_null=True)
    condition = serializers.DictField()
    variants = VariantOutput(many=True)
    forced_assignments = serializers.DictField(child=serializers.CharField())
    metrics = MetricRoleOutput(many=True)
    analysis = AnalysisOutput()
    planned_sample_size = serializers.IntegerField(allow_null=True)
    model_guardrails = serializers.BooleanField()
    shipped_variant = serializers.CharField(allow_null=True)
    started_at = serializers.DateTimeField(allow_null=True)
    stopped_at = serializers.DateTimeField(allow_null=True)


class StopInput(serializers.Serializer):
    shipped_variant = serializers.CharField(max_length=100, required=False, allow_blank=True)


class ExperimentListApi(APIView):
    """List experiments (newest first; `?status=running` filters), or create one: 201 with
    the experiment, 409 when its key exists. Variants, metrics and analysis settings are
    checked together; every problem is named in `fields`."""

    required_scopes = {"GET": "read", "POST": "write"}

    @extend_schema(
        parameters=[
            OpenApiParameter("status", str, enum=["draft", "running", "paused", "stopped"])
        ],
        responses=ExperimentOutput(many=True),
    )
    def get(self, request: Request) -> Response:
        experiments = experiment_list()
        wanted = request.query_params.get("status")
        if wanted:
            experiments = experiments.filter(status=wanted)
        return Response([experiment_json(e) for e in experiments])

    @extend_schema(request=ExperimentInput, responses={201: ExperimentOutput})
    def post(self, request: Request) -> Response:
        incoming = ExperimentInput(data=request.data)
        incoming.is_valid(raise_exception=True)
        _refuse_taken_key(Experiment, incoming.validated_data["key"], "An experiment")
        experiment = services.experiment_save(data=incoming.validated_data)
        return Response(
            experiment_json(experiment_list().get(pk=experiment.pk)),
            status=status.HTTP_201_CREATED,
        )


class ExperimentDetailApi(APIView):
    """Read an experiment, or change it (PATCH: send only what changes; `variants`, `metrics`
    and `forced_assignments` replace the whole set). Once started, weights, seed and the
    analysis settings are frozen (409 `frozen`)."""

    required_scopes = {"GET": "read", "PATCH": "write"}

    @extend_schema(responses=ExperimentOutput)
    def get(self, request: Request, key: str) -> Response:
        return Response(experiment_json(get_object_or_404(experiment_list(), key=key)))

    @extend_schema(request=ExperimentInput, responses=ExperimentOutput)
    def patch(self, request: Request, key: str) -> Response:
        experiment = get_object_or_404(Experiment, key=key)
        incoming = ExperimentInput(data=request.data, partial=True)
        incoming.is_valid(raise_exception=True)
        services.experiment_save(data=incoming.validated_data, experiment=experiment)
        return Response(experiment_json(experiment_list().get(pk=experiment.pk)))


class ExperimentStatusApi(APIView):
    """Move an experiment to another status (docs/api.md §1); the URL names the move."""

    required_scopes = "write"
    move = ""

    def post(self, request: Request, key: str) -> Response:
        experiment = get_object_or_404(Experiment, key=key)
        if self.move == "start":
            services.experiment_start(experiment=experiment)
        elif self.move == "pause":
            services.experiment_pause(experiment=experiment)
        else:
            incoming = StopInput(data=request.data or {})
            incoming.is_valid(raise_exception=True)
            services.experiment_stop(
                experiment=experiment,
                shipped_variant=incoming.validated_data.get("shipped_variant", ""),
            )
        return Response(experiment_json(experiment_list().get(pk=experiment.pk)))


class ExperimentStartApi(ExperimentStatusApi):
    """Start a draft, or resume a paused experiment: from now on units are assigned and
    exposures logged. 409 from a status that cannot start."""

    @extend_schema(request=None, responses=ExperimentOutput)
    def post(self, request: Request, key: str) -> Response:
        return super().post(request, key)


class ExperimentPauseApi(ExperimentStatusApi):
    """Pause a running experiment (the kill switch): everyone gets the control until it is
    started again."""

    @extend_schema(request=None, responses=ExperimentOutput)
    def post(self, request: Request, key: str) -> Response:
        return super().post(request, key)


class ExperimentStopApi(ExperimentStatusApi):
    """Stop an experiment for good. With `shipped_variant`, that variant is served to every
    unit from now on (reason `shipped`); without it, everyone gets the control."""

    @extend_schema(request=StopInput, responses=ExperimentOutput)
    def post(self, request: Request, key: str) -> Response:
        return super().post(request, key)


STATUS_APIS = {"start": ExperimentStartApi, "pause": ExperimentPauseApi, "stop": ExperimentStopApi}


class ArchiveInput(serializers.Serializer):
    reason = serializers.CharField(max_length=2000, required=False, allow_blank=True)


class ExperimentArchiveApi(APIView):
    """POST /experiments/{key}/archive (docs/api.md §13): a stopped experiment is no longer
    served (its shipped variant included); 409 from any other status."""

    required_scopes = "write"

    @extend_schema(request=ArchiveInput, responses=ExperimentOutput)
    def post(self, request: Request, key: str) -> Response:
        experiment = get_object_or_404(Experiment, key=key)
        incoming = ArchiveInput(data=request.data or {})
        incoming.is_valid(raise_exception=True)
        services.experiment_archive(
            experiment=experiment, reason=incoming.validated_data.get("reason", "")
        )
        return Response(experiment_json(experiment_list().get(pk=experiment.pk)))


class RollbackInput(serializers.Serializer):
    reason = serializers.CharField(max_length=2000, trim_whitespace=True)


class VariantRollbackApi(APIView):
    """Roll a treatment back for good (docs/api.md §10): its units get the control from now
    on (reason `rolled_back`), nobody else moves. Audited and alerted; answers the experiment.
    """

    required_scopes = "write"

    @extend_schema(request=RollbackInput, responses=ExperimentOutput)
    def post(self, request: Request, key: str, variant: str) -> Response:
        experiment = get_object_or_404(Experiment, key=key)
        incoming = RollbackInput(data=request.data)
        incoming.is_valid(raise_exception=True)
        services.variant_rollback(
            experiment=experiment,
            variant_key=variant,
            reason=incoming.validated_data["reason"],
        )
        return Response(experiment_json(experiment_list().get(pk=experiment.pk)))


class MetricInput(serializers.Serializer):
    key = serializers.CharField(**KEY_FIELD)
    name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    description = serializers.CharField(required=False, allow_blank=True)
    event = serializers.CharField(max_length=200)
    aggregation = serializers.ChoiceField(choices=Aggregation.choices)
    denominator_event = serializers.CharField(
        max_length=200, required=False, allow_blank=True, allow_null=True
    )
    direction = serializers.ChoiceField(choices=Direction.choices, required=False)
    winsorize_percentile = serializers.FloatField(
        min_value=50.0, max_value=100.0, required=False, allow_null=True
    )
    conversion_window_hours = serializers.IntegerField(
        min_value=1, required=False, allow_null=True
    )
    cuped_lookback_days = serializers.IntegerField(min_value=0, max_value=365, required=False)
    # Quantile metrics only (docs/api.md §1): 0 < q < 1, checked with the aggregation.
    quantile = serializers.FloatField(
        min_value=0.0, max_value=1.0, required=False, allow_null=True
    )

    def validate_denominator_event(self, value: str | None) -> str:
        return value or ""


class MetricOutput(serializers.Serializer):
    key = serializers.CharField()
    name = serializers.CharField(allow_blank=True)
    event = serializers.CharField()
    aggregation = serializers.ChoiceField(choices=Aggregation.choices)
    denominator_event = serializers.CharField(allow_null=True)
    direction = serializers.ChoiceField(choices=Direction.choices)
    winsorize_percentile = serializers.FloatField(allow_null=True)
    conversion_window_hours = serializers.IntegerField(allow_null=True)
    cuped_lookback_days = serializers.IntegerField()
    quantile = serializers.FloatField(allow_null=True)


class MetricListApi(APIView):
    """List metric definitions, or create one (201; 409 when its key exists)."""

    required_scopes = {"GET": "read", "POST": "write"}

    @extend_schema(responses=MetricOutput(many=True))
    def get(self, request: Request) -> Response:
        return Response([metric_json(m) for m in Metric.objects.all()])

    @extend_schema(request=MetricInput, responses={201: MetricOutput})
    def post(self, request: Request) -> Response:
        incoming = MetricInput(data=request.data)
        incoming.is_valid(raise_exception=True)
        _refuse_taken_key(Metric, incoming.validated_data["key"], "A metric")
        metric = services.metric_save(data=incoming.validated_data)
        return Response(metric_json(metric), status=status.HTTP_201_CREATED)


class MetricDetailApi(APIView):
    """Read a metric definition, or change it (409 `frozen` while a running or paused
    experiment uses it)."""

    required_scopes = {"GET": "read", "PATCH": "write"}

    @extend_schema(responses=MetricOutput)
    def get(self, request: Request, key: str) -> Response:
        return Response(metric_json(get_object_or_404(Metric, key=key)))

    @extend_schema(request=MetricInput, responses=MetricOutput)
    def patch(self, request: Request, key: str) -> Response:
        metric = get_object_or_404(Metric, key=key)
        incoming = MetricInput(data=request.data, partial=True)
        incoming.is_valid(raise_exception=True)
        if "key" in incoming.validated_data and incoming.validated_data["key"] != metric.key:
            raise ServiceError("A metric's key cannot change.", fields={"key": "immutable"})
        return Response(
            metric_json(services.metric_save(data=incoming.validated_data, metric=metric))
        )


class LayerSerializer(serializers.Serializer):
    """A layer: a group of mutually exclusive experiments (docs/api.md §1, §11)."""

    key = serializers.CharField(**KEY_FIELD)
    name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    description = serializers.CharField(required=False, allow_blank=True)


class LayerListApi(APIView):
    """List layers, or create one (201; 409 when its key exists)."""

    required_scopes = {"GET": "read", "POST": "write"}

    @extend_schema(responses=LayerSerializer(many=True))
    def get(self, request: Request) -> Response:
        return Response([services.layer_json(layer) for layer in Layer.objects.all()])

    @extend_schema(request=LayerSerializer, responses={201: LayerSerializer})
    def post(self, request: Request) -> Response:
        incoming = LayerSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        _refuse_taken_key(Layer, incoming.validated_data["key"], "A layer")
        layer = services.layer_save(data=incoming.validated_data)
        return Response(services.layer_json(layer), status=status.HTTP_201_CREATED)


class LayerDetailApi(APIView):
    """Read a layer, or change its name and description (its key is fixed)."""

    required_scopes = {"GET": "read", "PATCH": "write"}

    @extend_schema(responses=LayerSerializer)
    def get(self, request: Request, key: str) -> Response:
        return Response(services.layer_json(get_object_or_404(Layer, key=key)))

    @extend_schema(request=LayerSerializer, responses=LayerSerializer)
    def patch(self, request: Request, key: str) -> Response:
        layer = get_object_or_404(Layer, key=key)
        incoming = LayerSerializer(data=request.data, partial=True)
        incoming.is_valid(raise_exception=True)
        layer = services.layer_save(data=incoming.validated_data, layer=layer)
        return Response(services.layer_json(layer))
