"""Every API answer the tests receive is checked against the published OpenAPI schema.

`tests/conftest.py` wraps Django's test client: each response to a path the schema documents
(`/api/v1/...`) is validated with openapi-core against the schema drf-spectacular generates,
status code, content type and body included. A response the schema does not describe fails the
test that received it, so `/api/schema/` cannot drift from what the API really sends. Streamed
downloads (exports) are checked on status and content type only.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from openapi_core import OpenAPI
from openapi_core.contrib.django import DjangoOpenAPIRequest, DjangoOpenAPIResponse
from openapi_core.templating.paths.exceptions import OperationNotFound, PathNotFound

CHECKED_PREFIX = "/api/v1/"


@cache
def openapi() -> OpenAPI:
    from django.core.serializers.json import DjangoJSONEncoder
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    # drf-spectacular emits OrderedDicts and lazy strings; openapi-core wants plain JSON types.
    plain = json.loads(json.dumps(schema, cls=DjangoJSONEncoder))
    return OpenAPI.from_dict(_nullable_refs(plain))


def _nullable_refs(node: Any) -> Any:
    """drf-spectacular writes a nullable nested object as `{"allOf": [ref], "nullable": true}`,
    which a strict OpenAPI 3.0.3 validator reads as not nullable (nullable needs a `type` in
    the same object). Read it as drf-spectacular means it: the object, or null."""
    if isinstance(node, list):
        return [_nullable_refs(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _nullable_refs(value) for key, value in node.items()}
    if node.get("nullable") is True and "allOf" in node and "type" not in node:
        rest = {k: v for k, v in node.items() if k not in ("allOf", "nullable")}
        null = {"type": "object", "nullable": True, "enum": [None]}
        return {**rest, "anyOf": [{"allOf": node["allOf"]}, null]}
    return node


class SchemaMismatch(AssertionError):
    pass


def check_response(request: Any, response: Any) -> None:
    """Raise SchemaMismatch when `response` to `request` is not what the schema documents."""
    if not request.path.startswith(CHECKED_PREFIX):
        return
    if response.status_code in (301, 302, 307, 308):
        return  # the HTTPS redirect of SecurityMiddleware: no API answer yet
    if getattr(response, "streaming", False):
        # A streamed download: the body would be consumed here; its shape has its own tests.
        return
    try:
        openapi().validate_response(DjangoOpenAPIRequest(request), DjangoOpenAPIResponse(response))
    except PathNotFound:
        return
    except OperationNotFound:
        # A method the path does not have (405): not in the schema, but still the error shape.
        error = json.loads(response.content).get("error", {})
        if set(error) != {"code", "message", "fields"}:
            problem = f"{request.method} {request.path}: not the error shape"
            raise SchemaMismatch(f"{problem}: {response.content!r}") from None
        return
    except Exception as error:  # openapi-core raises several families; report them all alike
        detail = "; ".join(str(e) for e in getattr(error, "schema_errors", ()) or [error])
        raise SchemaMismatch(
            f"{request.method} {request.get_full_path()} answered {response.status_code} "
            f"not as /api/schema/ documents: {detail}\nbody: {response.content[:500]!r}"
        ) from error
