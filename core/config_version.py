"""The configuration version stamp and the per-process caches that follow it.

Every change to an experiment, variant, layer, forced assignment or API key bumps one number.
Each web process keeps what the hot path needs in memory and looks at the number at most once
per `VARIANTLAB_CONFIG_POLL_SECONDS`, so requests in between touch neither the database nor
Redis, and an admin change reaches every process within about a second.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from functools import cache
from typing import Generic, TypeVar

import redis
from django.conf import settings
from django.db import transaction
from django.db.models import F

from core.models import ConfigVersion

logger = logging.getLogger(__name__)

REDIS_KEY = "variantlab:config_version"
T = TypeVar("T")


@cache
def _redis() -> redis.Redis | None:
    if not settings.REDIS_URL:
        return None
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=0.5, socket_connect_timeout=0.5)


def config_version_read() -> int:
    client = _redis()
    if client is not None:
        return int(client.get(REDIS_KEY) or 0)
    row = ConfigVersion.objects.filter(pk=1).values_list("version", flat=True).first()
    return row or 0


def config_version_bump() -> None:
    """Bump the stamp once the current transaction commits, so readers see the new rows."""
    transaction.on_commit(_bump_now)


def _bump_now() -> None:
    # The database row moves too, so a Redis flush cannot leave processes on a stale number.
    updated = ConfigVersion.objects.filter(pk=1).update(version=F("version") + 1)
    if not updated:
        ConfigVersion.objects.get_or_create(pk=1, defaults={"version": 1})
    client = _redis()
    if client is not None:
        try:
            client.incr(REDIS_KEY)
        except redis.RedisError:
            logger.exception("config_version.bump_failed")


class VersionedCache(Generic[T]):
    """A value loaded from the database and reloaded when the version stamp moves."""

    def __init__(self, loader: Callable[[], T]) -> None:
        self._loader = loader
        self._lock = threading.Lock()
        self._value: T | None = None
        self._version: int | None = None
        self._next_check = 0.0

    def get(self) -> T:
        if self._value is not None and time.monotonic() < self._next_check:
            return self._value
        with self._lock:
            now = time.monotonic()
            if self._value is None or now >= self._next_check:
                self._refresh(now)
        assert self._value is not None
        return self._value

    def _refresh(self, now: float) -> None:
        try:
            version = config_version_read()
        except redis.RedisError:
            if self._value is None:
                # A process that starts while Redis is down: the database holds the truth (the
                # stamp only says when to re-read it), and an unknown version makes the first
                # check after Redis returns load it again.
                logger.warning("config_version.read_failed; loading from the database")
                self._value, self._version = self._loader(), None
            else:
                # Keep serving the last good config: assignment must not fail because Redis
                # blinked.
                logger.warning("config_version.read_failed; serving cached config")
            self._next_check = now + settings.VARIANTLAB_CONFIG_POLL_SECONDS
            return
        if version != self._version or self._value is None:
            # Read the version before loading: a change in between only causes one more reload.
            self._value = self._loader()
            self._version = version
        self._next_check = now + settings.VARIANTLAB_CONFIG_POLL_SECONDS

    def invalidate(self) -> None:
        with self._lock:
            self._value, self._version, self._next_check = None, None, 0.0
