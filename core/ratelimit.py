"""Per-API-key rate limits in requests per second (docs/api.md §11).

A fixed one-second window per key, counted in Redis so that every web process shares it. A
process does not ask Redis on every request: it leases tokens in batches and spends them from
memory.

- **Leases.** ``INCRBY variantlab:rate:<key>:<window> k`` (and ``EXPIRE``, one round trip)
  asks for ``k`` of the window's tokens. Redis orders the increments, so a lease that starts at
  count ``c`` gets ``min(k, N - c)`` tokens (none past the limit ``N``): **in any window at most
  N requests of a key are served across all processes, exactly as with one INCR per request.**
- **Lease size.** Within each window a process asks for 1 token, then 2, 4, … up to
  ``lease_cap(N) = max(1, N // 100)``, so a busy key pays one round trip per ``cap`` requests
  and a quiet one leases no more than it uses. Keys limited to fewer than 200 requests per
  second lease one token at a time (exact, as before).
- **The price: early refusals.** Tokens a process leased but did not spend before the window
  ended are lost. A process holds at most ``cap - 1`` unspent tokens (and never more than it
  has spent in the window, plus one), so with P web processes a key can be refused after
  ``N - P·(cap - 1)`` requests in a window, i.e. at worst P % of its limit early (2 gunicorn
  workers: 2 %). It is never served more than N.
- **Once a window is spent** (a lease came back short), the process refuses the key's further
  requests in that window from memory: a runaway client costs no Redis round trips.

A fixed window lets a burst of up to 2N through across a window boundary; a sliding log would
need a sorted set per key and more work per request, for a limit whose purpose is to stop a
runaway client, not to meter precisely.

If Redis does not answer, requests are let through (a broken limiter must not take /assign
down with it; the config cache makes the same choice), and the process does not try Redis again
for ``REDIS_RETRY_SECONDS``, so an outage does not add a timeout to every request. Without
Redis (the embedded demo) each process counts for itself, exactly.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass
from functools import cache

import redis
from django.conf import settings

logger = logging.getLogger(__name__)

KEY_PREFIX = "variantlab:rate"
# Each lease takes at most this share of a key's per-second limit (see the module docstring).
LEASE_SHARE = 100
REDIS_RETRY_SECONDS = 1.0


@cache
def _redis(url: str) -> redis.Redis:
    # Short timeouts: this sits on the request path of /assign.
    return redis.Redis.from_url(url, socket_timeout=0.25, socket_connect_timeout=0.25)


def lease_cap(limit: int) -> int:
    """The largest lease of a key limited to `limit` requests per second."""
    return max(1, limit // LEASE_SHARE)


def lease_take(client: redis.Redis, *, key_id: int, window: int, size: int, limit: int) -> int:
    """Take up to `size` of the window's tokens from Redis; how many were granted (0: spent)."""
    name = f"{KEY_PREFIX}:{key_id}:{window}"
    pipe = client.pipeline(transaction=False)
    pipe.incrby(name, size)
    pipe.expire(name, 2)  # the window is over after a second; keep no history
    count, _ = pipe.execute()
    before = int(count) - size
    return max(0, min(size, limit - before))


@dataclass(slots=True)
class _Lease:
    window: int
    tokens: int = 0  # leased and not yet spent in this window
    next_size: int = 1
    spent: bool = False  # the window's tokens are all handed out: refuse without asking


class LeasedWindows:
    """One process's allowances, leased from Redis (the module docstring has the rules)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._leases: dict[int, _Lease] = {}
        self._redis_down_until = 0.0

    def allow(self, client: redis.Redis, *, key_id: int, limit: int, window: int) -> bool:
        """Whether one more request of the key may go ahead in `window`."""
        with self._lock:
            lease = self._leases.get(key_id)
            if lease is None or lease.window != window:
                lease = self._leases[key_id] = _Lease(window)
            if lease.tokens > 0:
                lease.tokens -= 1
                return True
            if lease.spent:
                return False
            if time.monotonic() < self._redis_down_until:
                return True  # failing open without a round trip while Redis is down
            size = min(lease.next_size, lease_cap(limit))
            lease.next_size = size * 2
        # The round trip happens outside the lock: other threads spend their tokens meanwhile.
        try:
            granted = lease_take(client, key_id=key_id, window=window, size=size, limit=limit)
        except redis.RedisError:
            with self._lock:
                self._redis_down_until = time.monotonic() + REDIS_RETRY_SECONDS
            logger.warning(
                "rate_limit.unavailable key=%s; requests let through for %.0f s",
                key_id,
                REDIS_RETRY_SECONDS,
            )
            return True
        with self._lock:
            lease = self._leases.get(key_id)
            if lease is not None and lease.window == window:
                if granted < size:
                    lease.spent = True
                if granted > 1:
                    lease.tokens += granted - 1
        return granted > 0


class LocalWindows:
    """The per-process counter without Redis: one (window, count) pair per key, under a lock."""

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
leased_windows = LeasedWindows()


def _allowed(key_id: int, limit: int, window: int) -> bool:
    if not settings.REDIS_URL:
        return local_windows.hit(key_id, window) <= limit
    return leased_windows.allow(
        _redis(settings.REDIS_URL), key_id=key_id, limit=limit, window=window
    )


def rate_limit_wait(*, key_id: int, limit: int | None, now: float | None = None) -> int | None:
    """None when the request may go ahead; else the seconds to wait (Retry-After, >= 1)."""
    if not limit:
        return None
    now = time.time() if now is None else now
    window = math.floor(now)
    try:
        if _allowed(key_id, limit, window):
            return None
    except redis.RedisError:  # e.g. a bad REDIS_URL: fail open, as when Redis is down
        logger.warning("rate_limit.unavailable key=%s; request let through", key_id)
        return None
    # The window ends within a second; Retry-After is whole seconds, so at least 1.
    return max(1, math.ceil(window + 1 - now))


def rate_limits_reset() -> None:
    """Forget this process's leases and counts (tests; a key's limit changed)."""
    global leased_windows
    local_windows._counts.clear()
    leased_windows = LeasedWindows()
