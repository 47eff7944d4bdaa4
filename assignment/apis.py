from __future__ import annotations

import json
from json.encoder import encode_basestring
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiResponse,
    extend_schema,
    extend_schema_serializer,
    inline_serializer,
)
from rest_framework import serializers
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from assignment.engine import Assignment
from assignment.selectors import AssignmentConfig, assignment_config
from assignment.serializers import ConfigOutput, FeaturesOutput
from assignment.services import UnitAssignments, unit_assign
from core.auth import bearer_key, key_identity, over_rate_limit
from core.errors import error_body
from core.parsers import NUL_ESCAPE


class AssignmentOutput(serializers.Serializer[Any]):
    variant = serializers.CharField()
    payload = serializers.DictField()
    in_experiment = serializers.BooleanField()
    reason = serializers.ChoiceField(
        choices=[
            "not_running",
            "shipped",
            "forced",
            "not_targeted",
            "not_in_layer",
            "not_in_traffic",
            "rolled_back",
            "assigned",
        ]
    )


class AssignApi(APIView):
    """Which variant of each experiment a unit gets, with its payload and the reason
    (docs/api.md §2). Deterministic: the same unit gets the same variant in every process,
    without per-unit storage. Without `experiments`, every running, paused and shipped
    experiment is evaluated. With `log_exposure` (the default) units in an experiment are
    recorded as exposed."""

    # DRF describes this endpoint (OpenAPI, docs) and answers every unusual request: errors,
    # 401/403, other content types or Accept headers. The usual request, a well-formed JSON body
    # from a known key with the `assign` scope, is answered by `_answer_usual` in plain Django,
    # because DRF's per-request machinery cost about as much CPU as assigning ten experiments.
    # Both give the same status, headers and body (tests/assignment/test_assign_api.py).

    required_scopes = "assign"

    @extend_schema_serializer(component_name="AssignRequest")
    class InputSerializer(serializers.Serializer[Any]):
        unit_id = serializers.CharField(max_length=256, trim_whitespace=False)
        attributes = serializers.DictField(required=False, default=dict)
        experiments = serializers.ListField(
            child=serializers.CharField(max_length=100), required=False, allow_null=True
        )
        log_exposure = serializers.BooleanField(required=False, default=True)

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        response: HttpResponseBase | None = _answer_usual(request)
        if response is None:
            response = super().dispatch(request, *args, **kwargs)
        return response

    @extend_schema(
        request=InputSerializer,
        examples=[
            OpenApiExample(
                "One experiment",
                request_only=True,
                value={
                    "unit_id": "user-42",
                    "attributes": {"country": "US", "app_version": "5.3.1"},
                    "experiments": ["search-ranker-v2"],
                },
            ),
            OpenApiExample(
                "Its answer",
                response_only=True,
                value={
                    "unit_id": "user-42",
                    "assignments": {
                        "search-ranker-v2": {
                            "variant": "treatment",
                            "payload": {"model": "ranker", "version": "2.3.1"},
                            "in_experiment": True,
                            "reason": "assigned",
                        }
                    },
                    "unknown": [],
                },
            ),
        ],
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
        result = _unit_assign(data, assignment_config.get())
        return Response(
            {
                "unit_id": data["unit_id"],
                "assignments": {k: _assignment_json(a) for k, a in result.assignments.items()},
                "unknown": result.unknown,
            }
        )


# Larger bodies are left to DRF, which reads them as a stream (Django's `request.body` refuses
# bodies over DATA_UPLOAD_MAX_MEMORY_SIZE).
USUAL_MAX_BODY = 64 * 1024

JSON = "application/json"
_json_renderer = JSONRenderer()


def _answer_usual(request: HttpRequest) -> HttpResponse | None:
    """The answer DRF would give to a usual /assign request, or None for anything else."""
    meta = request.META
    if (
        request.method != "POST"
        or request.content_type != JSON
        or request.content_params not in ({}, {"charset": "utf-8"})
        or meta.get("HTTP_ACCEPT", "*/*") not in ("*/*", "application/json")
        or meta.get("QUERY_STRING")
        or not 0 < _content_length(meta) <= USUAL_MAX_BODY
    ):
        return None
    if not _usual_key(request, AssignApi.required_scopes):
        return None
    if NUL_ESCAPE in request.body:
        return None  # DRF's parser answers 400 naming the field (PostgreSQL cannot store NUL)
    try:
        # As DRF's JSONParser: UTF-8, and NaN or Infinity refused.
        body = json.loads(request.body.decode("utf-8"), parse_constant=_refuse_constant)
    except ValueError:
        return None
    data = _assign_input_fast(body)
    if data is None:
        return None
    config = assignment_config.get()
    result = _unit_assign(data, config)
    response = HttpResponse(_answer_json(data["unit_id"], result, config), content_type=JSON)
    response["Allow"] = "POST, OPTIONS"
    return response


def _usual_key(request: HttpRequest, scope: str) -> bool:
    """Whether the request carries a known key with `scope` that is within its rate limit: the
    cases DRF's authentication, permission and throttle classes would let through unchanged."""
    raw_key = bearer_key(request.META.get("HTTP_AUTHORIZATION", ""))
    identity = key_identity(raw_key) if raw_key else None
    if identity is None or not identity.allows(scope):
        return False
    # Over the limit, DRF answers the 429 (the request is counted once).
    return over_rate_limit(identity, request) is None


def _usual_get(request: HttpRequest) -> bool:
    """A plain GET that DRF would answer with its JSON renderer and no negotiation."""
    meta = request.META
    return (
        request.method == "GET"
        and not meta.get("QUERY_STRING")
        and meta.get("HTTP_ACCEPT", "*/*") in ("*/*", "application/json")
        and _usual_key(request, "assign")
    )


# What DRF's APIView puts in `Allow` for a view with only `get`.
GET_ALLOW = "GET, HEAD, OPTIONS"


def _content_length(meta: dict[str, Any]) -> int:
    try:
        return int(meta.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def _unit_assign(data: dict[str, Any], config: AssignmentConfig) -> UnitAssignments:
    return unit_assign(
        unit_id=data["unit_id"],
        attributes=data["attributes"],
        experiment_keys=data.get("experiments"),
        log_exposure=data["log_exposure"],
        config=config,
    )


def _assignment_json(assignment: Assignment) -> dict[str, Any]:
    return {
        "variant": assignment.variant,
        "payload": assignment.payload,
        "in_experiment": assignment.in_experiment,
        "reason": assignment.reason,
    }


def _answer_json(unit_id: str, result: UnitAssignments, config: AssignmentConfig) -> bytes:
    """DRF's JSON rendering of the answer, byte for byte, built from parts rendered once per
    config version (an ML variant's payload can be large; it never changes within a version)."""
    rendered = config.rendered_answers
    parts = []
    for key, assignment in result.assignments.items():
        memo_key = (key, assignment.variant, assignment.reason, assignment.in_experiment)
        part = rendered.get(memo_key)
        if part is None:
            # `"key":{...}`: the one-entry object without its braces.
            part = rendered[memo_key] = _render({key: _assignment_json(assignment)})[1:-1]
        parts.append(part)
    return b'{"unit_id":%s,"assignments":{%s},"unknown":%s}' % (
        _render_text(unit_id),
        b",".join(parts),
        _render(result.unknown) if result.unknown else b"[]",
    )


def _render_text(text: str) -> bytes:
    """DRF's rendering of one string (UTF-8, U+2028/U+2029 escaped), without its encoder."""
    rendered = encode_basestring(text)
    if "\u2028" in rendered or "\u2029" in rendered:
        rendered = rendered.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return rendered.encode()


def _render(data: Any) -> bytes:
    return _json_renderer.render(data)


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
    """Every running, paused or shipped experiment with what local evaluation needs
    (docs/api.md §2, §5): an SDK evaluating from it gets the same answers as `POST /assign`.
    The answer carries an `ETag`; send it back in `If-None-Match` and an unchanged
    configuration answers 304 without a body."""

    required_scopes = "assign"

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        # Apps poll this every few seconds, mostly for a 304: the usual GET skips DRF's
        # per-request machinery, which costs more than the answer (docs/architecture.md).
        if _usual_get(request):
            response = _config_response(request, assignment_config.get())
            response["Allow"] = GET_ALLOW
            return response
        return super().dispatch(request, *args, **kwargs)

    @extend_schema(
        responses={
            200: ConfigOutput,
            304: OpenApiResponse(description="Not modified since the ETag sent."),
        }
    )
    def get(self, request: Request) -> HttpResponse:
        return _config_response(request, assignment_config.get())


def _config_response(request: HttpRequest, config: AssignmentConfig) -> HttpResponse:
    return _conditional_response(request, config.config_body, config.etag)


def _etags(header: str) -> set[str]:
    return {tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip()}


def _features_response(request: HttpRequest, config: AssignmentConfig) -> HttpResponse:
    return _conditional_response(request, config.features_body, config.features_etag)


def _conditional_response(request: HttpRequest, body: bytes, etag: str) -> HttpResponse:
    """`body`, or a 304 when the request's If-None-Match names `etag`."""
    if etag in _etags(request.META.get("HTTP_IF_NONE_MATCH", "")):
        response = HttpResponse(status=304)
    else:
        response = HttpResponse(body, content_type=JSON)
    response["ETag"] = etag
    response["Cache-Control"] = "no-cache"
    return response


class FeaturesApi(APIView):
    """The served experiments as GrowthBook's SDK payload (docs/api.md §13), for any
    unmodified GrowthBook SDK (also at `/api/features/{key}`, the key in the path). ETags as
    for `/config`."""

    required_scopes = "assign"

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if _usual_get(request):  # as ConfigApi
            response = _features_response(request, assignment_config.get())
            response["Allow"] = GET_ALLOW
            return response
        return super().dispatch(request, *args, **kwargs)

    @extend_schema(
        responses={
            200: FeaturesOutput,
            304: OpenApiResponse(description="Not modified since the ETag sent."),
        }
    )
    def get(self, request: Request) -> HttpResponse:
        return _features_response(request, assignment_config.get())


def features_by_client_key(request: HttpRequest, client_key: str) -> HttpResponse:
    """GET /api/features/{key}: where GrowthBook's SDKs fetch features, the key in the path.

    The key travels in URLs and ships inside apps, so only keys whose sole scope is `assign`
    are accepted here: a leaked one can read the configuration and assign, nothing else.
    """
    if request.method not in ("GET", "HEAD"):
        return _error(405, "method_not_allowed", "Only GET is allowed here.")
    identity = key_identity(client_key)
    if identity is None:
        return _error(401, "not_authenticated", "Invalid or revoked API key.")
    if identity.scopes != frozenset({"assign"}):
        return _error(
            403,
            "permission_denied",
            "Only an assign-only API key may be used in a URL; create one with "
            "`create_api_key --scopes assign`.",
        )
    response = _features_response(request, assignment_config.get())
    # Browser SDKs fetch this from other origins; it carries nothing an app key cannot read.
    response["Access-Control-Allow-Origin"] = "*"
    return response


def _error(status: int, code: str, message: str) -> HttpResponse:
    return HttpResponse(json.dumps(error_body(code, message)), status=status, content_type=JSON)
