"""What each test needs to run, as a marker added at collection (tests/conftest.py).

- `unit`: no database, no server process: runs with no DATABASE_URL that answers and no broker
  (`make test-unit` proves it against an unreachable PostgreSQL);
- `db`: opens the test database (the `django_db` mark, or a fixture that needs it), or is
  marked `db` by hand because it reads what database tests left (tests/core/test_api_fuzz.py);
- `integration` and `browser` (set by the tests themselves): real processes or Chromium.
"""

from __future__ import annotations

from collections.abc import Iterable

# pytest-django's fixtures that open the test database. `live_server` asks for
# `transactional_db` at run time (not in the static fixture closure), so it is listed itself;
# fixtures built on these (`admin_client`, `make_api_client`, ...) have them in their closure.
DATABASE_FIXTURES = frozenset(
    {
        "db",
        "transactional_db",
        "django_db_reset_sequences",
        "django_db_serialized_rollback",
        "live_server",
    }
)
PROCESS_MARKERS = frozenset({"integration", "browser"})


def needs_database(marker_names: Iterable[str], fixture_names: Iterable[str]) -> bool:
    markers = set(marker_names)
    return bool(markers & {"django_db", "db"}) or not DATABASE_FIXTURES.isdisjoint(fixture_names)


def kind_markers(marker_names: Iterable[str], fixture_names: Iterable[str]) -> tuple[str, ...]:
    """The markers to add to a test with these markers and this fixture closure."""
    markers = set(marker_names)
    if needs_database(markers, fixture_names):
        return () if "db" in markers else ("db",)
    if markers & PROCESS_MARKERS:
        return ()
    return ("unit",)
