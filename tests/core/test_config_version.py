"""The versioned cache keeps working when Redis, which holds the version stamp, is down."""

from __future__ import annotations

import pytest

from core import config_version
from core.config_version import VersionedCache

pytestmark = pytest.mark.django_db


@pytest.fixture
def redis_down(settings):
    # Nothing listens on port 1: every Redis call is refused at once.
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    config_version._redis.cache_clear()
    yield
    config_version._redis.cache_clear()


def test_versioned_cache__cold_process_while_redis_down__loads_from_database(redis_down) -> None:
    # Given a process with nothing cached yet and Redis refusing connections
    loads = []
    cache = VersionedCache(lambda: loads.append(1) or {"loaded": len(loads)})
    # When it is first read
    value = cache.get()
    # Then the value comes from the loader (the database) rather than an error
    assert value == {"loaded": 1}


def test_versioned_cache__warm_while_redis_down__serves_cached_value(redis_down) -> None:
    loads = []
    cache = VersionedCache(lambda: loads.append(1) or len(loads))
    assert cache.get() == 1
    cache._next_check = 0.0  # due for a check now
    assert cache.get() == 1
    assert len(loads) == 1
