"""variantlab_client.django: request.variants from the unit id, the cookie, the template tag."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

pytest.importorskip("pytest_django", reason="the Django integration is tested under Django")

from client_fakes import CONFIG
from django.http import HttpResponse
from django.template import Context, Engine
from variantlab_client import FALLBACK, Client
from variantlab_client import django as integration
from variantlab_client.config import LoadedConfig
from variantlab_client.engine import assign


@pytest.fixture
def client(tmp_path: Path, closed_port: int, monkeypatch):
    # A real client whose configuration comes from its persisted file (the server is down)
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"etag": '"v1"', "config": CONFIG}))
    client = Client(f"http://127.0.0.1:{closed_port}", "key", config_path=path, flush_seconds=60)
    monkeypatch.setattr(integration, "_client", client)
    yield client
    client.close(timeout=0.1)


def _attributes(request: Any) -> dict[str, Any]:
    return {"plan": request.GET.get("plan", "free")}


def _middleware(settings, view) -> integration.VariantsMiddleware:
    settings.VARIANTLAB = {"BASE_URL": "unused", "API_KEY": "unused", "ATTRIBUTES": _attributes}
    return integration.VariantsMiddleware(view)


def test_middleware__anonymous__cookie_unit_set_once_and_variants_assigned(client, rf, settings):
    # Given a view that reads the ranker experiment
    seen: dict[str, Any] = {}

    def view(request: Any) -> HttpResponse:
        seen["ranker"] = request.variants["ranker"]
        return HttpResponse("ok")

    middleware = _middleware(settings, view)
    # When an anonymous visitor comes, then comes back with the cookie it was given
    first = middleware(rf.get("/", {"plan": "pro"}))
    unit = first.cookies["vl_unit"].value
    returning = rf.get("/", {"plan": "pro"})
    returning.COOKIES["vl_unit"] = unit
    again = middleware(returning)
    # Then the cookie was set once (HttpOnly, a year) and the variant is the engine's for it
    assert first.cookies["vl_unit"]["httponly"] and first.cookies["vl_unit"]["max-age"] > 3e7
    assert "vl_unit" not in again.cookies
    expected = assign(
        LoadedConfig.parse(CONFIG, None).experiments["ranker"], unit, {"plan": "pro"}
    )
    assert seen["ranker"] == expected
    # And only the experiment read was assigned: one exposure per request at most
    exposures = [e for e in client._queue if e["type"] == "exposure"]
    assert {e["experiment"] for e in exposures} <= {"ranker"}
    assert len(exposures) == (2 if expected.in_experiment else 0)


def test_middleware__signed_in_user__user_pk_is_the_unit(client, rf, settings) -> None:
    seen: dict[str, Any] = {}

    def view(request: Any) -> HttpResponse:
        seen["all"] = dict(request.variants)
        return HttpResponse("ok")

    request = rf.get("/")
    request.user = SimpleNamespace(is_authenticated=True, pk=42)
    response = _middleware(settings, view)(request)
    assert "vl_unit" not in response.cookies
    assert seen["all"] == client.assign("42", {"plan": "free"})


def test_template_tag__variant__payload_rendered(client, rf, settings) -> None:
    engine = Engine(libraries={"variantlab": "variantlab_client.templatetags.variantlab"})
    template = engine.from_string(
        '{% load variantlab %}{% variant "ranker" as r %}{{ r.variant }}/{{ r.payload.m }}'
    )
    request = rf.get("/")
    request.user = SimpleNamespace(is_authenticated=True, pk="qa")  # forced into treatment
    rendered = _middleware(
        settings, lambda r: HttpResponse(template.render(Context({"request": r})))
    )(request)
    assert rendered.content == b"treatment/2"
    # Without the middleware the tag serves the fallback rather than failing the page
    bare = template.render(Context({"request": rf.get("/")}))
    assert bare == f"{FALLBACK.variant}/"
