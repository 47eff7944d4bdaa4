"""POST /api/v1/events: validate each event, enqueue the valid ones as one task, answer 202."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from assignment.engine import ExperimentConfig, assign
from assignment.selectors import assignment_config
from core.errors import ServiceError, TooLargeError
from core.parsers import NUL_ESCAPE, NulTolerantJSONParser
from events.serializers import (
    BATCH_LIMITS,
    EXAMPLES,
    EventBatchInput,
    EventsAcceptedOutput,
    EventsRefusedOutput,
)
from events.services import events_enqueue
from events.validation import MAX_BODY_BYTES, MAX_EVENTS, KnownExperiment, validate_batch

# Reasons decided by the hash alone; others depend on attributes the client may not resend.
HASH_DECIDED = frozenset({"assigned", "not_in_layer", "not_in_traffic", "forced"})


def _known(config: ExperimentConfig) -> KnownExperiment:
    def server_variant(unit_id: str, attributes: Mapping[str, Any]) -> str | None:
        result = assign(config, unit_id, attributes)
        return result.variant if result.reason in HASH_DECIDED else None

    return KnownExperiment(frozenset(v.key for v in config.variants), server_variant)


class EventsApi(APIView):
    """Report exposures and outcomes in batches (docs/api.md §5). Each event is checked on its
    own: the valid ones are accepted (202) even when others are rejected, and `rejected` says
    why, by position. With `event_id` a retried event is stored once."""

    required_scopes = "events"
    # A NUL in one event rejects that event, not the batch (validate_batch reports it).
    parser_classes = [NulTolerantJSONParser]

    @extend_schema(
        request=EventBatchInput,
        examples=EXAMPLES,
        responses={
            202: EventsAcceptedOutput,
            400: OpenApiResponse(
                EventsRefusedOutput, description="No valid event in the batch, or no batch."
            ),
            413: OpenApiResponse(description=BATCH_LIMITS),
            503: OpenApiResponse(
                description="The queue is unavailable; nothing was accepted. Retry with the "
                "same event ids."
            ),
        },
    )
    def post(self, request: Request) -> Response:
        declared = request.META.get("CONTENT_LENGTH") or "0"
        too_large = int(declared) if declared.isdigit() else 0
        # Check the declared length first so an oversized body is never read into memory.
        if too_large > MAX_BODY_BYTES or len(request.body) > MAX_BODY_BYTES:
            raise TooLargeError(
                "body: at most 1 MiB per request", fields={"body": "at most 1 MiB"}
            )
        data = request.data
        events = data.get("events") if isinstance(data, dict) else None
        if not isinstance(events, list):
            raise ServiceError.from_fields({"events": "a list of events is required"})
        if len(events) > MAX_EVENTS:
            raise TooLargeError(
                f"events: at most {MAX_EVENTS} events per request",
                fields={"events": f"at most {MAX_EVENTS} events (got {len(events)})"},
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
            raise ServiceError(
                "No valid event in the batch.",
                fields={"events": "none valid"},
                extra={"accepted": 0, "rejected": rejected},
            )
        events_enqueue(exposures=exposures, outcomes=outcomes)
        return Response({"accepted": accepted, "rejected": rejected}, status=202)
