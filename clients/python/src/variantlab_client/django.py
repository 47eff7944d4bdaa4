"""Django integration: ``request.variants`` on every request, and a template tag.

Settings::

    INSTALLED_APPS += ["variantlab_client"]  # for the {% variant %} template tag
    MIDDLEWARE += ["variantlab_client.django.VariantsMiddleware"]  # after AuthenticationMiddleware
    VARIANTLAB = {
        "BASE_URL": "https://variantlab.example.com",
        "API_KEY": os.environ["VARIANTLAB_API_KEY"],  # scopes assign + events
        "ATTRIBUTES": "myapp.experiments.attributes",  # optional: request -> dict
        "UNIT_COOKIE": "vl_unit",  # optional: the cookie that identifies anonymous visitors
        "CLIENT_OPTIONS": {"config_path": "/var/cache/myapp/variantlab.json"},  # optional
    }

The unit id is the signed-in user's primary key, else the ``UNIT_COOKIE`` cookie, set (one
year, HttpOnly, SameSite=Lax) on the first response. ``request.variants`` assigns lazily: an
experiment is evaluated, and its exposure logged, only when the view or template reads it.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.module_loading import import_string

from variantlab_client.client import FALLBACK, Client
from variantlab_client.engine import Assignment

COOKIE_MAX_AGE = 365 * 24 * 3600

_client: Client | None = None
_client_lock = threading.Lock()


def get_client() -> Client:
    """This process's client, built from ``settings.VARIANTLAB`` on first use."""
    global _client
    if _client is None:
        with _client_lock:
            if _client is None:
                options = _settings()
                _client = Client(
                    options["BASE_URL"], options["API_KEY"], **options.get("CLIENT_OPTIONS", {})
                )
    return _client


def _settings() -> dict[str, Any]:
    return dict(getattr(settings, "VARIANTLAB", {}))


class RequestVariants(Mapping[str, Assignment]):
    """The unit's assignments, each evaluated (and its exposure logged) on first read."""

    def __init__(self, client: Client, unit_id: str, attributes: Mapping[str, Any]) -> None:
        self.client, self.unit_id, self.attributes = client, unit_id, attributes
        self._seen: dict[str, Assignment] = {}
        self._all: dict[str, Assignment] | None = None

    def __getitem__(self, key: str) -> Assignment:
        found = self._seen.get(key)
        if found is None:
            found = self.client.assign(self.unit_id, self.attributes, [key]).get(key, FALLBACK)
            self._seen[key] = found
        return found

    def _everything(self) -> dict[str, Assignment]:
        if self._all is None:
            self._all = self.client.assign(self.unit_id, self.attributes)
            self._seen.update(self._all)
        return self._all

    def __iter__(self) -> Iterator[str]:
        return iter(self._everything())

    def __len__(self) -> int:
        return len(self._everything())


class VariantsMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        options = _settings()
        self.cookie = options.get("UNIT_COOKIE", "vl_unit")
        attributes = options.get("ATTRIBUTES")
        self.attributes: Callable[[HttpRequest], Mapping[str, Any]] | None = (
            import_string(attributes) if isinstance(attributes, str) else attributes
        )

    def __call__(self, request: HttpRequest) -> HttpResponse:
        unit_id, new_cookie = self._unit_id(request)
        attributes = self.attributes(request) if self.attributes else {}
        # django-stubs (when installed) do not know this attribute; without them it is Any.
        request.variants = RequestVariants(  # type: ignore[attr-defined, unused-ignore]
            get_client(), unit_id, attributes
        )
        response = self.get_response(request)
        if new_cookie:
            response.set_cookie(
                self.cookie, unit_id, max_age=COOKIE_MAX_AGE, httponly=True, samesite="Lax"
            )
        return response

    def _unit_id(self, request: HttpRequest) -> tuple[str, bool]:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            return str(user.pk), False
        existing = request.COOKIES.get(self.cookie)
        if existing:
            return existing, False
        return uuid.uuid4().hex, True
