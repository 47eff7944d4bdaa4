"""Stateless statistics over sufficient statistics that analysts computed themselves."""

from __future__ import annotations

import math
from typing import Any

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from analysis.results import look_info, metric_result, warning_result
from analysis.selectors import latest_snapshot
from analysis.serializers import (
    BoundariesOutput,
    ResultsOutput,
    SnapshotQueuedOutput,
    SnapshotSummaryOutput,
    StatsOutput,
)
from analysis.services import snapshot_request
from analysis.stats import (
    CORRECTIONS,
    METRIC_TYPES,
    StatsInputError,
    VariantStats,
    check_variants,
    obrien_fleming_boundaries,
    variants_from_dicts,
)
from analysis.stats.decisions import DecisionSettings, MetricInput, check_settings, decide_look
from core.errors import NotFoundError, ServiceError
from experiments.models import Correction, Direction, Experiment

MAX_LOOKS = 100
MAX_HISTORY = 2000
RUNNING_INTERSECTION_NOTE = (
    "The always-valid interval is the intersection of every look's interval so far, so it "
    "can be narrower than the interval recomputed from the latest look alone."
)


def _invalid(fields: dict[str, str]) -> ServiceError:
    return ServiceError.from_fields(fields)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


STATS_OPTIONS = (
    "alpha",
    "sequential_tuning",
    "planned_sample_size",
    "planned_looks",
    "correction",
    "min_units_per_variant",
    "srm_threshold",
)


def _settings(body: dict[str, Any], method: Any) -> DecisionSettings:
    options: dict[str, Any] = {}
    for key in STATS_OPTIONS:
        value = body.get(key)
        if value is None:
            continue
        if key == "correction":
            if value not in CORRECTIONS:
                raise _invalid({key: f"must be one of {', '.join(CORRECTIONS)}"})
        elif not _number(value):
            raise _invalid({key: "must be a number"})
        elif key in ("planned_sample_size", "planned_looks", "min_units_per_variant") and (
            value != int(value)
        ):
            raise _invalid({key: "must be a whole number"})
        options[key] = int(value) if key in ("planned_looks", "min_units_per_variant") else value
    if method not in ("fixed", "sequential", "group_sequential"):
        raise _invalid({"method": "must be fixed, sequential or group_sequential"})
    settings = DecisionSettings(method=method, **options)
    try:
        check_settings(settings)
    except StatsInputError as error:
        raise _invalid(error.fields) from error
    return settings


class StatsVariantInput(serializers.Serializer):
    key = serializers.CharField(required=False)
    n = serializers.IntegerField(min_value=0, help_text="Units in the arm.")
    sum = serializers.FloatField(help_text="Σy over the arm's units.")
    sum_squares = serializers.FloatField(required=False, help_text="Σy²; not for proportions.")
    covariate_sum = serializers.FloatField(required=False, help_text="CUPED: Σx (pre-exposure).")
    covariate_sum_squares = serializers.FloatField(required=False, help_text="CUPED: Σx².")
    cross_sum = serializers.FloatField(
        required=False, help_text="CUPED: Σy·x; ratio: Σ numerator·denominator."
    )
    denominator_sum = serializers.FloatField(required=False, help_text="Ratio: Σ denominator.")
    denominator_sum_squares = serializers.FloatField(
        required=False, help_text="Ratio: Σ denominator²."
    )


STATS_EXAMPLE = {
    "metric_type": "mean",
    "method": "sequential",
    "alpha": 0.05,
    "sequential_tuning": 5000,
    "variants": [
        {"key": "control", "n": 1000, "sum": 5230.0, "sum_squares": 40210.0},
        {"key": "treatment", "n": 1010, "sum": 5480.0, "sum_squares": 43020.0},
    ],
    "expected_weights": [0.5, 0.5],
}


class StatsApi(APIView):
    """Compare variants (the first is the control) from sufficient statistics you computed:
    n, sums and sums of squares per arm, plus the CUPED or ratio sums when they apply.

    With `looks` (earlier cumulative looks, oldest first) the decision rule runs across all of
    them exactly as it does across an experiment's snapshots (docs/api.md §5, §7).
    """

    required_scopes = "read"

    @extend_schema(
        request=inline_serializer(
            "StatsRequest",
            {
                "metric_type": serializers.ChoiceField(["mean", "proportion", "ratio"]),
                "method": serializers.ChoiceField(["fixed", "sequential", "group_sequential"]),
                "alpha": serializers.FloatField(default=0.05),
                "sequential_tuning": serializers.IntegerField(required=False),
                "variants": StatsVariantInput(many=True),
                "looks": serializers.ListField(
                    child=StatsVariantInput(many=True),
                    required=False,
                    help_text="Earlier cumulative looks, oldest first, each shaped like variants.",
                ),
                "planned_sample_size": serializers.IntegerField(required=False),
                "planned_looks": serializers.IntegerField(required=False),
                "min_units_per_variant": serializers.IntegerField(required=False),
                "correction": serializers.ChoiceField(Correction.choices, required=False),
                "direction": serializers.ChoiceField(Direction.choices, required=False),
                "cuped": serializers.BooleanField(required=False),
                "expected_weights": serializers.ListField(
                    child=serializers.FloatField(), required=False
                ),
            },
        ),
        responses=StatsOutput,
        examples=[OpenApiExample("Two arms", value=STATS_EXAMPLE, request_only=True)],
    )
    def post(self, request: Request) -> Response:
        body = request.data
        if not isinstance(body, dict):
            raise _invalid({"body": "a JSON object is required"})
        variants = body.get("variants")
        if not isinstance(variants, list) or len(variants) < 2:
            raise _invalid({"variants": "a list of at least two variants (control first)"})
        history = body.get("looks")
        if history is None:
            history = []
        if not isinstance(history, list) or len(history) > MAX_HISTORY:
            raise _invalid({"looks": f"a list of at most {MAX_HISTORY} earlier looks"})
        weights = body.get("expected_weights")
        if weights is not None:
            if not isinstance(weights, list) or not all(_number(w) for w in weights):
                raise _invalid({"expected_weights": "a list of numbers"})
            if len(weights) != len(variants):
                raise _invalid({"expected_weights": "one weight per variant"})
            if abs(sum(weights) - 1.0) > 1e-6:
                raise _invalid(
                    {"expected_weights": f"must sum to 1 (they sum to {sum(weights):g})"}
                )
        metric_type = body.get("metric_type")
        if metric_type not in METRIC_TYPES:
            raise _invalid({"metric_type": f"must be one of {', '.join(METRIC_TYPES)}"})
        direction = body.get("direction", "increase")
        if direction not in ("increase", "decrease"):
            raise _invalid({"direction": "must be increase or decrease"})
        cuped = body.get("cuped", True)
        if not isinstance(cuped, bool):
            raise _invalid({"cuped": "must be true or false"})
        settings = _settings(body, body.get("method", "sequential"))
        looks: list[list[VariantStats]] = []
        prefixes: list[str] = []
        for index, look in enumerate([*history, variants]):
            prefix = "variants" if index == len(history) else f"looks[{index}]"
            if not isinstance(look, list) or len(look) != len(variants):
                raise _invalid({prefix: "a list with one entry per variant, like variants"})
            try:
                parsed = variants_from_dicts(look)
                check_variants(metric_type, parsed)
            except StatsInputError as error:
                fields = {k.replace("variants", prefix, 1): v for k, v in error.fields.items()}
                raise _invalid(fields) from error
            looks.append(parsed)
            prefixes.append(prefix)
        keys = [v.key for v in looks[-1]]
        for prefix, look in zip(prefixes, looks, strict=True):
            if [v.key for v in look] != keys:
                raise _invalid({prefix: f"the same variant keys as variants, in order: {keys}"})
        state = None
        result = None
        try:
            for look in looks:
                metric = MetricInput(
                    key="metric",
                    metric_type=metric_type,
                    variants=tuple(look),
                    direction=direction,
                    cuped=cuped,
                )
                result, state = decide_look(settings, [metric], state, expected_weights=weights)
        except StatsInputError as error:
            raise _invalid(error.fields) from error
        assert result is not None
        metric_look = metric_result(result.metrics[0])
        answer: dict[str, Any] = {
            "method": result.method,
            "alpha": result.alpha,
            "correction": result.correction,
            "look": look_info(result.look).to_json(),
            "warnings": [warning_result(w).to_json() for w in result.warnings],
            "srm": result.srm.to_dict(),
            "metric_type": metric_type,
            "cuped": metric_look.cuped,
            "variants": [v.to_json() for v in metric_look.variants],
            "comparisons": [c.to_json() for c in metric_look.comparisons],
            "notes": list(metric_look.notes),
            "sequential_tuning": settings.tuning if settings.method == "sequential" else None,
        }
        if settings.method == "sequential" and looks:
            answer["interval_note"] = RUNNING_INTERSECTION_NOTE
        return Response(answer)


class BoundariesApi(APIView):
    """Group-sequential z boundaries (Lan–DeMets O'Brien–Fleming spending, per side at α/2)
    for K looks, at equal or given information fractions."""

    required_scopes = "read"

    @extend_schema(
        parameters=[
            OpenApiParameter("looks", int, required=True),
            OpenApiParameter("alpha", float),
            OpenApiParameter(
                "information_fractions", str, description="Comma-separated, increasing, last 1"
            ),
        ],
        responses=BoundariesOutput,
    )
    def get(self, request: Request) -> Response:
        params = request.query_params
        try:
            looks = int(params.get("looks", ""))
        except ValueError:
            raise _invalid({"looks": "an integer number of looks is required"}) from None
        if not 1 <= looks <= MAX_LOOKS:
            raise _invalid({"looks": f"must be between 1 and {MAX_LOOKS}"})
        try:
            alpha = float(params.get("alpha", "0.05"))
        except ValueError:
            raise _invalid({"alpha": "must be a number"}) from None
        if not 0 < alpha < 1:
            raise _invalid({"alpha": "must be strictly between 0 and 1"})
        fractions = None
        if params.get("information_fractions"):
            try:
                fractions = [float(f) for f in params["information_fractions"].split(",")]
            except ValueError:
                raise _invalid({"information_fractions": "comma-separated numbers"}) from None
            if len(fractions) != looks:
                raise _invalid({"information_fractions": "one fraction per look"})
        try:
            boundaries = obrien_fleming_boundaries(looks, alpha, fractions)
        except (StatsInputError, ValueError) as error:
            fields = getattr(error, "fields", None) or {"information_fractions": str(error)}
            raise _invalid(fields) from error
        return Response(boundaries.to_dict())


class ResultsApi(APIView):
    """The latest finished snapshot's results (docs/api.md §8); 404 `no_results` before the
    first snapshot finishes."""

    required_scopes = "read"

    @extend_schema(responses=ResultsOutput)
    def get(self, request: Request, key: str) -> Response:
        experiment = get_object_or_404(Experiment, key=key)
        snapshot = latest_snapshot(experiment=experiment)
        if snapshot is None:
            raise NotFoundError(
                f"No finished snapshot for '{key}' yet; POST .../analyze to compute one.",
                code="no_results",
            )
        # The stored JSON is `SnapshotResults.to_json()` as it was when computed: sent as
        # stored, so an older snapshot keeps its own shape (docs/architecture.md).
        return Response(snapshot.results)


class AnalyzeApi(APIView):
    """Compute a snapshot now: it is queued for a worker (a snapshot already queued or running
    is joined instead); poll `.../snapshots` or `.../results`."""

    required_scopes = "write"

    @extend_schema(request=None, responses={202: SnapshotQueuedOutput})
    def post(self, request: Request, key: str) -> Response:
        experiment = get_object_or_404(Experiment, key=key)
        snapshot = snapshot_request(experiment=experiment)
        return Response({"snapshot_id": snapshot.pk, "state": snapshot.state}, status=202)


class SnapshotListApi(APIView):
    """The experiment's snapshots, newest first (at most 1000)."""

    required_scopes = "read"

    @extend_schema(responses=SnapshotSummaryOutput(many=True))
    def get(self, request: Request, key: str) -> Response:
        experiment = get_object_or_404(Experiment, key=key)
        snapshots = experiment.snapshots.defer("results").order_by("-requested_at", "-id")
        return Response(
            [
                {
                    "snapshot_id": s.pk,
                    "state": s.state,
                    "requested_at": s.requested_at,
                    "computed_at": s.computed_at,
                    "srm_flagged": s.srm_flagged,
                    "guardrail_alert": s.guardrail_alert,
                    "error": s.error or None,
                }
                for s in snapshots[:1000]
            ]
        )
