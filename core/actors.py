"""Who is acting: set by the request (admin user or API key) or a command; else the system.

Services record audit entries without an `actor` argument on every call: the entry point says
who acts once (the middleware for admin sessions, API key authentication, `acting_as` in
commands), and everything else that changes data (beat, workers) is the system. It lives in
`core` because authentication (core/auth.py) sets it and the audit log (audit/) reads it.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.db import models
from django.http import HttpRequest, HttpResponse


class ActorType(models.TextChoices):
    USER = "user"
    API_KEY = "api_key"
    SYSTEM = "system"


@dataclass(frozen=True, slots=True)
class Actor:
    type: str
    name: str


SYSTEM = Actor(ActorType.SYSTEM, "system")

_actor: contextvars.ContextVar[Actor | None] = contextvars.ContextVar("audit_actor", default=None)
_request: contextvars.ContextVar[HttpRequest | None] = contextvars.ContextVar(
    "audit_request", default=None
)


def current_actor() -> Actor:
    actor = _actor.get()
    if actor is not None:
        return actor
    request = _request.get()
    user = getattr(request, "user", None) if request is not None else None
    if user is not None and user.is_authenticated:
        return Actor(ActorType.USER, user.get_username())
    return SYSTEM


def actor_set(actor: Actor) -> None:
    """Set for the rest of the current request (reset by the middleware at its end)."""
    _actor.set(actor)


@contextmanager
def acting_as(actor: Actor) -> Iterator[None]:
    token = _actor.set(actor)
    try:
        yield
    finally:
        _actor.reset(token)


class ActorMiddleware:
    """Makes the request's user (admin) or API key (set by authentication) the actor, and
    forgets both when the request ends: a thread serves many requests."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> Any:
        request_token = _request.set(request)
        actor_token = _actor.set(None)
        try:
            return self.get_response(request)
        finally:
            _actor.reset(actor_token)
            _request.reset(request_token)
