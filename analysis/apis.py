"""Stateless statistics over sufficient statistics that analysts computed themselves."""

from __future__ import annotations

import math
from typing import Any

from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from analysis.selectors import latest_snapshot
from analysis.services import snapshot_request
from analysis.stats import StatsInputError, analyze, obrien_fleming_boundaries, variants_from_dicts
from experiments.errors import NotFoundError, ServiceError
from experiments.models import Experiment

MAX_LOOKS = 100


def _invalid(fields: dict[str, str]) -> ServiceError:
    first = next(iter(fields.items()))
    return ServiceError(f"{first[0]}: {first[1]}", fields=fields)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


class StatsApi(APIView):
    """POST /stats: compare variants (first = control) from n, sums and sums of squares."""

    required_scopes = "read"

    @extend_schema(
        request=inline_serializer(
            "StatsRequest",
            {
                "metric_type": serializers.ChoiceField(["mean", "proportion", "ratio"]),
                "method": serializers.ChoiceField(["fixed", "sequential", "group_sequential"]),
                "alpha": serializers.FloatField(default=0.05),
                "sequential_tuning": serializers.IntegerField(required=False),
                "variants": serializers.ListField(child=serializers.DictField()),
                "expected_weights": serializers.ListField(
                    child=serializers.FloatField(), required=False
                ),
            },
        ),
        responses=OpenApiTypes.OBJECT,
    )
    def post(self, request: Request) -> Response:
        body = request.data
        if not isinstance(body, dict):
            raise _invalid({"body": "a JSON object is required"})
        variants = body.get("variants")
        if not isinstance(variants, list) or len(variants) < 2:
            raise _invalid({"variants": "a list of at least two variants (control first)"})
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
        options = {
            key: body[key]
            for key in (
                "alpha",
                "sequential_tuning",
                "direction",
                "correction",
                "cuped",
                "look",
                "planned_looks",
                "information_fractions",
                "srm_threshold",
            )
            if body.get(key) is not None
        }
        try:
            result = analyze(
                body.get("metric_type"),
                body.get("method", "sequential"),
                variants_from_dicts(variants),
                expected_weights=weights,
                **options,
            )
        except StatsInputError as error:
            raise _invalid(error.fields) from error
        except TypeError as error:  # a value of the wrong JSON type, e.g. alpha: "x"
            raise _invalid({"body": str(error)}) from error
        return Response(result.to_dict())


class BoundariesApi(APIView):
    """GET /stats/boundaries?looks=K&alpha=0.05: Lan–DeMets O'Brien–Fleming z boundaries."""

    required_scopes = "read"

    @extend_schema(
        parameters=[
            OpenApiParameter("looks", int, required=True),
            OpenApiParameter("alpha", float),
            OpenApiParameter(
                "information_fractions", str, description="Comma-separated, increasing, last 1"
            ),
        ],
        responses=OpenApiTypes.OBJECT,
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
    """GET /experiments/{key}/results: the latest finished snapshot (CONTRACT §5)."""

    required_scopes = "read"

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request, key: str) -> Response:
        experiment = get_object_or_404(Experiment, key=key)
        snapshot = latest_snapshot(experiment=experiment)
        if snapshot is None:
            raise NotFoundError(
                f"No finished snapshot for '{key}' yet; POST .../analyze to compute one.",
                code="no_results",
            )
        return Response(snapshot.results)


class AnalyzeApi(APIView):
    """POST /experiments/{key}/analyze: queue a snapshot on a worker (joins a running one)."""

    required_scopes = "write"

    @extend_schema(request=None, responses={202: OpenApiTypes.OBJECT})
    def post(self, request: Request, key: str) -> Response:
        experiment = get_object_or_404(Experiment, key=key)
        snapshot = snapshot_request(experiment=experiment)
        return Response({"snapshot_id": snapshot.pk, "state": snapshot.state}, status=202)


class SnapshotListApi(APIView):
    """GET /experiments/{key}/snapshots: the history, newest first."""

    required_scopes = "read"

    @extend_schema(
        responses=inline_serializer(
            "SnapshotSummary",
            {
                "snapshot_id": serializers.IntegerField(),
                "state": serializers.ChoiceField(["queued", "running", "done", "failed"]),
                "requested_at": serializers.DateTimeField(),
                "computed_at": serializers.DateTimeField(allow_null=True),
                "srm_flagged": serializers.BooleanField(),
                "guardrail_alert": serializers.BooleanField(),
                "error": serializers.CharField(allow_null=True),
            },
            many=True,
        )
    )
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
