"""One error shape for every API response: {"error": {"code", "message", "fields"}}."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler


class ServiceError(Exception):
    """A refused operation: carries the HTTP status, a stable code and field messages.

    Raised anywhere below a view, it leaves every API as the error shape (docs/api.md §4);
    `extra` adds top-level keys beside `error` (POST /events adds `accepted` and `rejected`).
    """

    status_code: int = status.HTTP_400_BAD_REQUEST
    code: str = "invalid"

    def __init__(
        self,
        message: str,
        *,
        fields: dict[str, Any] | None = None,
        code: str = "",
        extra: dict[str, Any] | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.fields = fields or {}
        self.extra = extra or {}
        if code:
            self.code = code

    @classmethod
    def from_fields(cls, fields: dict[str, Any], **kwargs: Any) -> ServiceError:
        """The error for these bad fields, its message naming the first of them."""
        return cls(first_message(fields), fields=fields, **kwargs)

    def body(self) -> dict[str, Any]:
        return {**error_body(self.code, self.message, self.fields), **self.extra}


class ConflictError(ServiceError):
    status_code = status.HTTP_409_CONFLICT
    code = "conflict"


class FrozenError(ConflictError):
    """A change to settings that froze when the experiment started (docs/api.md §7)."""

    code = "frozen"


class NotFoundError(ServiceError):
    status_code = status.HTTP_404_NOT_FOUND
    code = "not_found"


class UnavailableError(ServiceError):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    code = "unavailable"


class TooLargeError(ServiceError):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    code = "too_large"


def error_body(code: str, message: str, fields: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "fields": fields or {}}}


def _flatten(detail: Any) -> Any:
    """DRF nests ErrorDetail objects; users want plain strings under field names."""
    if isinstance(detail, dict):
        return {str(k): _flatten(v) for k, v in detail.items()}
    if isinstance(detail, list):
        flat = [_flatten(v) for v in detail]
        return flat[0] if len(flat) == 1 and isinstance(flat[0], str) else flat
    return str(detail)


def first_message(fields: Any, path: str = "") -> str:
    """The first problem as one line, prefixed with its field path: "variants.0.weight: ..."."""
    if isinstance(fields, dict) and fields:
        key, value = next(iter(fields.items()))
        if key != "non_field_errors":
            path = f"{path}.{key}" if path else str(key)
        return first_message(value, path)
    if isinstance(fields, list | tuple) and fields:
        return first_message(fields[0], path)
    return f"{path}: {fields}" if path else str(fields)


def validation_response(fields: dict[str, Any], status_code: int = 400) -> Response:
    fields = _flatten(fields)
    message = first_message(fields) if fields else "Invalid input."
    return Response(error_body("invalid", message, fields), status=status_code)


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, ServiceError):
        return Response(exc.body(), status=exc.status_code)
    if isinstance(exc, DjangoValidationError):
        fields = (
            exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        )
        return validation_response(fields)
    if isinstance(exc, exceptions.ValidationError):
        detail = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        return validation_response(detail)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    if isinstance(exc, exceptions.Throttled):
        # DRF's own handler adds the Retry-After header; the code is the contract's.
        response = exception_handler(exc, context)
        assert response is not None  # DRF answers every APIException
        wait = int(getattr(exc, "wait", None) or 1)
        response.data = error_body(
            "rate_limited",
            f"This API key is over its requests-per-second limit; retry after {wait} s.",
        )
        return response
    response = exception_handler(exc, context)
    if response is None:
        return None
    codes = exc.get_codes() if isinstance(exc, exceptions.APIException) else "error"
    code = codes if isinstance(codes, str) else "error"
    message = response.data.get("detail", "") if isinstance(response.data, dict) else ""
    response.data = error_body(code, str(message))
    return response
