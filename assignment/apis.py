from __future__ import annotations

from typing import Any

from django.http import HttpResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.renderers import BaseRenderer
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

    def perform_content_negotiation(
        self, request: Request, force: bool = False
    ) -> tuple[BaseRenderer, str]:
        # What DRF's negotiation returns for JSON-only renderers when the client sends no
        # Accept header (or */* or application/json) and no ?format=, without parsing them.
        renderers = self.get_renderers()
        if (
            len(renderers) == 1
            and renderers[0].media_type == "application/json"
            and request.META.get("HTTP_ACCEPT", "*/*") in ("*/*", "application/json")
            and not request.META.get("QUERY_STRING")
            and not self.format_kwarg
        ):
            return renderers[0], renderers[0].media_type
        return super().perform_content_negotiation(request, force)

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
        data = _assign_input_fast(request.data)
        if data is None:
            # Anything unusual (coercions, errors) goes through the serializer, so answers and
            # error messages stay exactly the serializer's.
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


def _plain_text(value: Any, max_length: int, trimmed: bool = False) -> bool:
    """What the serializer's CharField would accept unchanged (no NUL, no lone surrogate;
    with `trimmed`, no surrounding whitespace, which that field would strip)."""
    if type(value) is not str or not 0 < len(value) <= max_length or "\x00" in value:
        return False
    if trimmed and value.strip() != value:
        return False
    if value.isascii():
        return True
    try:
        value.encode("utf-8")  # refuses lone surrogates, which the serializer rejects too
    except UnicodeEncodeError:
        return False
    return True


def _assign_input_fast(data: Any) -> dict[str, Any] | None:
    """The serializer's validated data for the usual well-formed body, without the serializer.

    Returns None for anything else (missing or non-string unit id, values the serializer would
    coerce such as "true" or 42, any error), and the caller falls back to the serializer.
    """
    if type(data) is not dict:
        return None
    unit_id = data.get("unit_id")
    if not _plain_text(unit_id, 256):
        return None
    attributes = data.get("attributes", _MISSING)
    if attributes is _MISSING:
        attributes = {}
    elif type(attributes) is not dict:
        return None
    log_exposure = data.get("log_exposure", True)
    if type(log_exposure) is not bool:
        return None
    validated = {"unit_id": unit_id, "attributes": attributes, "log_exposure": log_exposure}
    if "experiments" in data:
        experiments = data["experiments"]
        if experiments is not None:
            if type(experiments) is not list or not all(
                _plain_text(key, 100, trimmed=True) for key in experiments
            ):
                return None
            experiments = list(experiments)
        validated["experiments"] = experiments
    return validated


_MISSING = object()


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
