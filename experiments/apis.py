"""Experiment and metric configuration over REST (CONTRACT §3)."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

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
)
from experiments.selectors import experiment_json, experiment_list, metric_json

KEY_FIELD = {"max_length": 100, "validators": [KEY_VALIDATOR]}


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
    # v1's name for auto_rollback (CONTRACT §8.3 replaced it); accepted as an alias.
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
    # CONTRACT §8.2: links p95 model latency, model error rate and cost per unit as guardrails.
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


class MetricRoleOutput(serializers.Serializer):
    metric = serializers.CharField()
    role = serializers.ChoiceField(choices=Role.choices)


class AnalysisOutput(serializers.Serializer):
    alpha = serializers.FloatField()
    method = serializers.ChoiceField(choices=Method.choices)
    sequential_tuning = serializers.IntegerField(allow_null=True)
    planned_looks = serializers.IntegerField(allow_null=True)
    cuped = serializers.BooleanField()
    correction = serializers.ChoiceField(choices=Correction.choices)
    srm_threshold = serializers.FloatField()
    schedule_minutes = serializers.IntegerField()


class ExperimentOutput(serializers.Serializer):
    """The experiment as the API returns it (CONTRACT §3); only for the schema: the views
    return `experiment_json`, which may carry more fields than listed here."""

    key = serializers.CharField()
    name = serializers.CharField()
    hypothesis = serializers.CharField(allow_blank=True)
    owner = serializers.CharField(allow_blank=True)
    status = serializers.ChoiceField(choices=["draft", "running", "paused", "stopped"])
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
    required_scopes = {"GET": "read", "POST": "write"}

    @extend_schema(responses=ExperimentOutput(many=True))
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
        if Experiment.objects.filter(key=incoming.validated_data["key"]).exists():
            raise services.ConflictError(
                "An experiment with this key exists.", fields={"key": "already exists"}
            )
        experiment = services.experiment_save(data=incoming.validated_data)
        return Response(
            experiment_json(experiment_list().get(pk=experiment.pk)),
            status=status.HTTP_201_CREATED,
        )


class ExperimentDetailApi(APIView):
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
    """POST /experiments/{key}/start|pause|stop."""

    required_scopes = "write"
    move = ""

    @extend_schema(request=StopInput, responses=ExperimentOutput)
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


class RollbackInput(serializers.Serializer):
    reason = serializers.CharField(max_length=2000, trim_whitespace=True)


class VariantRollbackApi(APIView):
    """POST /experiments/{key}/variants/{variant}/rollback (CONTRACT §8.3): final."""

    required_scopes = "write"

    @extend_schema(request=RollbackInput, responses=ExperimentInput)
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
    # Quantile metrics only (CONTRACT §8.2): 0 < q < 1, checked with the aggregation.
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
    required_scopes = {"GET": "read", "POST": "write"}

    @extend_schema(responses=MetricOutput(many=True))
    def get(self, request: Request) -> Response:
        return Response([metric_json(m) for m in Metric.objects.all()])

    @extend_schema(request=MetricInput, responses={201: MetricOutput})
    def post(self, request: Request) -> Response:
        incoming = MetricInput(data=request.data)
        incoming.is_valid(raise_exception=True)
        if Metric.objects.filter(key=incoming.validated_data["key"]).exists():
            raise services.ConflictError(
                "A metric with this key exists.", fields={"key": "already exists"}
            )
        metric = services.metric_save(data=incoming.validated_data)
        return Response(metric_json(metric), status=status.HTTP_201_CREATED)


class MetricDetailApi(APIView):
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
            raise services.ServiceError(
                "A metric's key cannot change.", fields={"key": "immutable"}
            )
        return Response(
            metric_json(services.metric_save(data=incoming.validated_data, metric=metric))
        )


class LayerSerializer(serializers.Serializer):
    """A layer, in and out (CONTRACT §8.4): managed as code like experiments and metrics."""

    key = serializers.CharField(**KEY_FIELD)
    name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    description = serializers.CharField(required=False, allow_blank=True)


class LayerListApi(APIView):
    required_scopes = {"GET": "read", "POST": "write"}

    @extend_schema(responses=LayerSerializer(many=True))
    def get(self, request: Request) -> Response:
        return Response([services.layer_json(layer) for layer in Layer.objects.all()])

    @extend_schema(request=LayerSerializer, responses={201: LayerSerializer})
    def post(self, request: Request) -> Response:
        incoming = LayerSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        if Layer.objects.filter(key=incoming.validated_data["key"]).exists():
            raise services.ConflictError(
                "A layer with this key exists.", fields={"key": "already exists"}
            )
        layer = services.layer_save(data=incoming.validated_data)
        return Response(services.layer_json(layer), status=status.HTTP_201_CREATED)


class LayerDetailApi(APIView):
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
