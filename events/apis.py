"""POST /api/v1/events: validate each event, enqueue the valid ones as one task, answer 202."""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from assignment.engine import ExperimentConfig, assign
from assignment.selectors import assignment_config
from events.services import events_enqueue
from events.validation import MAX_BODY_BYTES, MAX_EVENTS, KnownExperiment, validate_batch
from experiments.errors import error_body
from experiments.parsers import NUL_ESCAPE, NulTolerantJSONParser

# Reasons decided by the hash alone; others depend on attributes the client may not resend.
HASH_DECIDED = frozenset({"assigned", "not_in_layer", "not_in_traffic", "forced"})


def _known(config: ExperimentConfig) -> KnownExperiment:
    def server_variant(unit_id: str, attributes: dict[str, Any]) -> str | None:
        result = assign(config, unit_id, attributes)
        return result.variant if result.reason in HASH_DECIDED else None

    return KnownExperiment(frozenset(v.key for v in config.variants), server_variant)


class EventsApi(APIView):
    required_scopes = "events"
    # A NUL in one event rejects that event, not the batch (validate_batch reports it).
    parser_classes = [NulTolerantJSONParser]

    @extend_schema(
        request=inline_serializer(
            "EventBatch", {"events": serializers.ListField(child=serializers.DictField())}
        ),
        responses={
            202: inline_serializer(
                "EventsAccepted",
                {"accepted": serializers.IntegerField(), "rejected": serializers.ListField()},
            ),
            400: OpenApiResponse(description="No valid event"),
            413: OpenApiResponse(description="Over 1000 events or 1 MiB"),
            503: OpenApiResponse(description="Queue unavailable; retry"),
        },
    )
    def post(self, request: Request) -> Response:
        declared = request.META.get("CONTENT_LENGTH") or "0"
        too_large = int(declared) if declared.isdigit() else 0
        # Check the declared length first so an oversized body is never read into memory.
        if too_large > MAX_BODY_BYTES or len(request.body) > MAX_BODY_BYTES:
            return Response(
                error_body(
                    "too_large", "body: at most 1 MiB per request", {"body": "at most 1 MiB"}
                ),
                status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
            )
        data = request.data
        events = data.get("events") if isinstance(data, dict) else None
        if not isinstance(events, list):
            return Response(
                error_body(
                    "invalid",
                    "events: a list of events is required",
                    {"events": "a list of events is required"},
                ),
                status=status.HTTP_400_BAD_REQUEST,
            )
        if len(events) > MAX_EVENTS:
            return Response(
                error_body(
                    "too_large",
                    f"events: at most {MAX_EVENTS} events per request",
                    {"events": f"at most {MAX_EVENTS} events (got {len(events)})"},
                ),
                status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
            )
        config = assignment_config.get()
        # Only string keys are looked up; any other `experiment` is rejected per event below.
        wanted = {
            e["experiment"]
            for e in events
            if isinstance(e, dict) and isinstance(e.get("experiment"), str)
        }
        known = {k: _known(config.experiments[k]) for k in wanted if k in config.experiments}
        exposures, outcomes, rejected = validate_batch(
            events, timezone.now(), known, check_nul=NUL_ESCAPE in request.body
        )
        accepted = len(exposures) + len(outcomes)
        if not accepted:
            body = error_body("invalid", "No valid event in the batch.", {"events": "none valid"})
            return Response({**body, "accepted": 0, "rejected": rejected}, status=400)
        events_enqueue(exposures=exposures, outcomes=outcomes)
        return Response({"accepted": accepted, "rejected": rejected}, status=202)
