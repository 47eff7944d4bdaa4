"""Fixtures shared by every test: API clients with keys, fresh per-process caches.

Tests marked `integration` run only in production mode (PostgreSQL + a Redis broker) and use
real Celery worker processes; all other tests run tasks eagerly in both modes.
"""

from __future__ import annotations

import os

import pytest

# Django is imported inside the fixtures so the pure suites (tests/analysis/stats,
# tests/assignment) also run with `-p no:django`.


def production_mode() -> bool:
    from django.conf import settings
    from django.db import connection

    return connection.vendor == "postgresql" and bool(settings.CELERY_BROKER_URL)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    from tests.markers import kind_markers

    # `unit` (no database, no process) or `db`, so that `pytest -m unit` needs no services.
    for item in items:
        names = [marker.name for marker in item.iter_markers()]
        for name in kind_markers(names, getattr(item, "fixturenames", ())):
            item.add_marker(name)
    if not config.pluginmanager.has_plugin("django") or production_mode():
        return
    reason = "integration test: needs DATABASE_URL (PostgreSQL) and CELERY_BROKER_URL (Redis)"
    required = os.environ.get("VARIANTLAB_REQUIRE_SERVICES") == "1"
    for item in items:
        if item.get_closest_marker("integration"):
            # In CI a skipped integration test would hide a broken setup: fail it instead.
            marker = (
                pytest.mark.usefixtures("_fail_missing_services")
                if required
                else (pytest.mark.skip(reason=reason))
            )
            item.add_marker(marker)


@pytest.fixture
def _fail_missing_services() -> None:
    pytest.fail("VARIANTLAB_REQUIRE_SERVICES=1 but PostgreSQL/Redis settings are not active")


@pytest.fixture(autouse=True)
def _celery_mode(request: pytest.FixtureRequest):
    """Unit tests run tasks in-process; integration tests send them to real workers."""
    if not _django_ready():
        yield
        return
    from django.conf import settings

    from config.celery import app as celery_app

    integration = request.node.get_closest_marker("integration") is not None
    eager = not integration or not settings.CELERY_BROKER_URL
    previous = celery_app.conf.task_always_eager, settings.CELERY_TASK_ALWAYS_EAGER
    celery_app.conf.task_always_eager = settings.CELERY_TASK_ALWAYS_EAGER = eager
    yield
    celery_app.conf.task_always_eager, settings.CELERY_TASK_ALWAYS_EAGER = previous


def _django_ready() -> bool:
    try:
        from django.conf import settings

        return settings.configured
    except ImportError:
        return False


@pytest.fixture(autouse=True)
def _fresh_caches():
    if not _django_ready():
        yield
        return
    from assignment.selectors import assignment_config
    from core.auth import active_keys

    assignment_config.invalidate()
    active_keys.invalidate()
    yield
    assignment_config.invalidate()
    active_keys.invalidate()


@pytest.fixture(autouse=True)
def _schema_conformance(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch):
    """Check every API answer the test client receives against /api/schema/
    (tests/schema_conformance.py). Tests that send raw, schema-less requests on purpose opt out
    with @pytest.mark.no_schema_check."""
    if not _django_ready() or request.node.get_closest_marker("no_schema_check"):
        yield
        return
    from django.test import Client

    from tests.schema_conformance import check_response

    original = Client.request

    def checked(self: Client, **kwargs: object):
        response = original(self, **kwargs)
        check_response(response.wsgi_request, response)
        return response

    monkeypatch.setattr(Client, "request", checked)
    yield


@pytest.fixture
def make_api_client(db):
    """make_api_client("assign", "read") -> an APIClient carrying a key with those scopes."""
    from rest_framework.test import APIClient

    from experiments.services import api_key_create

    def make(*scopes: str) -> APIClient:
        _, raw_key = api_key_create(name="test", scopes=list(scopes) or ["all"])
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
        return client

    return make


@pytest.fixture
def api(make_api_client):
    return make_api_client("all")
