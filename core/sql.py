"""SQL dialect helpers for the raw queries that run on both PostgreSQL and SQLite.

The embedded mode (no DATABASE_URL) runs on SQLite, production on PostgreSQL; the hand-written
queries (event ingest, the metric aggregation) differ between them in a few spellings only,
which live here so each query names what it needs rather than testing the vendor itself.
"""

from __future__ import annotations

POSTGRESQL = "postgresql"


def shifted(column: str, hours_param: str, vendor: str) -> str:
    """SQL for the timestamp `column` moved by a number of hours, given as a named parameter."""
    if vendor == POSTGRESQL:
        return f"({column} + make_interval(hours => %({hours_param})s))"
    # SQLite: shift the whole seconds, then put the original '.ffffff' (or '') back. Taking
    # the fraction out first avoids SQLite rounding it to milliseconds (possibly up a second).
    return (
        f"(datetime(substr({column}, 1, 19), %({hours_param})s || ' hours')"
        f" || substr({column}, 20))"
    )


def least(vendor: str) -> str:
    """The smallest-of-the-arguments function: LEAST on PostgreSQL, scalar MIN on SQLite."""
    return "LEAST" if vendor == POSTGRESQL else "MIN"


def jsonb_cast(vendor: str) -> str:
    """The cast that makes a text parameter JSON: `::jsonb` on PostgreSQL, none on SQLite."""
    return "::jsonb" if vendor == POSTGRESQL else ""
