"""The collection markers of tests/markers.py: `unit` only for tests that need no database
and no process, so that `make test-unit` (an unreachable PostgreSQL, no broker) can run them."""

from __future__ import annotations

import pytest

from tests.markers import kind_markers


@pytest.mark.parametrize(
    ("markers", "fixtures", "expected"),
    [
        # Pure code: no marks, only ordinary fixtures
        ([], ["monkeypatch", "tmp_path"], ("unit",)),
        ([], [], ("unit",)),
        # The django_db mark (module pytestmark or on the test)
        (["django_db"], [], ("db",)),
        (["django_db", "parametrize"], ["settings"], ("db",)),
        # A database fixture in the closure, requested directly or through another fixture
        ([], ["db"], ("db",)),
        ([], ["admin_client", "admin_user", "django_user_model", "db"], ("db",)),
        ([], ["transactional_db"], ("db",)),
        ([], ["django_db_reset_sequences"], ("db",)),
        # live_server asks for transactional_db at run time, not in its closure
        ([], ["live_server"], ("db",)),
        # Real processes or Chromium are never unit, with or without the database
        (["integration"], ["tmp_path"], ()),
        (["browser"], [], ()),
        (["integration"], ["db"], ("db",)),
        # Marked db by hand (reads what database tests left): kept, never unit
        (["db"], [], ()),
    ],
)
def test_kind_markers__marks_and_fixtures__unit_only_without_database_or_process(
    markers: list[str], fixtures: list[str], expected: tuple[str, ...]
) -> None:
    assert kind_markers(markers, fixtures) == expected


def test_kind_markers__this_test__is_unit(request: pytest.FixtureRequest) -> None:
    # The hook in tests/conftest.py applied the marker to this very test at collection
    assert request.node.get_closest_marker("unit") is not None
    assert request.node.get_closest_marker("db") is None


@pytest.mark.django_db
def test_kind_markers__django_db_test__is_db_not_unit(request: pytest.FixtureRequest) -> None:
    assert request.node.get_closest_marker("db") is not None
    assert request.node.get_closest_marker("unit") is None
