"""Benchmark: server time of the admin results page with 200 snapshots × 10 metrics.

Creates its own PostgreSQL database (dropped first, dropped again at the end unless --keep),
migrates it, seeds one running experiment with `--snapshots` finished snapshots of `--metrics`
metrics each (Snapshot rows with full §8 results JSON plus their SnapshotComparison rows,
written directly with bulk inserts by `tests.analysis.dashboard.seeding`) and nine more analysed
experiments for the overview. Then it times, in-process with Django's test Client logged in as
a superuser, the results page, the dashboard overview and, as the baseline in the same run, the
plain admin changelist of experiments: warm-up requests first, then `--repeat` requests each,
interleaved. It prints the median, p95 and the queries per request.

    .venv/bin/python benchmarks/results.py                 # 200 snapshots × 10 metrics
    .venv/bin/python benchmarks/results.py --repeat 50     # quicker

Not run in CI. Needs PostgreSQL (``--server``, default postgres@127.0.0.1:5432).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_MS = 300.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--snapshots", type=int, default=200)
    parser.add_argument("--metrics", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=200, help="timed requests per page")
    parser.add_argument("--server", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--database", default="variantlab_bench_results")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()

    import psycopg

    def admin_sql(statement: str) -> None:
        with psycopg.connect(f"{args.server}/postgres", autocommit=True) as conn:
            conn.execute(statement)

    admin_sql(f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
    admin_sql(f'CREATE DATABASE "{args.database}"')
    os.environ["DATABASE_URL"] = f"{args.server}/{args.database}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    sys.path.insert(0, str(ROOT))
    try:
        run(args)
    finally:
        from django.db import connections

        connections.close_all()
        if not args.keep:
            admin_sql(f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')


def run(args: argparse.Namespace) -> None:
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse

    from tests.analysis.dashboard.seeding import seed_history
    from tests.factories import make_experiment

    started = time.perf_counter()
    call_command("migrate", verbosity=0)
    experiment = make_experiment("bench", name="Benchmark experiment")
    seed_history(experiment, snapshots=args.snapshots, metrics=args.metrics)
    for i in range(9):  # the overview and the changelist list ten experiments
        seed_history(make_experiment(f"other-{i}"), snapshots=5, metrics=args.metrics)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    print(f"migrated and seeded in {time.perf_counter() - started:.1f}s", flush=True)

    user = get_user_model().objects.create_superuser("bench", "bench@example.com", "x")
    client = Client()
    client.force_login(user)
    pages = {
        "baseline: admin changelist of experiments": reverse(
            "admin:experiments_experiment_changelist"
        ),
        "dashboard overview (10 experiments)": reverse("admin:experiments_experiment_dashboard"),
        f"results page ({args.snapshots} snapshots × {args.metrics} metrics)": reverse(
            "admin:experiments_experiment_results", args=[experiment.pk]
        ),
    }
    queries = {}
    for name, url in pages.items():
        for _ in range(10):
            assert client.get(url).status_code == 200, url
        with CaptureQueriesContext(connection) as captured:
            client.get(url)
        queries[name] = len(captured)
    timings: dict[str, list[float]] = {name: [] for name in pages}
    for _ in range(args.repeat):
        for name, url in pages.items():
            t0 = time.perf_counter()
            response = client.get(url)
            timings[name].append((time.perf_counter() - t0) * 1000)
            assert response.status_code == 200

    print(f"\n{args.repeat} requests per page, PostgreSQL, in-process test Client\n")
    print("| page | median ms | p95 ms | queries |")
    print("|---|---:|---:|---:|")
    for name, values in timings.items():
        values.sort()
        p95 = values[min(len(values) - 1, round(0.95 * (len(values) - 1)))]
        print(f"| {name} | {statistics.median(values):.1f} | {p95:.1f} | {queries[name]} |")
    results_name = list(pages)[-1]
    median = statistics.median(timings[results_name])
    verdict = "met" if median < TARGET_MS else "MISSED"
    print(f"\ntarget < {TARGET_MS:.0f} ms for the results page: {verdict} ({median:.1f} ms)")


if __name__ == "__main__":
    main()
