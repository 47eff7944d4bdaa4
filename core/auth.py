"""Bearer API keys with scopes, checked from an in-process table (no query per request).

The key rows live in the model named by `settings.VARIANTLAB_API_KEY_MODEL` (`experiments.ApiKey`,
beside the admin and services that manage keys), so `core` imports no app: the model needs the
fields `hashed_key`, `name`, `scopes`, `rate_limit`, `is_active` and a static `hash(raw_key)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from django.apps import apps
from django.conf import settings
from django.http import HttpRequest
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from core import ratelimit
from core.actors import Actor, ActorType, actor_set
from core.config_version import VersionedCache


@dataclass(frozen=True, slots=True)
class ApiKeyIdentity:
    id: int
    name: str
    scopes: frozenset[str]
    rate_limit: int | None = None  # requests per second; None: unlimited

    is_authenticated = True

    def allows(self, scope: str) -> bool:
        return "all" in self.scopes or scope in self.scopes


@cache
def api_key_model() -> Any:
    """The API key model class (`settings.VARIANTLAB_API_KEY_MODEL`), looked up once: the
    lookup would otherwise run on every request."""
    return apps.get_model(settings.VARIANTLAB_API_KEY_MODEL)


def _load_active_keys() -> dict[str, ApiKeyIdentity]:
    rows = (
        api_key_model()
        .objects.filter(is_active=True)
        .values_list("hashed_key", "id", "name", "scopes", "rate_limit")
    )
    return {
        h: ApiKeyIdentity(pk, name, frozenset(scopes), limit)
        for h, pk, name, scopes, limit in rows
    }


active_keys = VersionedCache(_load_active_keys)


def _fresh_key(hashed: str) -> ApiKeyIdentity | None:
    """A key created since the table was loaded works at once (one indexed read on a miss)."""
    row = (
        api_key_model()
        .objects.filter(hashed_key=hashed, is_active=True)
        .values_list("id", "name", "scopes", "rate_limit")
        .first()
    )
    if row is None:
        return None
    identity = ApiKeyIdentity(row[0], row[1], frozenset(row[2]), row[3])
    active_keys.get()[hashed] = identity
    return identity


def key_identity(raw_key: str) -> ApiKeyIdentity | None:
    """The active key with this secret, or None."""
    hashed = api_key_model().hash(raw_key)
    return active_keys.get().get(hashed) or _fresh_key(hashed)


def bearer_key(header: str) -> str | None:
    """The key of an `Authorization: Bearer <key>` header, or None if it has another form."""
    scheme, _, raw_key = header.partition(" ")
    raw_key = raw_key.strip()
    return raw_key if scheme.lower() == "bearer" and raw_key else None


RATE_WAIT_ATTR = "_variantlab_rate_wait"


def over_rate_limit(identity: ApiKeyIdentity, request: HttpRequest) -> int | None:
    """Counts `request` against its key's limit: None if it may go ahead, else the seconds
    to wait. /assign's fast path calls it and leaves a limited request to DRF, which answers
    429 from the stored result, so a request is counted once."""
    if identity.rate_limit is None:
        return None  # unlimited keys pay nothing
    wait = ratelimit.rate_limit_wait(key_id=identity.id, limit=identity.rate_limit)
    setattr(request, RATE_WAIT_ATTR, wait)
    return wait


class ApiKeyRateThrottle(BaseThrottle):
    """429 `rate_limited` with Retry-After once a key is over its requests per second."""

    def allow_request(self, request: Request, view: object) -> bool:
        identity = request.auth
        if not isinstance(identity, ApiKeyIdentity):
            return True  # no key: the permission check has answered 401 already
        django_request = request._request
        if hasattr(django_request, RATE_WAIT_ATTR):
            self._wait = getattr(django_request, RATE_WAIT_ATTR)
        else:
            self._wait = over_rate_limit(identity, django_request)
        return self._wait is None

    def wait(self) -> float | None:
        return getattr(self, "_wait", None)


class ApiKeyAuthentication(BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[ApiKeyIdentity, ApiKeyIdentity] | None:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return None
        raw_key = bearer_key(header)
        if raw_key is None:
            raise exceptions.AuthenticationFailed("Use 'Authorization: Bearer <api key>'.")
        identity = key_identity(raw_key)
        if identity is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked API key.")
        # The audit log names the key as the actor of whatever this request changes.
        actor_set(Actor(ActorType.API_KEY, identity.name))
        return identity, identity

    def authenticate_header(self, request: Request) -> str:
        # Makes DRF answer 401 (not 403) when the key is missing or wrong.
        return 'Bearer realm="api"'


class HasScope(BasePermission):
    """Views declare `required_scopes = {"GET": "read", "POST": "write"}` (or one string)."""

    def has_permission(self, request: Request, view: object) -> bool:
        identity = request.auth
        if not isinstance(identity, ApiKeyIdentity):
            raise exceptions.NotAuthenticated(
                "An API key is required: 'Authorization: Bearer ...'."
            )
        required = getattr(view, "required_scopes", "all")
        scope = required if isinstance(required, str) else required.get(request.method, "all")
        if not identity.allows(scope):
            raise exceptions.PermissionDenied(f"This API key lacks the '{scope}' scope.")
        return True
