"""OpenAPI helpers shared by every app: the API key scheme and the error responses.

The post-processing hook (SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"]) gives every operation
the error shape of docs/api.md §4, so each documented answer, errors included, can be checked
against the schema (tests/schema_conformance.py).
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension


# drf-spectacular's __init_subclass__ (it registers the extension) is untyped.
class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    """The Bearer security scheme of core.auth.ApiKeyAuthentication (registered by defining
    it; core/apps.py imports this module at start). Without it the schema has no security
    scheme: Swagger's "Authorize", generated clients and the fuzz tests would not know to send
    `Authorization: Bearer <key>`, and `check --deploy` warns for every view."""

    target_class = "core.auth.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": (
                "An API key, sent as `Authorization: Bearer <key>`. Create one in the admin or "
                "with `manage.py create_api_key --name NAME --scopes a,b`; each endpoint names "
                "the scope it needs (docs/api.md §3)."
            ),
        }


ERROR_COMPONENT = "Error"

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Every error of the API (docs/api.md §4).",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {
                    "type": "string",
                    "description": "Stable, machine-readable: invalid, not_found, frozen, …",
                    "example": "invalid",
                },
                "message": {
                    "type": "string",
                    "description": "The first problem in one line, prefixed with its field.",
                    "example": "variants.0.weight: Ensure this value is less than or equal to 1.",
                },
                "fields": {
                    "type": "object",
                    "additionalProperties": {},
                    "description": "Each bad field (nested as in the request) and its message.",
                    "example": {"variants": [{"weight": "Ensure this value is less than 1."}]},
                },
            },
            "required": ["code", "message", "fields"],
        }
    },
    "required": ["error"],
}

# Status → when it happens; added to an operation unless it documents that status itself.
_SECURED_ERRORS = {
    "401": "No API key, or an unknown one.",
    "403": "The API key lacks this endpoint's scope.",
    "429": "The API key is over its rate limit; `Retry-After` says when to retry.",
}
_INPUT_ERROR = {"400": "Bad input: `fields` names every bad field."}
_LOOKUP_ERROR = {"404": "No such object."}


def _error_response(description: str) -> dict[str, Any]:
    schema = {"$ref": f"#/components/schemas/{ERROR_COMPONENT}"}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def error_responses_hook(
    result: dict[str, Any], generator: Any, request: Any, public: bool
) -> dict[str, Any]:
    """drf-spectacular post-processing: the Error component and each operation's errors."""
    result.setdefault("components", {}).setdefault("schemas", {})[ERROR_COMPONENT] = ERROR_SCHEMA
    for path, operations in result.get("paths", {}).items():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            errors: dict[str, str] = {}
            if operation.get("requestBody") or any(
                p.get("in") == "query" for p in operation.get("parameters", [])
            ):
                errors |= _INPUT_ERROR
            if "{" in path:
                errors |= _LOOKUP_ERROR
            if operation.get("security"):
                errors |= _SECURED_ERRORS
            for code, description in errors.items():
                responses.setdefault(code, _error_response(description))
            # Any other status (405, 406, 409, 413, 415, 503, …) also answers the error shape.
            responses.setdefault("default", _error_response("An error (docs/api.md §4)."))
    return result
