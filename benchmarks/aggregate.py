"""Benchmark: SQL sufficient statistics (`analysis.selectors.metric_variant_stats`) on PostgreSQL.

Creates its own database (dropped and recreated), runs the migrations there, loads exposures and
outcomes with COPY, ANALYZEs, then times the selector for a conversion metric, a sum metric
with CUPED and a p95 (quantile) metric against a hand-written minimal GROUP BY over the same rows
(exposures joined to the metric's outcomes at or after exposure, grouped by variant: count, Σ,
Σ²) and against the same join reading the 14-day lookback too (still no per-unit values),
interleaved: every query once per round, several rounds. It prints the medians, their ratio to
the bare GROUP BY and the process's peak RSS before and after the timed calls (the load runs in
a child process so it does not inflate the figure).

    .venv/bin/python benchmarks/aggregate.py                      # 1M units, 10M outcomes
    .venv/bin/python benchmarks/aggregate.py --units 20000 --outcomes 200000  # smoke run
    .venv/bin/python benchmarks/aggregate.py --reuse              # time the existing load
    .venv/bin/python benchmarks/aggregate.py --reuse --snapshot   # full snapshot, 5 metrics
    .venv/bin/python benchmarks/aggregate.py --unrelated --units 100000 --outcomes 1000000

With ``--unrelated`` it loads two databases from the same seed, ``<database>`` and
``<database>_unrelated``; the second also holds ``--unrelated-factor`` (10) times the outcomes
in rows this experiment must not count: other event names at any time, the experiment's own
event names long before its start (the units' history), and another experiment's units and
events (exposed before this one started). It then times the 5-metric snapshot on each,
alternating (one child process per timed snapshot, after a warm-up of each), and prints the
medians and their ratio.

With ``--snapshot`` it times `analysis.services.snapshot_compute_now` of the experiment with five
metrics attached (conversion, count, sum + CUPED, mean, ratio; created if missing, over the
loaded event names) against the sum of the minimal GROUP BY over each metric's events, the two
interleaved in every repetition. Each snapshot stores a new Snapshot row (sequential looks fold).

Not run in CI. Needs PostgreSQL (``--server``, default postgres@127.0.0.1:5432).
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EVENT, DENOMINATOR, OTHER = "purchase", "session", "click"
NAME_SHARES = {EVENT: 0.5, DENOMINATOR: 0.3, OTHER: 0.2}
DAY_US = 86_400 * 1_000_000
CHUNK = 1_000_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--units", type=int, default=1_000_000, help="exposed units")
    parser.add_argument("--outcomes", type=int, default=10_000_000, help="outcome rows")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs of each query")
    parser.add_argument("--server", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--database", default="variantlab_bench")
    parser.add_argument("--reuse", action="store_true", help="skip the load; time what is there")
    parser.add_argument(
        "--snapshot", action="store_true", help="time a full 5-metric snapshot instead"
    )
    parser.add_argument(
        "--unrelated", action="store_true", help="snapshot time with and without unrelated rows"
    )
    parser.add_argument(
        "--unrelated-factor", type=int, default=10, help="unrelated rows per loaded outcome"
    )
    parser.add_argument("--load-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--with-unrelated", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--snapshot-once", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    os.environ["DATABASE_URL"] = f"{args.server}/{args.database}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    # Production settings refuse the development key; this throwaway database needs no secret.
    os.environ.setdefault("DJANGO_SECRET_KEY", "benchmark-only-" + "k" * 40)
    sys.path.insert(0, str(ROOT))
    if args.load_only:
        load(args)
        return
    if args.snapshot_once:
        snapshot_once()
        return
    if args.unrelated:
        measure_unrelated(args)
        return
    if not args.reuse:
        # A child process loads, so this process's peak RSS reflects only the timed queries.
        subprocess.run([sys.executable, __file__, *sys.argv[1:], "--load-only"], check=True)
    if args.snapshot:
        measure_snapshot(args)
    else:
        measure(args)


def load(args: argparse.Namespace) -> None:
    import psycopg

    started = time.perf_counter()
    with psycopg.connect(f"{args.server}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{args.database}"')

    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    experiment, _ = setup_experiment()
    print(f"migrated in {time.perf_counter() - started:.1f}s", flush=True)

    import numpy as np

    rng = np.random.default_rng(args.seed)
    start = np.datetime64("2024-03-01T00:00:00", "us")
    t0 = start + rng.integers(0, 10 * DAY_US, size=args.units).astype("timedelta64[us]")
    variants = np.where(rng.random(args.units) < 0.5, "control", "treatment")
    unit_ids = np.char.add("u", np.arange(args.units).astype(str))

    with connection.cursor() as cursor:
        raw = cursor.connection  # the psycopg connection under Django's wrapper
        index_sql = drop_indexes(cursor, "events_outcome")
        started = time.perf_counter()
        copy_exposures(raw, experiment.pk, unit_ids, variants, t0)
        copy_outcomes(raw, rng, args.outcomes, unit_ids, t0)
        if args.with_unrelated:
            # Drawn after the experiment's rows, so those are the same as without them.
            copy_unrelated(raw, rng, args.unrelated_factor * args.outcomes, unit_ids, start)
        print(f"copied in {time.perf_counter() - started:.1f}s", flush=True)
        started = time.perf_counter()
        for statement in index_sql:
            cursor.execute(statement)
        cursor.execute("ANALYZE")
        print(f"indexed and analysed in {time.perf_counter() - started:.1f}s", flush=True)


def setup_experiment():
    from experiments.models import Metric
    from experiments.services import experiment_save, experiment_start

    arms = [
        {"key": "control", "weight": 0.5, "is_control": True},
        {"key": "treatment", "weight": 0.5},
    ]
    experiment = experiment_save(data={"key": "bench", "name": "Bench", "variants": arms})
    experiment = experiment_start(experiment=experiment)
    metrics = {
        "conversion": Metric.objects.create(
            key="bench-conversion", event=EVENT, aggregation="conversion", cuped_lookback_days=0
        ),
        "sum_cuped": Metric.objects.create(
            key="bench-sum", event=EVENT, aggregation="sum", cuped_lookback_days=14
        ),
    }
    return experiment, metrics


def drop_indexes(cursor, table: str) -> list[str]:
    """Drop the table's secondary indexes (rebuilt after the load, as pg_restore does)."""
    cursor.execute(
        "SELECT i.indexname, i.indexdef FROM pg_indexes i"
        " LEFT JOIN pg_constraint c ON c.conname = i.indexname"
        " WHERE i.tablename = %s AND c.conname IS NULL",
        [table],
    )
    rows = cursor.fetchall()
    for name, _ in rows:
        cursor.execute(f'DROP INDEX "{name}"')
    return [definition for _, definition in rows]


def copy_exposures(raw, experiment_id, unit_ids, variants, t0) -> None:
    import numpy as np
    import pandas as pd

    frame = pd.DataFrame(
        {
            "experiment_id": experiment_id,
            "unit_id": unit_ids,
            "variant": variants,
            "first_exposed_at": np.datetime_as_string(t0, unit="us"),
            "attributes": "{}",
            "exposure_count": 1,
            "multiple_variants": "f",
            "mismatched_count": 0,
        }
    )
    copy_frame(raw, "events_exposure", frame)


def copy_outcomes(raw, rng, total: int, unit_ids, t0) -> None:
    import numpy as np
    import pandas as pd

    names = np.array(list(NAME_SHARES))
    shares = np.array(list(NAME_SHARES.values()))
    received = "2024-04-01 00:00:00"
    for first in range(0, total, CHUNK):
        size = min(CHUNK, total - first)
        unit = rng.integers(0, len(unit_ids), size=size)
        # Events from 14 days before exposure to 20 days after: ~60% count after exposure.
        offset = rng.integers(-14 * DAY_US, 20 * DAY_US, size=size).astype("timedelta64[us]")
        frame = pd.DataFrame(
            {
                "event_id": np.char.add("o", np.arange(first, first + size).astype(str)),
                "unit_id": unit_ids[unit],
                "name": names[rng.choice(len(names), size=size, p=shares)],
                "value": np.round(rng.lognormal(2.0, 1.0, size=size), 2),
                "timestamp": np.datetime_as_string(t0[unit] + offset, unit="us"),
                "properties": "{}",
                "received_at": received,
            }
        )
        copy_frame(raw, "events_outcome", frame)
        print(f"  outcomes {first + size:,}/{total:,}", flush=True)


UNRELATED_NAMES = ["pageview", "scroll", "search", "add_to_cart", "video_play"]


def copy_unrelated(raw, rng, total: int, unit_ids, start) -> None:
    """Rows the experiment must not count, in three equal parts: other event names at any
    time (its units and others); its own event names 30 to 120 days before its first exposure
    (its units' history); and another, earlier experiment: as many units again, exposed 60
    days before this one started, with events of every name around their exposure."""
    import numpy as np
    import pandas as pd

    from experiments.services import experiment_save

    arms = [{"key": "control", "weight": 0.5, "is_control": True}, {"key": "b", "weight": 0.5}]
    earlier = experiment_save(data={"key": "earlier", "name": "Earlier", "variants": arms})
    earlier_start = start - np.timedelta64(60, "D")
    other_ids = np.char.add("x", np.arange(len(unit_ids)).astype(str))
    other_t0 = earlier_start + rng.integers(0, 10 * DAY_US, size=len(other_ids)).astype(
        "timedelta64[us]"
    )
    other_variants = np.where(rng.random(len(other_ids)) < 0.5, "control", "b")
    copy_exposures(raw, earlier.pk, other_ids, other_variants, other_t0)
    names = np.array(list(NAME_SHARES) + UNRELATED_NAMES)
    own = np.array(list(NAME_SHARES))
    others = np.array(UNRELATED_NAMES)
    received = "2024-04-01 00:00:00"
    for first in range(0, total, CHUNK):
        size = min(CHUNK, total - first)
        part = np.arange(first, first + size) % 3
        # 0: other names, this experiment's units or the earlier one's, 150 days around.
        unit = np.where(
            rng.random(size) < 0.5,
            unit_ids[rng.integers(0, len(unit_ids), size=size)],
            other_ids[rng.integers(0, len(other_ids), size=size)],
        )
        when = start + rng.integers(-120 * DAY_US, 30 * DAY_US, size=size).astype(
            "timedelta64[us]"
        )
        name = others[rng.integers(0, len(others), size=size)]
        # 1: this experiment's event names, its units, 30 to 120 days before its start.
        history = part == 1
        unit[history] = unit_ids[rng.integers(0, len(unit_ids), size=int(history.sum()))]
        when[history] = start - rng.integers(
            30 * DAY_US, 120 * DAY_US, size=int(history.sum())
        ).astype("timedelta64[us]")
        name[history] = own[rng.integers(0, len(own), size=int(history.sum()))]
        # 2: the earlier experiment's units, every name, 14 days either side of exposure.
        theirs = part == 2
        pick = rng.integers(0, len(other_ids), size=int(theirs.sum()))
        unit[theirs] = other_ids[pick]
        when[theirs] = other_t0[pick] + rng.integers(
            -14 * DAY_US, 14 * DAY_US, size=int(theirs.sum())
        ).astype("timedelta64[us]")
        name[theirs] = names[rng.integers(0, len(names), size=int(theirs.sum()))]
        frame = pd.DataFrame(
            {
                "event_id": np.char.add("n", np.arange(first, first + size).astype(str)),
                "unit_id": unit,
                "name": name,
                "value": np.round(rng.lognormal(2.0, 1.0, size=size), 2),
                "timestamp": np.datetime_as_string(when, unit="us"),
                "properties": "{}",
                "received_at": received,
            }
        )
        copy_frame(raw, "events_outcome", frame)
        print(f"  unrelated {first + size:,}/{total:,}", flush=True)


def copy_frame(raw, table: str, frame) -> None:
    buffer = io.StringIO()
    # Timestamps are written without an offset: the session below reads them as UTC.
    frame.to_csv(buffer, sep="\t", header=False, index=False)
    columns = ", ".join(frame.columns)
    with raw.cursor() as cursor:
        cursor.execute("SET TIME ZONE 'UTC'")
        with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
            copy.write(buffer.getvalue())
    raw.commit()


# Exposures joined to the metric's outcomes at or after exposure, grouped by variant: the least
# any correct query must do. It computes no per-unit values, so it is a lower bound.
BASELINE = """
    SELECT e.variant, COUNT(*), SUM(o.value), SUM(o.value * o.value)
    FROM events_exposure e
    JOIN events_outcome o
      ON o.unit_id = e.unit_id AND o.name = %s AND o.timestamp >= e.first_exposed_at
    WHERE e.experiment_id = %s AND NOT e.multiple_variants
    GROUP BY e.variant
"""


# The same join reading the CUPED lookback too (as the sum + CUPED selector must), still without
# per-unit values: what is left of the selector's time above it is the per-unit step.
LOOKBACK_JOIN = """
    SELECT e.variant, COUNT(*),
           SUM(CASE WHEN o.timestamp >= e.first_exposed_at THEN o.value ELSE 0 END),
           SUM(CASE WHEN o.timestamp < e.first_exposed_at THEN o.value ELSE 0 END)
    FROM events_exposure e
    JOIN events_outcome o
      ON o.unit_id = e.unit_id AND o.name = %s
     AND o.timestamp >= e.first_exposed_at - INTERVAL '14 days'
    WHERE e.experiment_id = %s AND NOT e.multiple_variants
    GROUP BY e.variant
"""


def measure(args: argparse.Namespace) -> None:
    import django

    django.setup()
    from django.db import connection

    from analysis.selectors import metric_variant_stats, quantile_variant_stats
    from experiments.models import Experiment, Metric

    experiment = Experiment.objects.get(key="bench")
    metrics = {m.aggregation: m for m in Metric.objects.filter(key__startswith="bench-")}
    # p95 of the metric's event values (a model-latency guardrail's shape); created here so a
    # database loaded before quantile metrics existed is timed too.
    p95, _ = Metric.objects.update_or_create(
        key="bench-p95",
        defaults={
            "event": EVENT,
            "aggregation": "quantile",
            "quantile": 0.95,
            "cuped_lookback_days": 0,
            "winsorize_percentile": None,
        },
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM events_exposure")
        units = cursor.fetchone()[0]
        cursor.execute("SELECT COUNT(*) FROM events_outcome")
        outcomes = cursor.fetchone()[0]
        cursor.execute("SHOW work_mem")
        work_mem = cursor.fetchone()[0]

    def query(sql: str):
        def run() -> None:
            with connection.cursor() as cursor:
                cursor.execute(sql, [EVENT, experiment.pk])
                cursor.fetchall()

        return run

    calls = {
        "baseline GROUP BY": query(BASELINE),
        "join with 14-day lookback": query(LOOKBACK_JOIN),
        "selector conversion": lambda: metric_variant_stats(
            experiment=experiment, metric=metrics["conversion"]
        ),
        "selector sum + CUPED": lambda: metric_variant_stats(
            experiment=experiment, metric=metrics["sum"]
        ),
        "selector p95 (quantile)": lambda: quantile_variant_stats(
            experiment=experiment, metric=p95
        ),
    }
    print(f"{units:,} exposed units, {outcomes:,} outcomes, work_mem {work_mem}")
    rss_before = peak_rss_mb()
    figures = interleaved(calls, args.repeat)
    rss_after = peak_rss_mb()

    base = figures["baseline GROUP BY"]
    print(f"{'query':<28}{'median s':>10}{'min s':>10}{'× baseline':>12}")
    for label, runs in figures.items():
        ratio = statistics.median(runs) / statistics.median(base)
        print(f"{label:<28}{statistics.median(runs):>10.2f}{min(runs):>10.2f}{ratio:>12.2f}")
    print(f"peak RSS: {rss_before:.0f} MB before the timed queries, {rss_after:.0f} MB after")


# The snapshot's five metrics, over the loaded event names (purchase, session, click), so the
# load and the aggregate figures above are unchanged. The first two are the aggregate ones.
SNAPSHOT_METRICS = [
    # key, event, aggregation, denominator event, CUPED lookback days, role
    ("bench-conversion", EVENT, "conversion", "", 0, "primary"),
    ("bench-count", OTHER, "count", "", 0, "secondary"),
    ("bench-sum", EVENT, "sum", "", 14, "secondary"),
    ("bench-mean", DENOMINATOR, "mean", "", 0, "secondary"),
    ("bench-ratio", EVENT, "ratio", DENOMINATOR, 0, "guardrail"),
]

BASELINE_NAMES = """
    SELECT e.variant, COUNT(*), SUM(o.value), SUM(o.value * o.value)
    FROM events_exposure e
    JOIN events_outcome o
      ON o.unit_id = e.unit_id AND o.name IN (%s, %s) AND o.timestamp >= e.first_exposed_at
    WHERE e.experiment_id = %s AND NOT e.multiple_variants
    GROUP BY e.variant
"""


def snapshot_setup(experiment):
    """Create the five metrics if missing and attach exactly them to `experiment`."""
    from experiments.models import ExperimentMetric, Metric

    metrics = []
    for key, event, aggregation, denominator, lookback, role in SNAPSHOT_METRICS:
        metric, _ = Metric.objects.update_or_create(
            key=key,
            defaults={
                "event": event,
                "aggregation": aggregation,
                "denominator_event": denominator,
                "cuped_lookback_days": lookback,
            },
        )
        metrics.append(metric)
        ExperimentMetric.objects.update_or_create(
            experiment=experiment, metric=metric, defaults={"role": role}
        )
    ExperimentMetric.objects.filter(experiment=experiment).exclude(metric__in=metrics).delete()
    return metrics


def measure_snapshot(args: argparse.Namespace) -> None:
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    import analysis.services as services
    from analysis.models import ACTIVE_STATES, Snapshot, SnapshotState
    from experiments.models import Experiment

    call_command("migrate", verbosity=0)  # a reused database may predate the analysis tables
    experiment = Experiment.objects.get(key="bench")
    metrics = snapshot_setup(experiment)
    # A snapshot left active by an interrupted run would be joined, not computed.
    Snapshot.objects.filter(experiment=experiment, state__in=ACTIVE_STATES).update(
        state=SnapshotState.FAILED, error="abandoned benchmark run"
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM events_exposure")
        units = cursor.fetchone()[0]
        cursor.execute("SELECT name, COUNT(*) FROM events_outcome GROUP BY name ORDER BY name")
        names = cursor.fetchall()
        cursor.execute("SHOW work_mem")
        work_mem = cursor.fetchone()[0]
    outcomes = sum(count for _, count in names)

    # Where the snapshot's time goes: wrap the two selectors the service calls.
    parts: dict[str, float] = {}

    def clocked(label, function):
        def wrapper(**kwargs):
            started = time.perf_counter()
            try:
                return function(**kwargs)
            finally:
                name = label(kwargs)
                parts[name] = parts.get(name, 0.0) + time.perf_counter() - started

        return wrapper

    services.exposure_diagnostics = clocked(
        lambda kw: "exposure_diagnostics", services.exposure_diagnostics
    )
    services.metric_variant_stats = clocked(
        lambda kw: f"stats {kw['metric'].key}", services.metric_variant_stats
    )

    def baseline_one(metric) -> float:
        started = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute(
                BASELINE_NAMES,
                [metric.event, metric.denominator_event or metric.event, experiment.pk],
            )
            cursor.fetchall()
        return time.perf_counter() - started

    def snapshot() -> float:
        started = time.perf_counter()
        done = services.snapshot_compute_now(experiment=experiment)
        elapsed = time.perf_counter() - started
        if done.state != SnapshotState.DONE or len(done.results["metrics"]) != len(metrics):
            raise SystemExit(f"snapshot {done.pk} ended {done.state}: {done.error}")
        return elapsed

    print(f"{units:,} exposed units, {outcomes:,} outcomes ({dict(names)}), work_mem {work_mem}")
    print(f"load average before: {load_average()}", flush=True)
    # Warm the cache with one of each, then interleave so both see the same machine load.
    for metric in metrics:
        baseline_one(metric)
    snapshot()
    base_runs: list[float] = []
    base_parts: dict[str, list[float]] = {m.key: [] for m in metrics}
    snap_runs: list[float] = []
    snap_parts: dict[str, list[float]] = {}
    for i in range(args.repeat):
        total = 0.0
        for metric in metrics:
            elapsed = baseline_one(metric)
            base_parts[metric.key].append(elapsed)
            total += elapsed
        base_runs.append(total)
        parts.clear()
        snap_runs.append(snapshot())
        for name, elapsed in parts.items():
            snap_parts.setdefault(name, []).append(elapsed)
        snap_parts.setdefault("rest (engine, reads, writes)", []).append(
            snap_runs[-1] - sum(parts.values())
        )
        print(
            f"  run {i + 1}: baseline {total:.2f}s, snapshot {snap_runs[-1]:.2f}s,"
            f" load {load_average()}",
            flush=True,
        )
    print(f"load average after: {load_average()}")

    med = statistics.median
    print(f"{'baseline, per metric':<34}{'median s':>10}{'min s':>10}")
    for key, runs in base_parts.items():
        print(f"  {key:<32}{med(runs):>10.2f}{min(runs):>10.2f}")
    print(f"{'snapshot, parts':<34}{'median s':>10}{'min s':>10}")
    for name, runs in snap_parts.items():
        print(f"  {name:<32}{med(runs):>10.2f}{min(runs):>10.2f}")
    ratio = med(snap_runs) / med(base_runs)
    print(f"{'total':<34}{'median s':>10}{'min s':>10}{'× baseline':>12}")
    print(f"{'baseline: 5 GROUP BYs':<34}{med(base_runs):>10.2f}{min(base_runs):>10.2f}{1:>12.2f}")
    print(
        f"{'snapshot_compute_now':<34}{med(snap_runs):>10.2f}{min(snap_runs):>10.2f}{ratio:>12.2f}"
    )
    paired = sorted(s / b for s, b in zip(snap_runs, base_runs, strict=True))
    print(f"per-repetition ratios: {', '.join(f'{r:.2f}' for r in paired)}")


def snapshot_once() -> None:
    """One timed 5-metric snapshot of the loaded experiment; prints ``seconds <s>``."""
    import django

    django.setup()
    from django.db import connection

    from analysis.models import ACTIVE_STATES, Snapshot, SnapshotState
    from analysis.services import snapshot_compute_now
    from experiments.models import Experiment

    experiment = Experiment.objects.get(key="bench")
    metrics = snapshot_setup(experiment)
    Snapshot.objects.filter(experiment=experiment, state__in=ACTIVE_STATES).update(
        state=SnapshotState.FAILED, error="abandoned benchmark run"
    )
    import analysis.stats.analyze  # noqa: F401  (scipy's import is not the snapshot's time)

    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    started = time.perf_counter()
    done = snapshot_compute_now(experiment=experiment)
    elapsed = time.perf_counter() - started
    if done.state != SnapshotState.DONE or len(done.results["metrics"]) != len(metrics):
        raise SystemExit(f"snapshot {done.pk} ended {done.state}: {done.error}")
    print(f"seconds {elapsed:.4f}")


def measure_unrelated(args: argparse.Namespace) -> None:
    """Snapshot time without and with unrelated rows: two databases, alternating runs."""
    clean, noisy = args.database, f"{args.database}_unrelated"
    common = ["--units", str(args.units), "--outcomes", str(args.outcomes)]
    common += ["--seed", str(args.seed), "--server", args.server]
    if not args.reuse:
        for database, extra in ((clean, []), (noisy, ["--with-unrelated"])):
            factor = ["--unrelated-factor", str(args.unrelated_factor)]
            command = [sys.executable, __file__, *common, *factor, "--database", database]
            subprocess.run([*command, *extra, "--load-only"], check=True)

    def once(database: str) -> float:
        command = [sys.executable, __file__, *common, "--database", database, "--snapshot-once"]
        out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        return float(out.split("seconds")[-1])

    import psycopg

    sizes = {}
    for database in (clean, noisy):
        with psycopg.connect(f"{args.server}/{database}") as conn:
            sizes[database] = conn.execute("SELECT COUNT(*) FROM events_outcome").fetchone()[0]
        print(f"{database}: {sizes[database]:,} outcomes", flush=True)
    print(f"load average before: {load_average()}", flush=True)
    once(clean), once(noisy)  # warm-up of each
    runs: dict[str, list[float]] = {clean: [], noisy: []}
    for i in range(args.repeat):
        # Alternate which goes first, so a trend in the machine's load hits both alike.
        order = (clean, noisy) if i % 2 == 0 else (noisy, clean)
        for database in order:
            runs[database].append(once(database))
        print(
            f"  run {i + 1}: without {runs[clean][-1]:.2f}s, with {runs[noisy][-1]:.2f}s,"
            f" load {load_average()}",
            flush=True,
        )
    med = statistics.median
    change = med(runs[noisy]) / med(runs[clean]) - 1
    print(f"load average after: {load_average()}")
    print(f"{'snapshot':<34}{'median s':>10}{'min s':>10}")
    print(f"  {'without unrelated rows':<32}{med(runs[clean]):>10.2f}{min(runs[clean]):>10.2f}")
    print(f"  {'with unrelated rows':<32}{med(runs[noisy]):>10.2f}{min(runs[noisy]):>10.2f}")
    print(f"change of the median: {change:+.1%}")
    paired = [n / c - 1 for c, n in zip(runs[clean], runs[noisy], strict=True)]
    print(f"per-repetition changes: {', '.join(f'{p:+.1%}' for p in paired)}")


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def interleaved(calls: dict, repeat: int) -> dict[str, list[float]]:
    """Each call once to warm the cache, then `repeat` rounds of every call in turn, so a change
    of the machine's load hits every query alike."""
    for call in calls.values():
        call()
    runs: dict[str, list[float]] = {label: [] for label in calls}
    for _ in range(repeat):
        for label, call in calls.items():
            started = time.perf_counter()
            call()
            runs[label].append(time.perf_counter() - started)
    return runs


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


if __name__ == "__main__":
    main()
