"""The published OpenAPI document as an app developer reads it in Swagger: a Bearer scheme so
"Try it out" works, a described body for every request and answer, and descriptions written
for users (no code internals)."""

from __future__ import annotations

import json
import re

import pytest

pytestmark = pytest.mark.django_db

INTERNALS = re.compile(r"_answer|\bDRF\b|tests/|\.py\b|dispatch\(|serializer|APIView", re.I)


@pytest.fixture
def schema(client) -> dict:
    response = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    return response.json()


def _operations(schema: dict):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if method in {"get", "post", "put", "patch", "delete"}:
                yield path, method, operation


def _described(body_schema: dict) -> bool:
    return bool(body_schema) and body_schema != {"type": "object"}


def test_schema__bearer_scheme_on_every_operation(schema) -> None:
    schemes = schema["components"]["securitySchemes"]
    bearer = [
        s for s in schemes.values() if s.get("type") == "http" and s.get("scheme") == "bearer"
    ]
    assert bearer, schemes
    names = {name for name, s in schemes.items() if s in bearer}
    for path, method, operation in _operations(schema):
        used = {name for requirement in operation.get("security", []) for name in requirement}
        assert used & names, (method, path)


def test_schema__every_request_and_answer_body_described(schema) -> None:
    for path, method, operation in _operations(schema):
        if method in {"post", "put", "patch"} and "requestBody" in operation:
            for media in operation["requestBody"]["content"].values():
                assert _described(media.get("schema", {})), (method, path, "request")
        for status, answer in operation["responses"].items():
            for media in answer.get("content", {}).values():
                assert _described(media.get("schema", {})), (method, path, status)
            if status.startswith("2") and status not in {"204"} and method != "delete":
                # an answer with a body says what it is (a download may be a file)
                assert answer.get("content") or answer.get("description"), (method, path, status)


def test_schema__descriptions_written_for_users(schema) -> None:
    text = json.dumps(
        [[op.get("summary", ""), op.get("description", "")] for _, _, op in _operations(schema)]
        + [schema["info"].get("description", "")]
    )
    assert not INTERNALS.search(text), INTERNALS.search(text)


def test_schema__events_body_describes_an_event(schema) -> None:
    operation = schema["paths"]["/api/v1/events"]["post"]
    text = json.dumps(operation["requestBody"])
    assert "additionalProp" not in text
    resolved = json.dumps(schema["components"]["schemas"])
    for field in ("unit_id", "experiment", "variant", "event_id", "timestamp"):
        assert field in resolved
