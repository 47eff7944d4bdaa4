"""The statistics engine is pure: its tests need no database, Django app or cache.

The project-wide autouse fixtures reset assignment and API-key caches (importing those apps);
they are overridden here with no-ops so these tests depend on nothing but ``analysis.stats``.
They also run without Django: ``python -m pytest tests/analysis/stats -p no:django``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _celery_mode() -> Iterator[None]:
    yield


@pytest.fixture(autouse=True)
def _fresh_caches() -> Iterator[None]:
    yield
