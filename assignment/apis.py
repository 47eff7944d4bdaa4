from __future__ import annotations

from django.http import HttpResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from assignment.selectors import assignment_config
from assignment.services import unit_assign


class AssignmentOutput(serializers.Serializer):
    variant = serializers.CharField()
    payload = serializers.DictField()
    in_experiment = serializers.BooleanField()
    reason = serializers.ChoiceField(
        choices=[
            "not_running",
            "forced",
            "not_targeted",
            "not_in_layer",
            "not_in_traffic",
            "assigned",
        ]
    )


class AssignApi(APIView):
    """Which variant of each experiment a unit gets. Deterministic; no per-unit storage."""

    required_scopes = "assign"

    class InputSerializer(serializers.Serializer):
        unit_id = serializers.CharField(max_length=256, trim_whitespace=False)
        attributes = serializers.DictField(required=False, default=dict)
        experiments = serializers.ListField(
            child=serializers.CharField(max_length=100), required=False, allow_null=True
        )
        log_exposure = serializers.BooleanField(required=False, default=True)

    @extend_schema(
        request=InputSerializer,
        responses=inline_serializer(
            "AssignResponse",
            {
                "unit_id": serializers.CharField(),
                "assignments": serializers.DictField(child=AssignmentOutput()),
                "unknown": serializers.ListField(child=serializers.CharField()),
            },
        ),
    )
    def post(self, request: Request) -> Response:
        incoming = self.InputSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        data = incoming.validated_data
        result = unit_assign(
            unit_id=data["unit_id"],
            attributes=data["attributes"],
            experiment_keys=data.get("experiments"),
            log_exposure=data["log_exposure"],
        )
        return Response(
            {
                "unit_id": data["unit_id"],
                "assignments": {
                    key: {
                        "variant": a.variant,
                        "payload": a.payload,
                        "in_experiment": a.in_experiment,
                        "reason": a.reason,
                    }
                    for key, a in result.assignments.items()
                },
                "unknown": result.unknown,
            }
        )


class ConfigApi(APIView):
    """Every running experiment with what local evaluation needs; ETag / If-None-Match aware."""

    required_scopes = "assign"

    @extend_schema(responses={200: OpenApiResponse(description="Running experiments"), 304: None})
    def get(self, request: Request) -> HttpResponse:
        config = assignment_config.get()
        if config.etag in _etags(request.headers.get("If-None-Match", "")):
            response = HttpResponse(status=304)
        else:
            response = HttpResponse(config.config_body, content_type="application/json")
        response["ETag"] = config.etag
        response["Cache-Control"] = "no-cache"
        return response


def _etags(header: str) -> set[str]:
    return {tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip()}
