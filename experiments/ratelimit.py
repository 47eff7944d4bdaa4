"""Per-API-key rate limits in requests per second (docs/api.md §11).

A fixed one-second window per key. With REDIS_URL the count lives in Redis, so every web
process shares it: one round trip per request of a limited key (INCR and EXPIRE in one
pipeline), none for keys without a limit, which is most /assign traffic. Without Redis
(the embedded demo) each process counts for itself.

A fixed window lets a burst of up to 2N through across a window boundary; a sliding log
would need a sorted set per key and more work per request on the hot path, for a limit
whose purpose is to stop a runaway client, not to meter precisely.

If Redis does not answer, requests are let through: a broken limiter must not take /assign
down with it (the config cache makes the same choice).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from functools import cache

import redis
from django.conf import settings

logger = logging.getLogger(__name__)

KEY_PREFIX = "variantlab:rate"


@cache
def _redis(url: str) -> redis.Redis:
    # Short timeouts: this sits on the request path of /assign.
    return redis.Redis.from_url(url, socket_timeout=0.25, socket_connect_timeout=0.25)


class LocalWindows:
    """The per-process fallback: one (window, count) pair per key, under a lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[int, tuple[int, int]] = {}

    def hit(self, key_id: int, window: int) -> int:
        with self._lock:
            seen_window, count = self._counts.get(key_id, (window, 0))
            count = count + 1 if seen_window == window else 1
            self._counts[key_id] = (window, count)
            return count


local_windows = LocalWindows()


def _hits(key_id: int, window: int) -> int:
    """Requests of this key in this window, this one included."""
    if not settings.REDIS_URL:
        return local_windows.hit(key_id, window)
    pipe = _redis(settings.REDIS_URL).pipeline(transaction=False)
    name = f"{KEY_PREFIX}:{key_id}:{window}"
    pipe.incr(name)
    pipe.expire(name, 2)  # the window is over after a second; keep no history
    count, _ = pipe.execute()
    return int(count)


def rate_limit_wait(*, key_id: int, limit: int | None, now: float | None = None) -> int | None:
    """None when the request may go ahead; else the seconds to wait (Retry-After, >= 1)."""
    if not limit:
        return None
    now = time.time() if now is None else now
    window = math.floor(now)
    try:
        hits = _hits(key_id, window)
    except redis.RedisError:
        logger.warning("rate_limit.unavailable key=%s; request let through", key_id)
        return None
    if hits <= limit:
        return None
    # The window ends within a second; Retry-After is whole seconds, so at least 1.
    return max(1, math.ceil(window + 1 - now))
