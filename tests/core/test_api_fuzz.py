"""Property tests generated from the published OpenAPI schema (schemathesis): every endpoint,
every method, generated bodies, queries and path keys. No answer may be a 5xx, and every
answer with a documented status must match its documented response schema."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
)

from tests.factories import LayerFactory, MetricFactory, make_experiment

# 20 operations × up to 60 examples: well over 1,000 requests in about a minute.
EXAMPLES_PER_OPERATION = 60
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]
REQUESTS: list[str] = []


def _load_schema() -> schemathesis.BaseSchema:
    # Loaded when the module is collected (schemathesis' lazy fixture loader does not run on
    # pytest 9); serving the schema reads no database.
    from config.wsgi import application

    return schemathesis.openapi.from_wsgi("/api/schema/", application)


schema = _load_schema()


@pytest.fixture
def _keep_connection():
    """Requests go through the real WSGI handler, which closes the database connection after
    each request; the test's transaction must survive it (Django's test client does the same)."""
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def bearer(db, _keep_connection) -> str:
    from experiments.services import api_key_create

    # Objects for path keys to hit sometimes (a draft and a running experiment, a metric, a
    # layer); most generated keys are unknown and must be a clean 404.
    make_experiment("exp", start=False)
    make_experiment("live")
    MetricFactory(key="m")
    LayerFactory(key="l")
    return api_key_create(name="fuzz", scopes=["all"])[1]


def existing_key(path: str) -> str:
    if path.startswith("/api/v1/metrics"):
        return "m"
    if path.startswith("/api/v1/layers"):
        return "l"
    # Alternate the draft and the running experiment.
    return "live" if len(REQUESTS) % 4 == 0 else "exp"


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_api__generated_requests__no_5xx_and_responses_match_schema(case, bearer) -> None:
    key = (case.path_parameters or {}).get("key")
    if key is not None and len(REQUESTS) % 2 == 0:
        # Every other request names an object that exists, so success paths are fuzzed too.
        case.path_parameters["key"] = existing_key(case.path)
    REQUESTS.append(f"{case.method} {case.path}")
    case.call_and_validate(headers={"Authorization": f"Bearer {bearer}"}, checks=CHECKS)


# Counts what the database tests above sent, so it runs with them, never in the `unit` set.
@pytest.mark.db
def test_api_fuzz__request_count__at_least_1000() -> None:
    # Runs after the generated tests above (file order); alone it has nothing to count.
    assert len(REQUESTS) >= 1000, len(REQUESTS)
    assert len(set(REQUESTS)) > 20
