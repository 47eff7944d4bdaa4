"""The WSGI entry's two request paths (config/handlers.py): the machine API runs without the
browser middleware, everything else keeps sessions, CSRF, auth and frame options."""

from __future__ import annotations

import io
import json
from wsgiref.util import setup_testing_defaults

import pytest
from django.core.signals import request_finished, request_started
from django.db import close_old_connections

from config.handlers import RequestPathDispatch
from tests.factories import make_experiment

pytestmark = pytest.mark.django_db


def call(
    method: str,
    path: str,
    body: bytes = b"",
    query: str = "",
    **headers: str,
) -> tuple[int, dict[str, str], bytes]:
    """One request through config.wsgi's application, as gunicorn would hand it over."""
    from config.wsgi import application

    environ: dict = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
        **{f"HTTP_{k.upper()}": v for k, v in headers.items()},
    }
    if body:
        environ["CONTENT_TYPE"] = "application/json"
    setup_testing_defaults(environ)
    started: dict = {}

    def start_response(status: str, response_headers: list, exc_info=None) -> None:
        started["status"] = int(status.split()[0])
        started["headers"] = dict(response_headers)

    # As Django's test client does: the handler's signals would close the test's database
    # connection (and its transaction) at the start and end of each request.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        chunks = application(environ, start_response)
        try:
            content = b"".join(chunks)
        finally:
            getattr(chunks, "close", lambda: None)()
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)
    return started["status"], started["headers"], content


@pytest.fixture
def raw_key(db) -> str:
    from experiments.services import api_key_create

    return api_key_create(name="wsgi", scopes=["all"])[1]


def test_assign__machine_path__same_answer_as_full_stack_without_browser_headers(
    api, raw_key
) -> None:
    make_experiment("ranker")
    body = {"unit_id": "u-7", "attributes": {"country": "FR"}, "log_exposure": False}
    full = api.post("/api/v1/assign", body, format="json")

    status, headers, content = call(
        "POST", "/api/v1/assign", json.dumps(body).encode(), authorization=f"Bearer {raw_key}"
    )

    assert status == 200
    assert content == full.content
    # The browser middleware did not run: no frame options, no cookie, no Vary: Cookie.
    assert "X-Frame-Options" not in headers and full.headers["X-Frame-Options"] == "DENY"
    assert "Set-Cookie" not in headers and "Cookie" not in headers.get("Vary", "")
    # The API's security headers stay.
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "same-origin"


def test_events__machine_path__stored(raw_key) -> None:
    from events.models import Outcome

    batch = {"events": [{"type": "outcome", "unit_id": "u1", "name": "buy", "event_id": "o-1"}]}
    status, headers, content = call(
        "POST", "/api/v1/events", json.dumps(batch).encode(), authorization=f"Bearer {raw_key}"
    )
    assert status == 202, content
    assert json.loads(content) == {"accepted": 1, "rejected": []}
    assert Outcome.objects.get(event_id="o-1").unit_id == "u1"
    assert "X-Frame-Options" not in headers


@pytest.mark.parametrize(
    "path",
    ["/api/v1/config", "/api/v1/features", "/api/v1/events"],
)
def test_machine_paths__keep_api_key_auth(path: str) -> None:
    status, headers, content = call("GET", path)
    assert status == 401
    assert json.loads(content)["error"]["code"] == "not_authenticated"
    assert "X-Frame-Options" not in headers


def test_features_by_client_key__machine_path() -> None:
    from experiments.services import api_key_create

    make_experiment("ranker")
    client_key = api_key_create(name="app", scopes=["assign"])[1]
    status, headers, content = call("GET", f"/api/features/{client_key}")
    assert status == 200
    assert "ranker" in json.loads(content)["features"]
    assert "X-Frame-Options" not in headers


def test_machine_path__nul_in_query__still_400() -> None:
    status, _, content = call("GET", "/api/v1/config", query="a=%00")
    assert status == 400
    assert list(json.loads(content)["error"]["fields"]) == ["query"]


def test_machine_path__unknown_host__400() -> None:
    status, _, _ = call("GET", "/api/v1/config", host="evil.example")
    assert status == 400


def test_admin__full_stack__frame_options_and_csrf_enforced() -> None:
    status, headers, _ = call("GET", "/admin/login/")
    assert status == 200
    assert headers["X-Frame-Options"] == "DENY"
    assert "csrftoken" in headers.get("Set-Cookie", "")
    # A form post without the CSRF token is refused: CSRF still runs for the admin.
    status, _, _ = call("POST", "/admin/login/", b"username=a&password=b")
    assert status == 403


def test_management_api__full_stack(raw_key) -> None:
    # Experiments are managed through the full path (the audit log's actor middleware runs).
    status, headers, _ = call("GET", "/api/v1/experiments", authorization=f"Bearer {raw_key}")
    assert status == 200
    assert headers["X-Frame-Options"] == "DENY"


def test_dispatch__exact_paths_and_prefixes() -> None:
    seen: list[str] = []

    def handler(name: str):
        def app(environ, start_response):
            seen.append(name)
            return []

        return app

    dispatch = RequestPathDispatch(
        handler("machine"), handler("full"), ["/api/v1/assign", "/api/features/"]
    )
    for path in [
        "/api/v1/assign",
        "/api/features/abc",
        "/api/v1/assignx",
        "/api/v1/assign/",
        "/api/features",
        "/admin/",
    ]:
        dispatch({"PATH_INFO": path}, None)
    assert seen == ["machine", "machine", "full", "full", "full", "full"]


def test_machine_api_paths__cover_exactly_the_machine_routes(settings) -> None:
    from config.urls import machine_api_urlpatterns

    routes = {"/" + str(p.pattern).split("<", 1)[0] for p in machine_api_urlpatterns}
    assert routes == set(settings.MACHINE_API_PATHS)
