"""Request parsing that refuses what PostgreSQL cannot store: the NUL character.

PostgreSQL text and jsonb cannot hold U+0000 ("unsupported Unicode escape sequence"), so a
JSON string with `\\u0000` that reaches the database is a 500. DRF's CharField already refuses
NUL; free-form JSON (payloads, conditions, attributes, forced-assignment unit ids) did not.
The check costs one substring search of the raw body; the walk runs only when it matches.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from rest_framework import parsers
from rest_framework.exceptions import ValidationError

NUL_MESSAGE = "must not contain the NUL character (\\u0000)"
# In JSON text a NUL can only be written as this escape (a raw control character is invalid).
NUL_ESCAPE = b"\\u0000"


def nul_path(data: Any, path: str = "") -> str | None:
    """The dotted path of the first string (key or value) holding a NUL, or None."""
    if isinstance(data, str):
        return path or "body" if "\x00" in data else None
    if isinstance(data, dict):
        for key, value in data.items():
            here = f"{path}.{key}" if path else str(key)
            if "\x00" in str(key):
                return here.replace("\x00", "\\u0000")
            found = nul_path(value, here)
            if found:
                return found
    if isinstance(data, list):
        for index, value in enumerate(data):
            found = nul_path(value, f"{path}.{index}" if path else str(index))
            if found:
                return found
    return None


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, plus a 400 naming the field when a string holds a NUL."""

    # Views that report NUL per item themselves (POST /events keeps a batch's valid events).
    allow_nul = False

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        raw = stream.read() if stream is not None else b""
        data = super().parse(io.BytesIO(raw), media_type, parser_context)
        if not self.allow_nul and NUL_ESCAPE in raw:
            path = nul_path(data)
            if path:
                raise ValidationError({path: NUL_MESSAGE})
        return data


class NulTolerantJSONParser(JSONParser):
    allow_nul = True


class NulInUrlMiddleware:
    """400 for a NUL in the URL path or query: every lookup by key would otherwise be a 500."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        # Imported here: core.errors imports DRF's views, which import this parser.
        from core.errors import error_body

        if "\x00" in request.path or "%00" in request.META.get("QUERY_STRING", ""):
            where = "path" if "\x00" in request.path else "query"
            return JsonResponse(
                error_body("invalid", f"{where}: {NUL_MESSAGE}", {where: NUL_MESSAGE}),
                status=400,
            )
        return self.get_response(request)
