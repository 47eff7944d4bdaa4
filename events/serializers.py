"""The shapes of POST /events, as serializers, so the OpenAPI schema describes them.

Validation itself is per event in `events.validation` (a bad event is rejected alone and the
batch's valid events are kept), so these classes only describe the request and the answers
(docs/api.md §5).
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, PolymorphicProxySerializer
from rest_framework import serializers

from events.validation import MAX_EVENT_ID, MAX_EVENTS, MAX_NAME, MAX_UNIT_ID


class ExposureEventInput(serializers.Serializer):
    """A unit saw a variant (apps that assign locally report exposures this way)."""

    type = serializers.ChoiceField(choices=["exposure"])
    unit_id = serializers.CharField(max_length=MAX_UNIT_ID)
    experiment = serializers.CharField(max_length=100)
    variant = serializers.CharField(max_length=100)
    timestamp = serializers.DateTimeField(
        required=False, help_text="ISO 8601; default now; at most 5 minutes in the future."
    )
    event_id = serializers.CharField(
        max_length=MAX_EVENT_ID,
        required=False,
        help_text="Makes retries safe: an event is stored once. Default: from its content.",
    )
    attributes = serializers.DictField(required=False)


class OutcomeEventInput(serializers.Serializer):
    """Something happened to a unit that a metric counts (a purchase, a latency, …)."""

    type = serializers.ChoiceField(choices=["outcome"])
    unit_id = serializers.CharField(max_length=MAX_UNIT_ID)
    name = serializers.CharField(max_length=MAX_NAME, help_text="The metric's event name.")
    value = serializers.FloatField(required=False, default=1.0)
    timestamp = serializers.DateTimeField(
        required=False, help_text="ISO 8601; default now; at most 5 minutes in the future."
    )
    event_id = serializers.CharField(max_length=MAX_EVENT_ID, required=False)
    properties = serializers.DictField(required=False)


EVENT = PolymorphicProxySerializer(
    component_name="Event",
    serializers={"exposure": ExposureEventInput, "outcome": OutcomeEventInput},
    resource_type_field_name="type",
    many=True,
)


class EventBatchInput(serializers.Serializer):
    events = EVENT


class EventErrorOutput(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    # A field named like Serializer.fields: DRF's metaclass takes it off the class.
    fields = serializers.DictField()  # type: ignore[assignment]


class RejectedEventOutput(serializers.Serializer):
    index = serializers.IntegerField(help_text="The event's position in the batch.")
    error = EventErrorOutput()


class EventsAcceptedOutput(serializers.Serializer):
    accepted = serializers.IntegerField(help_text="Valid events, durably enqueued.")
    rejected = RejectedEventOutput(many=True)


class EventsRefusedOutput(serializers.Serializer):
    """No event of the batch was valid: the error shape, plus each event's reason."""

    error = EventErrorOutput()
    accepted = serializers.IntegerField(required=False)
    rejected = RejectedEventOutput(many=True, required=False)


EXAMPLES = [
    OpenApiExample(
        "An exposure and an outcome",
        request_only=True,
        value={
            "events": [
                {
                    "type": "exposure",
                    "unit_id": "user-42",
                    "experiment": "search-ranker-v2",
                    "variant": "treatment",
                    "timestamp": "2026-11-28T10:00:00Z",
                    "event_id": "exp-7f3a",
                },
                {
                    "type": "outcome",
                    "unit_id": "user-42",
                    "name": "purchase",
                    "value": 19.99,
                    "timestamp": "2026-11-28T10:05:00Z",
                    "event_id": "ord-1001",
                    "properties": {"sku": "A-7"},
                },
            ]
        },
    ),
    OpenApiExample(
        "One accepted, one rejected",
        response_only=True,
        status_codes=["202"],
        value={
            "accepted": 1,
            "rejected": [
                {
                    "index": 1,
                    "error": {
                        "code": "invalid",
                        "message": "name: required",
                        "fields": {"name": "required"},
                    },
                }
            ],
        },
    ),
]

BATCH_LIMITS = f"At most {MAX_EVENTS} events and 1 MiB per request."
