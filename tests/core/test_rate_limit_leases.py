"""The rate limiter's leases (core/ratelimit.py) against a real Redis.

Each `LeasedWindows` stands for one web process. The window is given explicitly, so the tests
do not depend on the clock. Marked `integration`: they need the Redis of the production-mode
run (REDIS_URL).
"""

from __future__ import annotations

import secrets
import threading
from unittest import mock

import pytest
import redis
from django.conf import settings

from core import ratelimit
from core.ratelimit import LeasedWindows, lease_cap, lease_take

pytestmark = pytest.mark.integration

WINDOW = 1_800_000_000


@pytest.fixture
def client():
    connection = redis.Redis.from_url(settings.REDIS_URL)
    yield connection
    for name in connection.scan_iter(f"{ratelimit.KEY_PREFIX}:*"):
        connection.delete(name)


@pytest.fixture
def key_id() -> int:
    return secrets.randbelow(10**12) + 10**6  # never an id of a test database's keys


@pytest.fixture
def round_trips():
    with mock.patch.object(ratelimit, "lease_take", wraps=lease_take) as counted:
        yield counted


def test_lease_take__leases_past_the_limit__cut_at_the_limit(client, key_id) -> None:
    # Given a key limited to 10 requests per second
    # When leases of 4 are taken until the window is spent
    granted = [lease_take(client, key_id=key_id, window=WINDOW, size=4, limit=10) for _ in "abcd"]
    # Then the third is cut to what is left and the fourth gets nothing
    assert granted == [4, 4, 2, 0]
    # And the window's key expires by itself
    assert 0 < client.ttl(f"{ratelimit.KEY_PREFIX}:{key_id}:{WINDOW}") <= 2


@pytest.mark.parametrize("limit", [1, 5, 199])
def test_leases__small_limits__exact_across_processes(client, key_id, limit) -> None:
    # Given two processes and a limit small enough to lease one token at a time
    assert lease_cap(limit) == 1
    processes = [LeasedWindows(), LeasedWindows()]
    # When they take turns with 3 × limit requests
    allowed = [
        processes[i % 2].allow(client, key_id=key_id, limit=limit, window=WINDOW)
        for i in range(3 * limit)
    ]
    # Then exactly `limit` are served: no token is ever stranded
    assert sum(allowed) == limit


def test_leases__four_processes_many_threads__never_over_limit_bounded_early_refusal(
    client, key_id, round_trips
) -> None:
    # Given four processes of two threads each, and a key limited to 1,000 per second
    limit, per_thread = 1000, 400
    cap = lease_cap(limit)
    processes = [LeasedWindows() for _ in range(4)]
    served = [0] * 8

    def traffic(slot: int) -> None:
        process = processes[slot // 2]
        for _ in range(per_thread):
            served[slot] += process.allow(client, key_id=key_id, limit=limit, window=WINDOW)

    # When 3,200 requests arrive in one window
    threads = [threading.Thread(target=traffic, args=(slot,)) for slot in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Then never more than the limit is served, and at most P·(cap − 1) tokens were stranded
    assert limit - 4 * (cap - 1) <= sum(served) <= limit, sum(served)
    # And Redis was asked about once per `cap` requests, not once per request
    assert round_trips.call_count <= limit // cap + 4 * (cap.bit_length() + 2), round_trips
    # And once the window is spent, refusals cost no round trip
    before = round_trips.call_count
    assert not any(
        p.allow(client, key_id=key_id, limit=limit, window=WINDOW) for p in processes * 100
    )
    assert round_trips.call_count == before


def test_leases__next_window__served_again_lease_restarts_at_one(
    client, key_id, round_trips
) -> None:
    process = LeasedWindows()
    assert (
        sum(process.allow(client, key_id=key_id, limit=300, window=WINDOW) for _ in range(400))
        == 300
    )
    # The next window starts afresh, with a lease of one token
    assert process.allow(client, key_id=key_id, limit=300, window=WINDOW + 1)
    assert round_trips.call_args.kwargs["size"] == 1
    assert int(client.get(f"{ratelimit.KEY_PREFIX}:{key_id}:{WINDOW + 1}")) == 1


def test_leases__quiet_process__leases_no_more_than_it_uses(client, key_id) -> None:
    # Given a busy process and a quiet one sharing a key limited to 10,000 per second
    busy, quiet = LeasedWindows(), LeasedWindows()
    # When the quiet one serves 3 requests in the window
    for _ in range(3):
        assert quiet.allow(client, key_id=key_id, limit=10_000, window=WINDOW)
    # Then it leased 1 + 2 tokens, and the busy one can still have all the rest
    name = f"{ratelimit.KEY_PREFIX}:{key_id}:{WINDOW}"
    assert int(client.get(name)) == 3
    served = sum(
        busy.allow(client, key_id=key_id, limit=10_000, window=WINDOW) for _ in range(10_500)
    )
    assert served == 10_000 - 3


def test_leases__redis_down__let_through_and_not_asked_again_for_a_second(
    key_id, round_trips
) -> None:
    # Given a Redis that refuses connections
    down = redis.Redis(port=1, socket_connect_timeout=0.25)
    process = LeasedWindows()
    # When a limited key sends 50 requests
    allowed = [process.allow(down, key_id=key_id, limit=1, window=WINDOW) for _ in range(50)]
    # Then all are let through (fail open) and only the first tried Redis
    assert all(allowed)
    assert round_trips.call_count == 1
