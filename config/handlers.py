"""The WSGI entry's two request paths: the machine API and everything else.

Apps call `/assign`, `/config`, `/features` and `/events` on their own request path, with an API
key and no browser: sessions, CSRF, authentication, messages, static files and frame options do
nothing for them but cost about as much CPU as the view itself (docs/architecture.md). Those
paths get a Django handler of their own whose middleware is `MACHINE_API_MIDDLEWARE`; the admin,
dashboard and API docs keep the full `MIDDLEWARE`. One settings module, one WSGI entry, one
process type.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler


class MachineApiHandler(WSGIHandler):
    """Django's WSGI handler with the machine API's middleware instead of `MIDDLEWARE`."""

    def load_middleware(self, is_async: bool = False) -> None:
        # Django builds a handler's chain from settings.MIDDLEWARE only; the swap happens once,
        # while the WSGI module is imported, before any request is served.
        full = settings.MIDDLEWARE
        settings.MIDDLEWARE = settings.MACHINE_API_MIDDLEWARE
        try:
            super().load_middleware(is_async)
        finally:
            settings.MIDDLEWARE = full


class RequestPathDispatch:
    """A WSGI application that hands machine-API paths to one handler and the rest to another.

    Each handler keeps its own middleware chain and its own view, template-response and
    exception middleware lists, so neither path can leak into the other.
    """

    def __init__(self, machine_api: WSGIHandler, full: WSGIHandler, paths: Iterable[str]):
        self.machine_api = machine_api
        self.full = full
        # A path ending in "/" covers everything under it; any other path only itself.
        self.exact = frozenset(p for p in paths if not p.endswith("/"))
        self.prefixes = tuple(p for p in paths if p.endswith("/"))

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        path = environ.get("PATH_INFO", "")
        if path in self.exact or path.startswith(self.prefixes):
            return self.machine_api(environ, start_response)
        return self.full(environ, start_response)


def application() -> RequestPathDispatch:
    """The service's WSGI application (call after django.setup())."""
    return RequestPathDispatch(MachineApiHandler(), WSGIHandler(), settings.MACHINE_API_PATHS)
