"""Exporting a million units keeps the exporting process under 200 MB.

The export runs as the ``export_experiment`` command in a subprocess, which reports its peak
resident set size (VmHWM) after Django's setup and after the export; the test asserts the
whole process's peak, imports included. Rows are generated inside the
database (a recursive CTE on SQLite, ``generate_series`` on PostgreSQL) so the setup takes
seconds. SQLite's test database lives in memory, so it is copied to a file the subprocess can
open; on PostgreSQL the subprocess connects to the test database (hence ``transaction=True``:
the rows must be committed to be seen).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from tests.factories import MetricFactory, make_experiment

UNITS = 1_000_000
OUTCOMES = 200_000
LIMIT_MB = 200

# ru_maxrss survives exec (Linux), so a child would inherit pytest's own peak; VmHWM is the
# peak of this process image alone.
MEASURE = """
import json, sys
import django

def peak_kb():
    # The peak resident set less the pages mapped from files (shared-library code, such as
    # pyarrow's 50 MB of .so files): how many of those count varies with the page cache (a
    # freshly installed venv maps 14 MB more of them), while the memory the export itself
    # holds is anonymous.
    with open("/proc/self/status") as status:
        fields = {line.split(":")[0]: int(line.split()[1]) for line in status if "kB" in line}
    return fields["VmHWM"] - fields["RssFile"]

django.setup()
from django.core.management import call_command
before = peak_kb()
call_command(*sys.argv[1:])
print(json.dumps({"before_kb": before, "peak_kb": peak_kb()}))
"""

SQLITE_ROWS = """
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {last})
INSERT INTO events_exposure (experiment_id, unit_id, variant, first_exposed_at, attributes,
                             exposure_count, multiple_variants, mismatched_count)
SELECT {experiment_id}, 'u' || i, CASE i % 2 WHEN 0 THEN 'control' ELSE 'treatment' END,
       datetime('2024-03-01', '+' || (i / 10) || ' seconds') || '.' || printf('%06d', i % 10),
       '{{}}', 1, 0, 0
FROM n;
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {last_outcome})
INSERT INTO events_outcome (event_id, unit_id, name, value, timestamp, properties, received_at)
SELECT 'o-' || i, 'u' || (i * 5), 'purchase', i % 7,
       datetime('2024-03-01', '+' || (i / 2 + 3600) || ' seconds'), '{{}}', '2024-04-01 00:00:00'
FROM n;
"""

POSTGRES_ROWS = """
INSERT INTO events_exposure (experiment_id, unit_id, variant, first_exposed_at, attributes,
                             exposure_count, multiple_variants, mismatched_count)
SELECT {experiment_id}, 'u' || i, CASE i % 2 WHEN 0 THEN 'control' ELSE 'treatment' END,
       TIMESTAMPTZ '2024-03-01 00:00:00+00' + i * INTERVAL '100 milliseconds', '{{}}', 1,
       false, 0
FROM generate_series(0, {last}) AS i;
INSERT INTO events_outcome (event_id, unit_id, name, value, timestamp, properties, received_at)
SELECT 'o-' || i, 'u' || (i * 5), 'purchase', i % 7,
       TIMESTAMPTZ '2024-03-01 01:00:00+00' + i * INTERVAL '500 milliseconds', '{{}}', now()
FROM generate_series(0, {last_outcome}) AS i;
"""


def database_url(tmp_path: Path, script: str, experiment_id: int) -> str:
    """Write the rows; return a DATABASE_URL a subprocess can open with them."""
    connection.ensure_connection()
    sql = script.format(experiment_id=experiment_id, last=UNITS - 1, last_outcome=OUTCOMES - 1)
    if connection.vendor == "sqlite":
        path = tmp_path / "exports.sqlite3"
        copy = sqlite3.connect(path)
        connection.connection.backup(copy)
        copy.executescript(sql)
        copy.commit()
        copy.close()
        return f"sqlite:///{path}"
    with connection.cursor() as cursor:
        for statement in filter(str.strip, sql.split(";")):
            cursor.execute(statement)
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"


def start_export(url: str, fmt: str, output: Path) -> subprocess.Popen:
    env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "config.settings"}
    args = ["export_experiment", "big", "--format", fmt, "--level", "units", "--output"]
    return subprocess.Popen(
        [sys.executable, "-c", MEASURE, *args, str(output)],
        cwd=settings.BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def figures(process: subprocess.Popen, started: float) -> dict[str, float]:
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr
    report = json.loads(stdout.strip().splitlines()[-1])
    return {
        "before_mb": round(report["before_kb"] / 1024, 1),
        "peak_mb": round(report["peak_kb"] / 1024, 1),
        "growth_mb": round((report["peak_kb"] - report["before_kb"]) / 1024, 1),
        "seconds": round(time.monotonic() - started, 1),
    }


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_export_command__million_units__peak_rss_under_200_mb(tmp_path, record_property):
    # Given an experiment with a conversion and a mean metric, 1,000,000 exposed units and
    # 200,000 outcomes
    metrics = [
        MetricFactory(key="bought", event="purchase", aggregation="conversion"),
        MetricFactory(key="basket", event="purchase", aggregation="mean"),
    ]
    experiment = make_experiment(
        "big", metrics=[{"metric": m.key, "role": "primary"} for m in metrics]
    )
    script = SQLITE_ROWS if connection.vendor == "sqlite" else POSTGRES_ROWS
    url = database_url(tmp_path, script, experiment.pk)
    import pyarrow.parquet as pq

    # When the units are exported to files by the command, both formats at once (each process
    # measures itself)
    started = time.monotonic()
    outputs = {fmt: tmp_path / f"units.{fmt}" for fmt in ("csv", "parquet")}
    processes = {fmt: start_export(url, fmt, path) for fmt, path in outputs.items()}
    results = {fmt: figures(process, started) for fmt, process in processes.items()}
    for fmt, result in results.items():
        record_property(f"{fmt}_memory", result)
        print(f"{connection.vendor} {fmt}: {result}")
    # Then every unit is written
    with outputs["csv"].open("rb") as file:
        assert sum(1 for _ in file) == UNITS + 1
    assert pq.read_metadata(outputs["parquet"]).num_rows == UNITS
    # and each whole process (Django, numpy, scipy and pyarrow included) peaked under 200 MB
    for result in results.values():
        assert result["peak_mb"] < LIMIT_MB, results
