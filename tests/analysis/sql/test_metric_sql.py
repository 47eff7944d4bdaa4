"""analysis.metric_sql: per-unit values against a plain-Python oracle, with unrelated data around.

The time-bounded outcome scan must never drop an event a unit counts. The data put events of
the metric's names far before the experiment, in other experiments, after every window, under
other names and from unexposed units, plus events exactly on the scan's edges (the first unit's
lookback start, the last unit's window end). The oracle loops over raw rows with the rules of
docs/api.md §6; it shares no code with the SQL. Both dialects: the suite runs on SQLite and on
PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import random
from collections import defaultdict

import pytest
from django.db import connection

from analysis import metric_sql
from analysis.metric_sql import Scope
from analysis.selectors import (
    metric_scope,
    metric_variant_stats,
    quantile_variant_stats,
    unit_values_sql,
)
from events.models import Exposure, Outcome
from tests.factories import MetricFactory, make_experiment

START = dt.datetime(2025, 6, 1, 9, 30, tzinfo=dt.UTC)
US = dt.timedelta(microseconds=1)
HOUR, DAY = dt.timedelta(hours=1), dt.timedelta(days=1)
BUY, VISIT, OTHER = "buy", "visit", "scroll"


def _build(seed: int = 7, units: int = 80):
    """One experiment's units and their events among a lot of unrelated rows; raw rows back."""
    rng = random.Random(seed)
    exp = make_experiment("bounded")
    other = make_experiment("earlier")
    exposures = []
    for i in range(units):
        t0 = START + dt.timedelta(microseconds=rng.randrange(5 * 86_400 * 10**6))
        exposures.append((f"u{i}", rng.choice(["control", "treatment"]), t0, rng.random() < 0.05))
    Exposure.objects.bulk_create(
        Exposure(experiment=exp, unit_id=u, variant=v, first_exposed_at=t, multiple_variants=m)
        for u, v, t, m in exposures
    )
    # Another experiment, earlier, sharing a third of the units and with units of its own.
    earlier = START - 60 * DAY
    Exposure.objects.bulk_create(
        [
            Exposure(experiment=other, unit_id=u, variant="control", first_exposed_at=earlier)
            for u, _, _, _ in exposures[::3]
        ]
        + [
            Exposure(
                experiment=other, unit_id=f"o{i}", variant="treatment", first_exposed_at=earlier
            )
            for i in range(40)
        ]
    )
    rows: list[tuple[str, str, float, dt.datetime]] = []
    for uid, _, t0, _ in exposures:
        for name in (BUY, VISIT, OTHER):
            for _ in range(rng.randrange(6)):
                offset = dt.timedelta(
                    microseconds=rng.randrange(-10 * 86_400 * 10**6, 6 * 86_400 * 10**6)
                )
                rows.append((uid, name, round(rng.lognormvariate(1.5, 1.0), 3), t0 + offset))
        # Unrelated for this experiment: its units' history long before, and long after.
        rows.append((uid, BUY, 1000.0, earlier + DAY))
        rows.append((uid, BUY, 3000.0, t0 + 40 * DAY))
        rows.append((uid, OTHER, 5.0, t0 + HOUR))
    for i in range(40):  # the earlier experiment's own units, and units never exposed
        rows.append((f"o{i}", BUY, 7.0, earlier + HOUR))
        rows.append((f"stranger{i}", BUY, 9.0, START + i * HOUR))
    # The scan's edges: the first exposure minus the lookback (in), one microsecond earlier
    # (out); the last exposure plus the window minus one microsecond (in), the window end (out).
    first = min(exposures, key=lambda e: e[2] if not e[3] else START + 99 * DAY)
    last = max(exposures, key=lambda e: e[2] if not e[3] else START - 99 * DAY)
    edges = [
        (first[0], BUY, 11.0, first[2] - 7 * DAY),
        (first[0], BUY, 13.0, first[2] - 7 * DAY - US),
        (last[0], BUY, 17.0, last[2] + 48 * HOUR - US),
        (last[0], VISIT, 19.0, last[2] + 48 * HOUR - US),
        (last[0], BUY, 23.0, last[2] + 48 * HOUR),
        (last[0], BUY, 29.0, last[2]),
        (first[0], BUY, 31.0, first[2]),
    ]
    rows += edges
    Outcome.objects.bulk_create(
        (
            Outcome(event_id=f"e{k}", unit_id=u, name=n, value=v, timestamp=t)
            for k, (u, n, v, t) in enumerate(rows)
        ),
        batch_size=1000,
    )
    return exp, exposures, rows, edges


def _oracle(exposures, rows, *, event, aggregation, window=None, lookback=0, denominator=None):
    """Per analysed unit: (variant, y, x, d) by the rules, from a plain loop over raw rows."""
    by_unit = defaultdict(list)
    for uid, name, value, ts in rows:
        by_unit[uid].append((name, value, ts))
    values = {}
    for uid, variant, t0, multiple in exposures:
        if multiple:
            continue
        end = t0 + dt.timedelta(hours=window) if window is not None else None
        post = [(n, v) for n, v, ts in by_unit[uid] if ts >= t0 and (end is None or ts < end)]
        pre = [
            v
            for n, v, ts in by_unit[uid]
            if n == event and t0 - dt.timedelta(days=lookback) <= ts < t0
        ]
        hits = [v for n, v in post if n == event]

        def agg(found: list[float]) -> float | None:
            if aggregation == "conversion":
                return float(bool(found))
            if aggregation == "count":
                return float(len(found))
            if aggregation == "mean":
                return sum(found) / len(found) if found else None
            return float(sum(found))

        d = sum(v for n, v in post if n == denominator) if denominator else 0.0
        x = agg(pre) if lookback else 0.0
        values[uid] = (variant, agg(hits), 0.0 if x is None else x, d)
    return values


CASES = [
    # aggregation, event, window hours, CUPED lookback days, denominator
    ("conversion", BUY, None, 0, None),
    ("count", VISIT, 48, 0, None),
    ("sum", BUY, 48, 7, None),
    ("sum", BUY, None, 7, None),
    ("mean", BUY, 48, 7, None),
    ("ratio", BUY, 48, 0, VISIT),
]


@pytest.mark.parametrize(("aggregation", "event", "window", "lookback", "denominator"), CASES)
def test_totals__unrelated_data_and_edges__match_python_oracle(
    db, aggregation, event, window, lookback, denominator
) -> None:
    # Given units among unrelated events and events on the scan's edges
    exp, exposures, rows, _ = _build()
    metric = MetricFactory(
        event=event,
        aggregation=aggregation,
        conversion_window_hours=window,
        cuped_lookback_days=lookback,
        denominator_event=denominator or "",
    )
    # When
    stats = metric_variant_stats(experiment=exp, metric=metric)
    # Then every variant's totals are the oracle's
    units = _oracle(
        exposures,
        rows,
        event=event,
        aggregation=aggregation,
        window=window,
        lookback=lookback,
        denominator=denominator,
    )
    for key, got in stats.items():
        arm = [v for v in units.values() if v[0] == key and v[1] is not None]
        ys = [y for _, y, _, _ in arm]
        assert got.n == len(arm)
        assert got.sum == pytest.approx(sum(ys), rel=1e-9)
        assert got.sum_squares == pytest.approx(sum(y * y for y in ys), rel=1e-9)
        if lookback and aggregation != "ratio":
            assert got.covariate_sum == pytest.approx(sum(x for _, _, x, _ in arm), rel=1e-9)
            assert got.cross_sum == pytest.approx(sum(x * y for _, y, x, _ in arm), rel=1e-9)
        if aggregation == "ratio":
            assert got.denominator_sum == pytest.approx(sum(d for *_, d in arm), rel=1e-9)


def test_totals__edge_events__each_counted_exactly_once(db) -> None:
    # Given the data above, the first unit's event at its lookback start and the last unit's
    # at its window's last microsecond (values 11 and 17) sit on the scan's bounds
    exp, exposures, rows, edges = _build()
    metric = MetricFactory(
        event=BUY, aggregation="sum", conversion_window_hours=48, cuped_lookback_days=7
    )
    without_edges = [r for r in rows if r not in edges[:5] or r[1] == VISIT]
    units = _oracle(exposures, without_edges, event=BUY, aggregation="sum", window=48, lookback=7)
    # When
    stats = metric_variant_stats(experiment=exp, metric=metric)
    # Then the totals are the oracle's without edge events plus 11 (x) and 17 (y), no more
    assert sum(s.sum for s in stats.values()) == pytest.approx(
        sum(y for _, y, _, _ in units.values()) + 17.0, rel=1e-12
    )
    assert sum(s.covariate_sum or 0 for s in stats.values()) == pytest.approx(
        sum(x for _, _, x, _ in units.values()) + 11.0, rel=1e-12
    )


@pytest.mark.parametrize("windowed_only", [False, True])
def test_unit_values__unrelated_data_and_edges__match_python_oracle(db, windowed_only) -> None:
    # Given units among unrelated events, and one metric of each per-unit aggregation (all
    # with a window: the scan has an end; or one without: it has none)
    exp, exposures, rows, _ = _build(seed=11)
    metrics = [
        MetricFactory(
            event=BUY,
            aggregation="conversion",
            conversion_window_hours=48 if windowed_only else None,
        ),
        MetricFactory(event=VISIT, aggregation="count", conversion_window_hours=48),
        MetricFactory(event=BUY, aggregation="sum", conversion_window_hours=48),
        MetricFactory(event=BUY, aggregation="mean", conversion_window_hours=24),
        MetricFactory(
            event=BUY, aggregation="ratio", denominator_event=VISIT, conversion_window_hours=48
        ),
    ]
    # When
    sql, params = unit_values_sql(experiment=exp, metrics=metrics)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        got = {row[0]: row for row in cursor.fetchall()}
    # Then every analysed unit has the oracle's values, and no other unit is there
    oracles = [
        _oracle(
            exposures,
            rows,
            event=m.event,
            aggregation=m.aggregation,
            window=m.conversion_window_hours,
            denominator=m.denominator_event or None,
        )
        for m in metrics
    ]
    assert set(got) == set(oracles[0])
    for uid, row in got.items():
        conversion, count, total, mean, ratio, numerator, denominator = row[3:]
        expected = [o[uid] for o in oracles]
        assert row[1] == expected[0][0]
        assert (conversion, count) == (expected[0][1], expected[1][1])
        assert total == pytest.approx(expected[2][1], rel=1e-9)
        assert (mean is None) == (expected[3][1] is None)
        if mean is not None:
            assert mean == pytest.approx(expected[3][1], rel=1e-9)
        assert numerator == pytest.approx(expected[4][1], rel=1e-9)
        assert denominator == pytest.approx(expected[4][3], rel=1e-9)
        assert (ratio is None) == (denominator == 0)


def test_quantile__edge_event_at_last_window_microsecond__counted(db) -> None:
    # Given one unit exposed a second before the stop, with events at its window's edges
    exp = make_experiment("late")
    stop = START + 3 * DAY
    t0 = stop - dt.timedelta(seconds=1)
    Exposure.objects.create(experiment=exp, unit_id="late", variant="control", first_exposed_at=t0)
    Outcome.objects.bulk_create(
        [
            Outcome(
                event_id="in", unit_id="late", name=BUY, value=5.0, timestamp=t0 + 2 * HOUR - US
            ),
            Outcome(
                event_id="out", unit_id="late", name=BUY, value=500.0, timestamp=t0 + 2 * HOUR
            ),
            Outcome(event_id="early", unit_id="late", name=BUY, value=50.0, timestamp=t0 - US),
        ]
    )
    metric = MetricFactory(
        event=BUY, aggregation="quantile", quantile=0.5, conversion_window_hours=2
    )
    # When
    control = quantile_variant_stats(experiment=exp, metric=metric)["control"]
    # Then the one event inside the window is the arm's median
    assert control.n == 1
    assert control.sum == pytest.approx(5.0)


def test_metric_scope__first_and_last_exposure_of_analysed_units(db) -> None:
    # Given exposures, one of them a multiple-variant unit earlier than all others
    exp = make_experiment("scope")
    Exposure.objects.bulk_create(
        [
            Exposure(
                experiment=exp, unit_id="a", variant="control", first_exposed_at=START + HOUR
            ),
            Exposure(
                experiment=exp, unit_id="b", variant="treatment", first_exposed_at=START + DAY
            ),
            Exposure(
                experiment=exp,
                unit_id="m",
                variant="control",
                first_exposed_at=START,
                multiple_variants=True,
            ),
        ]
    )
    # When
    scope = metric_scope(experiment=exp)
    # Then
    assert scope == Scope(exp.pk, ("control", "treatment"), START + HOUR, START + DAY)


def test_scan_span__lookback_and_window__widen_the_exposure_range() -> None:
    scope = Scope(1, ("control",), START, START + DAY)
    windowed = MetricFactory.build(conversion_window_hours=48, cuped_lookback_days=7)
    open_ended = MetricFactory.build(conversion_window_hours=None, cuped_lookback_days=14)
    # One metric: first − lookback (only with the covariate), last + window
    assert metric_sql.scan_span(scope, [windowed], with_covariate=True) == metric_sql.ScanSpan(
        START - 7 * DAY, START + DAY + 48 * HOUR
    )
    assert metric_sql.scan_span(scope, [windowed], with_covariate=False).start == START
    # A metric without a window counts every later event: no end
    assert metric_sql.scan_span(scope, [windowed, open_ended], with_covariate=False).end is None
    # No analysed unit: nothing to bound
    empty = Scope(1, ("control",), None, None)
    assert metric_sql.scan_span(empty, [windowed], with_covariate=True) == metric_sql.ScanSpan(
        None, None
    )
