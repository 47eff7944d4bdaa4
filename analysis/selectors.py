"""Reads for the analysis: per-variant sufficient statistics, computed inside the database.

`metric_variant_stats` reduces an experiment's exposures and outcomes to one `VariantStats` per
variant with a single SQL query; no exposure or outcome row is ever loaded into Python, so memory
stays flat however many units an experiment has. The query is four steps (docs/api.md §6):

1. ``units``: the experiment's exposures, minus units seen in more than one variant;
2. per unit, from a join to its outcomes, (units without events add only to n, which comes
   from the exposures; with winsorization an outer join keeps them as 0 for the percentile):
   y (the metric after exposure, within the conversion window if set),
   x (the same aggregation over ``[first_exposed_at − lookback, first_exposed_at)``, for CUPED)
   or, for ratio metrics, M (numerator) and D (denominator);
3. optional winsorization: each per-unit column is capped at the metric's percentile of that
   column over all analysed units of the experiment (every variant pooled);
4. per-variant totals n, Σy, Σy², Σx, Σx², Σxy (ratio: ΣD, ΣD², ΣM·D).

Semantics decided here (docs/api.md leaves them open):

- ``mean``: only units with at least one event after exposure count (n = those units); their
  covariate is the mean pre-period value, and 0 when the unit had no pre-period event.
- Winsorization uses linear interpolation between closest ranks: PostgreSQL's
  ``percentile_cont`` and numpy's default ``method="linear"`` (h = (N − 1)·p, value =
  v[⌊h⌋] + (h − ⌊h⌋)(v[⌊h⌋+1] − v[⌊h⌋])); SQLite, which has no ``percentile_cont``, computes the
  same with window functions. Only values above the cap change (there is no lower cap). The
  CUPED covariate is capped at the same percentile of its own values, and a ratio's numerator
  and denominator each at their own. Conversions (0 or 1) are never capped: a fractional cap
  would turn them into something that is no longer a proportion.
- A ratio metric has no CUPED covariate: ``cross_sum`` holds ΣM·D (see `VariantStats`).
- Exposures whose variant key is not one of the experiment's variants are ignored.

Timestamps: PostgreSQL shifts them with interval arithmetic. SQLite stores Django datetimes as
UTC text ``YYYY-MM-DD HH:MM:SS[.ffffff]``, which compares correctly as text; a shift is computed on
the whole seconds and the original fraction appended again, so it is exact to the microsecond
(SQLite's own date functions round to milliseconds).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.db import connection
from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncDate

from analysis.models import Snapshot, SnapshotState
from core.sql import shifted
from events.models import Exposure, Outcome
from experiments.models import Aggregation, Experiment, Metric

if TYPE_CHECKING:
    from analysis.stats.inputs import VariantStats


_SKEWED = (Aggregation.SUM, Aggregation.MEAN, Aggregation.COUNT)


@dataclass(frozen=True, slots=True)
class ExposureDay:
    """Units first exposed on one UTC day in one variant."""

    date: dt.date
    variant: str
    units: int


@dataclass(frozen=True, slots=True)
class ExposureDiagnostics:
    """What the analysis excluded or should warn about (docs/api.md §8 ``diagnostics``)."""

    # Analysed units per variant (multiple-variant units excluded); every variant present.
    units_by_variant: dict[str, int]
    multiple_variant_units: int
    # Exposures whose reported variant differed from the server's assignment, over all units.
    mismatched_exposures: int
    # Analysed units by the UTC day of their first exposure, sorted by day then variant.
    exposures_by_day: list[ExposureDay]


def metric_variant_stats(
    *, experiment: Experiment, metric: Metric, cuped: bool = True
) -> dict[str, VariantStats]:
    """Sufficient statistics of `metric` for every variant of `experiment`, keyed by variant.

    CUPED covariate sums are filled when `cuped` is true, the metric's ``cuped_lookback_days``
    is above 0 and the metric is not a ratio; otherwise they are None. Ratio metrics fill the
    denominator sums and ``cross_sum`` = ΣM·D. A variant without units has n = 0 and zero sums.
    """
    variant_keys = list(
        experiment.variants.order_by("position", "id").values_list("key", flat=True)
    )
    is_ratio = metric.aggregation == Aggregation.RATIO
    with_covariate = cuped and not is_ratio and metric.cuped_lookback_days > 0
    sql, params = _metric_sql(
        experiment_id=experiment.pk,
        metric=metric,
        with_covariate=with_covariate,
        vendor=connection.vendor,
        variant_keys=variant_keys,
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = {row[0]: row[1:] for row in cursor.fetchall()}

    # Imported here: the statistics package loads scipy, which exports and the dashboard's
    # cheap reads should not pay for (it is a third of an export process's memory).
    from analysis.stats.inputs import VariantStats

    stats: dict[str, VariantStats] = {}
    for key in variant_keys:
        n, sy, syy, sx, sxx, sxy, sd, sdd, smd, syyy = rows.get(key, (0,) + (0.0,) * 9)
        stats[key] = VariantStats(
            key=key,
            n=int(n),
            sum=_float(sy),
            sum_squares=_float(syy),
            covariate_sum=_float(sx) if with_covariate else None,
            covariate_sum_squares=_float(sxx) if with_covariate else None,
            cross_sum=_float(smd if is_ratio else sxy) if (is_ratio or with_covariate) else None,
            denominator_sum=_float(sd) if is_ratio else None,
            denominator_sum_squares=_float(sdd) if is_ratio else None,
            # Skewness (the heavy-tail rule) matters for unbounded values, not for 0/1.
            sum_cubes=_float(syyy) if metric.aggregation in _SKEWED else None,
        )
    return stats


def quantile_variant_stats(*, experiment: Experiment, metric: Metric) -> dict[str, VariantStats]:
    """A quantile metric's arms (CONTRACT §8.2) as sufficient statistics, keyed by variant.

    Two queries over the events of analysed units (at or after their first exposure, within
    the conversion window if set), every variant at once:

    1. per arm: Q̂ = the q-quantile of all its event values (``percentile_cont`` on
       PostgreSQL; the same linear interpolation with window functions on SQLite), then per
       unit N (events) and S (events ≤ its arm's Q̂), reduced to the arm's ΣN, ΣN², ΣS, ΣS²,
       ΣS·N; and the arm's analysed units (units without events count, with N = S = 0);
    2. per arm: the event quantiles at the two probabilities q ± z·σ that bound Q̂
       (`analysis.stats.quantile`, steps 2–3).

    `analysis.stats.quantile.as_variant_stats` turns Q̂ and its standard error into the
    totals the engine takes. No event row is loaded into Python.
    """
    from analysis.stats.quantile import (
        QuantileArm,
        QuantileCounts,
        as_variant_stats,
        indicator_sd,
        interval_probabilities,
        standard_error,
    )

    assert metric.quantile is not None, "a quantile metric has a quantile (Metric.clean)"
    variant_keys = list(
        experiment.variants.order_by("position", "id").values_list("key", flat=True)
    )
    vendor = connection.vendor
    events_sql, params = _quantile_events_sql(experiment_id=experiment.pk, metric=metric)
    params["q"] = metric.quantile
    sql = _quantile_moments_sql(events_sql, vendor)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = {row[0]: row[1:] for row in cursor.fetchall()}

    counts: dict[str, QuantileCounts] = {}
    probabilities: dict[str, tuple[float, float]] = {}
    for key in variant_keys:
        units, events, nn, below, ss, sn, estimate = rows.get(key, (0, 0, 0, 0, 0, 0, None))
        counts[key] = QuantileCounts(
            units=int(units or 0),
            events=int(events or 0),
            events_sq=_float(nn),
            below=int(below or 0),
            below_sq=_float(ss),
            below_events=_float(sn),
            estimate=None if estimate is None or not events else float(estimate),
        )
        sd = indicator_sd(counts[key])
        if sd is not None:
            probabilities[key] = interval_probabilities(metric.quantile, sd)

    bounds = _event_quantiles(events_sql, params, probabilities, vendor) if probabilities else {}
    stats: dict[str, VariantStats] = {}
    for key in variant_keys:
        c = counts[key]
        se = standard_error(*bounds[key]) if key in bounds else None
        arm = QuantileArm(key, c.units, c.events, c.estimate, se)
        stats[key] = as_variant_stats(arm)
    return stats


def exposure_diagnostics(*, experiment: Experiment) -> ExposureDiagnostics:
    """Unit counts, exclusions and daily exposures of `experiment`, aggregated in the database."""
    exposures = Exposure.objects.filter(experiment=experiment)
    analysed = exposures.filter(multiple_variants=False)
    totals = exposures.aggregate(
        multiple=Count("id", filter=Q(multiple_variants=True)), mismatched=Sum("mismatched_count")
    )
    counts = dict(
        analysed.values("variant").annotate(units=Count("id")).values_list("variant", "units")
    )
    units_by_variant = {
        key: counts.pop(key, 0)
        for key in experiment.variants.order_by("position", "id").values_list("key", flat=True)
    }
    # Keys the experiment does not define are still shown: they point at a client bug.
    units_by_variant.update(sorted(counts.items()))
    by_day = (
        analysed.annotate(day=TruncDate("first_exposed_at", tzinfo=dt.UTC))
        .values("day", "variant")
        .annotate(units=Count("id"))
        .order_by("day", "variant")
    )
    return ExposureDiagnostics(
        units_by_variant=units_by_variant,
        multiple_variant_units=totals["multiple"] or 0,
        mismatched_exposures=totals["mismatched"] or 0,
        exposures_by_day=[
            ExposureDay(date=row["day"], variant=row["variant"], units=row["units"])
            for row in by_day
        ],
    )


def units_first_exposed_since(*, experiment: Experiment, since: dt.datetime) -> dict[str, int]:
    """Analysed units per variant whose first exposure is at or after `since` (SRM after a
    rollback, docs/api.md §7)."""
    rows = (
        Exposure.objects.filter(
            experiment=experiment, multiple_variants=False, first_exposed_at__gte=since
        )
        .values("variant")
        .annotate(units=Count("id"))
        .values_list("variant", "units")
    )
    return dict(rows)


def _float(value: Any) -> float:
    return float(value) if value is not None else 0.0


# --- SQL -------------------------------------------------------------------------------------


def winsorize_caps(*, experiment: Experiment, metric: Metric) -> dict[str, float | None]:
    """The caps the analysis applies to `metric` (docs/api.md §6; the same SQL as
    `metric_variant_stats`): ``{"y": cap}`` and, for a ratio, ``"d"`` (the numerator is y).
    Empty when the metric is not winsorized (no percentile, or a conversion). A cap is None
    when no unit is analysed. Exports use it to write the winsorized value beside the raw one.
    """
    if metric.winsorize_percentile is None or metric.aggregation == Aggregation.CONVERSION:
        return {}
    sql, params = _metric_sql(
        experiment_id=experiment.pk,
        metric=metric,
        with_covariate=False,
        vendor=connection.vendor,
        variant_keys=list(experiment.variants.values_list("key", flat=True)),
        caps_only=True,
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    names = ["y", "d"] if metric.aggregation == Aggregation.RATIO else ["y"]
    return {name: (None if v is None else float(v)) for name, v in zip(names, row, strict=True)}


def _metric_sql(
    *,
    experiment_id: int,
    metric: Metric,
    with_covariate: bool,
    vendor: str,
    variant_keys: Sequence[str],
    caps_only: bool = False,
) -> tuple[str, dict[str, Any]]:
    qn = connection.ops.quote_name
    exposure, outcome = Exposure._meta, Outcome._meta
    e_table, o_table = qn(exposure.db_table), qn(outcome.db_table)
    fields = (*exposure.concrete_fields, *outcome.concrete_fields)
    col = {f.name: qn(f.column or "") for f in fields}

    aggregation = metric.aggregation
    is_ratio = aggregation == Aggregation.RATIO
    params: dict[str, Any] = {
        "experiment_id": experiment_id,
        "multiple": False,
        "event": metric.event,
        "denominator_event": metric.denominator_event or metric.event,
        "window_hours": metric.conversion_window_hours,
        "lookback_hours": -24 * metric.cuped_lookback_days,
    }

    # The join keeps outcomes in [lower, upper): lower is the exposure, or the start of the
    # CUPED lookback; upper is the end of the conversion window, if any. Within that, an outcome
    # counts for y from the exposure on, and for x before it.
    post, pre = "o.ts >= u.t0", "o.ts < u.t0"
    lower = shifted("u.t0", "lookback_hours", vendor) if with_covariate else "u.t0"
    upper = ""
    if metric.conversion_window_hours is not None:
        upper = f" AND o.ts < {shifted('u.t0', 'window_hours', vendor)}"
    is_event = "o.name = %(event)s"
    join_names = "o.name IN (%(event)s, %(denominator_event)s)" if is_ratio else is_event

    def total(condition: str, expr: str) -> str:
        return f"SUM(CASE WHEN {condition} THEN {expr} ELSE 0 END)"

    # Per-unit columns: y, x (0 when unused) and d (0 unless ratio).
    if aggregation == Aggregation.CONVERSION:
        y = f"MAX(CASE WHEN {post} THEN 1 ELSE 0 END)"
        x = f"MAX(CASE WHEN {pre} THEN 1 ELSE 0 END)"
    elif aggregation == Aggregation.COUNT:
        y = f"COUNT(CASE WHEN {post} THEN 1 END)"
        x = f"COUNT(CASE WHEN {pre} THEN 1 END)"
    elif aggregation in (Aggregation.SUM, Aggregation.MEAN):
        y = total(post, "o.value")
        x = total(pre, "o.value")
    elif is_ratio:
        y = total(f"{post} AND {is_event}", "o.value")
        x = "0"
    else:
        raise ValueError(f"unknown aggregation {aggregation!r}")
    if aggregation == Aggregation.MEAN:
        # Mean per unit: the unit's sum over its event count. x is 0 without pre-period events.
        y = f"{y} / NULLIF(COUNT(CASE WHEN {post} THEN 1 END), 0)"
        x = f"COALESCE({x} / NULLIF(COUNT(CASE WHEN {pre} THEN 1 END), 0), 0)"
    d = total(f"{post} AND o.name = %(denominator_event)s", "o.value") if is_ratio else "0"
    if not with_covariate:
        x = "0"

    # `units` keeps the columns the join and the windows need under short names. Exposures
    # under a variant key the experiment does not define are left out here, not only after
    # grouping: otherwise their values would move the winsorization cap of the real arms.
    keys = list(variant_keys)
    params.update({f"variant_{i}": key for i, key in enumerate(keys)})
    known = ", ".join(f"%(variant_{i})s" for i in range(len(keys))) or "NULL"
    units_cte = f"""
        SELECT e.{col["id"]} AS id, e.{col["unit_id"]} AS unit_id, e.{col["variant"]} AS variant,
               e.{col["first_exposed_at"]} AS t0
        FROM {e_table} e
        WHERE e.{col["experiment"]} = %(experiment_id)s
          AND e.{col["multiple_variants"]} = %(multiple)s
          AND e.{col["variant"]} IN ({known})
    """
    # Outcomes are read through a subquery that renames their columns, so the expressions above
    # use o.ts / o.value / o.name whatever the real column names are.
    outcomes = (
        f"(SELECT {col['unit_id']} AS unit_id, {col['name']} AS name, {col['value']} AS value,"
        f" {col['timestamp']} AS ts FROM {o_table})"
    )
    per_unit_cte = f"""
        SELECT u.variant AS variant,
               CAST({y} AS DOUBLE PRECISION) AS y,
               CAST({x} AS DOUBLE PRECISION) AS x,
               CAST({d} AS DOUBLE PRECISION) AS d
        FROM units u
        LEFT JOIN {outcomes} o
          ON {join_names} AND o.unit_id = u.unit_id AND o.ts >= {lower}{upper}
        GROUP BY u.id, u.variant
    """
    # Mean: units without events after exposure have y NULL and are not analysed.
    analysed = "WHERE y IS NOT NULL" if aggregation == Aggregation.MEAN else ""
    totals = (
        "SUM(y) AS sy, SUM(y * y) AS syy, SUM(x) AS sx, SUM(x * x) AS sxx, SUM(x * y) AS sxy,"
        " SUM(d) AS sd, SUM(d * d) AS sdd, SUM(y * d) AS syd, SUM(y * y * y) AS syyy"
    )
    percentile = metric.winsorize_percentile
    if percentile is None or aggregation == Aggregation.CONVERSION:
        # Without a cap no unit needs the others' values, so units without events (which only
        # add to n) skip the per-unit step: it aggregates an inner join, which PostgreSQL runs
        # in parallel (15 has no parallel outer hash join), and n comes from the exposures.
        # The exposures subquery is written out twice: a CTE used twice is materialized by
        # PostgreSQL, and a CTE scan cannot feed a parallel join.
        hits = per_unit_cte.replace("LEFT JOIN", "JOIN").replace(
            "FROM units u", f"FROM ({units_cte}) u"
        )
        if aggregation == Aggregation.CONVERSION and not with_covariate:
            # A conversion without covariate is 1 for every unit with an event and needs no
            # per-unit grouping: an EXISTS, which PostgreSQL runs as a parallel hash semi-join
            # (no per-unit sort; about 2x faster at 1M units, see docs/benchmarks.md).
            hits = f"""
                SELECT u.variant AS variant, CAST(1 AS DOUBLE PRECISION) AS y,
                       CAST(0 AS DOUBLE PRECISION) AS x, CAST(0 AS DOUBLE PRECISION) AS d
                FROM ({units_cte}) u
                WHERE EXISTS (
                    SELECT 1 FROM {outcomes} o
                    WHERE {is_event} AND o.unit_id = u.unit_id AND o.ts >= u.t0{upper}
                )
            """
        units_n = (
            ""
            if aggregation == Aggregation.MEAN
            else "UNION ALL SELECT variant, COUNT(*), 0, 0, 0, 0, 0, 0, 0, 0, 0"
            f" FROM ({units_cte}) u GROUP BY variant"
        )
        hits_n = "COUNT(*)" if aggregation == Aggregation.MEAN else "0"
        sql = f"""
            WITH hits AS ({hits})
            SELECT variant, SUM(n), SUM(sy), SUM(syy), SUM(sx), SUM(sxx), SUM(sxy), SUM(sd),
                   SUM(sdd), SUM(syd), SUM(syyy)
            FROM (
                SELECT variant, {hits_n} AS n, {totals} FROM hits {analysed} GROUP BY variant
                {units_n}
            ) AS t
            GROUP BY variant
        """
        return sql, params
    # With a cap, every unit's value (0 included) enters the percentile: one outer join.
    ctes = [("units", units_cte), ("per_unit", per_unit_cte)]
    params["fraction"] = percentile / 100.0
    capped = {"y": True, "x": with_covariate, "d": is_ratio}
    for column, on in capped.items():
        if on:
            ctes.extend(_cap_ctes(column, analysed, vendor))
    caps = [c for c, on in capped.items() if on]
    if caps_only:
        with_clause = ",\n".join(f"{name} AS ({body})" for name, body in ctes)
        joins = " CROSS JOIN ".join(f"cap_{c}" for c in caps)
        return f"WITH {with_clause} SELECT {', '.join(f'cap_{c}.v' for c in caps)} FROM {joins}", (
            params
        )
    select = ", ".join(
        f"CASE WHEN p.{c} > cap_{c}.v THEN cap_{c}.v ELSE p.{c} END AS {c}"
        if c in caps
        else f"p.{c} AS {c}"
        for c in ("y", "x", "d")
    )
    joins = " ".join(f"CROSS JOIN cap_{c}" for c in caps)
    ctes.append(("capped", f"SELECT p.variant, {select} FROM per_unit p {joins}"))
    source = "capped"
    with_clause = ",\n".join(f"{name} AS ({body})" for name, body in ctes)
    sql = f"""
        WITH {with_clause}
        SELECT variant, COUNT(*), {totals}
        FROM {source}
        {analysed}
        GROUP BY variant
    """
    return sql, params


def _quantile_events_sql(*, experiment_id: int, metric: Metric) -> tuple[str, dict[str, Any]]:
    """SQL for the CTEs ``units`` (analysed units: id, unit_id, variant, t0) and ``events``
    (uid, variant, v): every event of the metric's name of an analysed unit, at or after its
    first exposure and before the end of the conversion window if set."""
    qn = connection.ops.quote_name
    exposure, outcome = Exposure._meta, Outcome._meta
    fields = (*exposure.concrete_fields, *outcome.concrete_fields)
    col = {f.name: qn(f.column or "") for f in fields}
    params: dict[str, Any] = {
        "experiment_id": experiment_id,
        "multiple": False,
        "event": metric.event,
        "window_hours": metric.conversion_window_hours,
    }
    upper = ""
    if metric.conversion_window_hours is not None:
        end = shifted("u.t0", "window_hours", connection.vendor)
        upper = f" AND o.{col['timestamp']} < {end}"
    sql = f"""
        units AS (
            SELECT e.{col["id"]} AS id, e.{col["unit_id"]} AS unit_id,
                   e.{col["variant"]} AS variant, e.{col["first_exposed_at"]} AS t0
            FROM {qn(exposure.db_table)} e
            WHERE e.{col["experiment"]} = %(experiment_id)s
              AND e.{col["multiple_variants"]} = %(multiple)s
        ),
        events AS (
            SELECT u.id AS uid, u.variant AS variant,
                   CAST(o.{col["value"]} AS DOUBLE PRECISION) AS v
            FROM units u
            JOIN {qn(outcome.db_table)} o
              ON o.{col["name"]} = %(event)s AND o.{col["unit_id"]} = u.unit_id
             AND o.{col["timestamp"]} >= u.t0{upper}
        )
    """
    return sql, params


def _quantile_moments_sql(events_sql: str, vendor: str) -> str:
    """Per variant: units, ΣN, ΣN², ΣS, ΣS², ΣS·N, Q̂ (step 1 of the quantile metric)."""
    if vendor == "postgresql":
        qhat = (
            "qhat AS (SELECT variant, percentile_cont(%(q)s) WITHIN GROUP (ORDER BY v) AS qv"
            " FROM events GROUP BY variant)"
        )
    else:
        # As `_cap_ctes`: rank r = 0 .. N-1 per arm, h = (N - 1)·q, interpolate between the
        # values at ⌊h⌋ and ⌈h⌉.
        qhat = """
            ranked AS (
                SELECT variant, v, ROW_NUMBER() OVER (PARTITION BY variant ORDER BY v) - 1 AS r,
                       (COUNT(*) OVER (PARTITION BY variant) - 1) * %(q)s AS h
                FROM events
            ),
            bounds AS (
                SELECT variant, MAX(CASE WHEN r <= h THEN v END) AS lo_v,
                       MAX(CASE WHEN r <= h THEN r END) AS lo_r,
                       MIN(CASE WHEN r >= h THEN v END) AS hi_v, MAX(h) AS h
                FROM ranked GROUP BY variant
            ),
            qhat AS (SELECT variant, lo_v + (h - lo_r) * (hi_v - lo_v) AS qv FROM bounds)
        """
    return f"""
        WITH {events_sql}, {qhat},
        per_unit AS (
            SELECT e.variant AS variant, COUNT(*) AS n_i,
                   SUM(CASE WHEN e.v <= q.qv THEN 1 ELSE 0 END) AS s_i
            FROM events e JOIN qhat q ON q.variant = e.variant
            GROUP BY e.uid, e.variant
        ),
        arms AS (
            SELECT variant, SUM(n_i) AS nn, SUM(n_i * n_i) AS nn2, SUM(s_i) AS ss,
                   SUM(s_i * s_i) AS ss2, SUM(s_i * n_i) AS sn
            FROM per_unit GROUP BY variant
        ),
        unit_counts AS (SELECT variant, COUNT(*) AS units FROM units GROUP BY variant)
        SELECT c.variant, c.units, a.nn, a.nn2, a.ss, a.ss2, a.sn, q.qv
        FROM unit_counts c
        LEFT JOIN arms a ON a.variant = c.variant
        LEFT JOIN qhat q ON q.variant = c.variant
    """


def _event_quantiles(
    events_sql: str,
    params: dict[str, Any],
    probabilities: dict[str, tuple[float, float]],
    vendor: str,
) -> dict[str, tuple[float, float]]:
    """Per variant, the event quantiles at its two probabilities (step 2), in one query."""
    params = dict(params)
    wanted = []
    for i, (key, (low, high)) in enumerate(probabilities.items()):
        params.update({f"pv_{i}": key, f"plo_{i}": low, f"phi_{i}": high})
        wanted.append(i)
    if vendor == "postgresql":
        columns = ", ".join(
            f"percentile_cont(CAST(%({bound}_{i})s AS DOUBLE PRECISION)) WITHIN GROUP (ORDER BY v)"
            f" FILTER (WHERE variant = %(pv_{i})s)"
            for i in wanted
            for bound in ("plo", "phi")
        )
        sql = f"WITH {events_sql} SELECT {columns} FROM events"
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            row = cursor.fetchone()
        return {
            key: (float(row[2 * i]), float(row[2 * i + 1]))
            for i, key in enumerate(probabilities)
        }
    fractions = " UNION ALL ".join(
        f"SELECT %(pv_{i})s AS variant, {tag} AS tag, %({bound}_{i})s AS p"
        for i in wanted
        for tag, bound in ((0, "plo"), (1, "phi"))
    )
    sql = f"""
        WITH {events_sql},
        fractions AS ({fractions}),
        ranked AS (
            SELECT variant, v, ROW_NUMBER() OVER (PARTITION BY variant ORDER BY v) - 1 AS r,
                   COUNT(*) OVER (PARTITION BY variant) AS c
            FROM events
        ),
        positioned AS (
            SELECT f.variant AS variant, f.tag AS tag, k.v AS v, k.r AS r, (k.c - 1) * f.p AS h
            FROM ranked k JOIN fractions f ON f.variant = k.variant
        ),
        bounds AS (
            SELECT variant, tag, MAX(CASE WHEN r <= h THEN v END) AS lo_v,
                   MAX(CASE WHEN r <= h THEN r END) AS lo_r,
                   MIN(CASE WHEN r >= h THEN v END) AS hi_v, MAX(h) AS h
            FROM positioned GROUP BY variant, tag
        )
        SELECT variant, tag, lo_v + (h - lo_r) * (hi_v - lo_v) FROM bounds
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        found = {(variant, int(tag)): float(value) for variant, tag, value in cursor.fetchall()}
    return {key: (found[(key, 0)], found[(key, 1)]) for key in probabilities}


def _cap_ctes(column: str, analysed: str, vendor: str) -> list[tuple[str, str]]:
    """CTE(s) ending in ``cap_<column>(v)``: the percentile of the column over analysed units."""
    if vendor == "postgresql":
        body = (
            f"SELECT percentile_cont(%(fraction)s) WITHIN GROUP (ORDER BY {column}) AS v"
            f" FROM per_unit {analysed}"
        )
        return [(f"cap_{column}", body)]
    # Elsewhere: rank the values (r = 0 .. N-1), h = (N - 1)·p, interpolate between the values
    # at ⌊h⌋ and ⌈h⌉. ⌊h⌋ is found as the largest rank not above h, avoiding FLOOR (optional in
    # SQLite builds) and float-to-integer casts (which round on some databases).
    ranked = (
        f"SELECT {column} AS v, ROW_NUMBER() OVER (ORDER BY {column}) - 1 AS r,"
        f" (COUNT(*) OVER () - 1) * %(fraction)s AS h FROM per_unit {analysed}"
    )
    bounds = (
        "SELECT MAX(CASE WHEN r <= h THEN v END) AS lo_v,"
        " MAX(CASE WHEN r <= h THEN r END) AS lo_r,"
        " MIN(CASE WHEN r >= h THEN v END) AS hi_v, MAX(h) AS h"
        f" FROM rank_{column}"
    )
    cap = f"SELECT lo_v + (h - lo_r) * (hi_v - lo_v) AS v FROM bounds_{column}"
    return [
        (f"rank_{column}", ranked),
        (f"bounds_{column}", bounds),
        (f"cap_{column}", cap),
    ]


def latest_snapshot(*, experiment: Experiment) -> Snapshot | None:
    return (
        Snapshot.objects.filter(experiment=experiment, state=SnapshotState.DONE)
        .order_by("-computed_at", "-id")
        .first()
    )


def unit_values_sql(
    *, experiment: Experiment, metrics: Sequence[Metric], vendor: str | None = None
) -> tuple[str, dict[str, Any]]:
    """SQL giving one row per analysed unit: unit_id, variant, first_exposed_at, then one value
    per metric of `metrics`, in that order; rows in exposure order. Meant to be streamed.

    The units and per-unit values are those of `metric_variant_stats` (same filters, windows
    and aggregations), before winsorization, which is a property of the pooled analysis rather
    than of one unit. Units seen in more than one variant and exposures under a variant key the
    experiment does not define are left out. Per metric:

    - ``conversion``: 1 if the unit had the event at or after its first exposure, else 0;
    - ``count`` / ``sum``: the number / total of such events, 0 without any;
    - ``mean``: their mean value, NULL for a unit without such events (not analysed);
    - ``ratio``: numerator total / denominator total, NULL when the denominator total is 0
      (the analysis itself works on both totals, summed over units), followed by two more
      values: the unit's numerator total and its denominator total (0 without events);
    - ``quantile``: NULL (an event-level quantile is defined per arm, not per unit).

    A metric's ``conversion_window_hours`` bounds all its events, as in the analysis. The first
    exposure time comes back as a datetime on PostgreSQL and as UTC text on SQLite.
    """
    vendor = vendor or connection.vendor
    qn = connection.ops.quote_name
    exposure, outcome = Exposure._meta, Outcome._meta
    fields = (*exposure.concrete_fields, *outcome.concrete_fields)
    col = {f.name: qn(f.column or "") for f in fields}
    variant_keys = list(experiment.variants.values_list("key", flat=True))
    params: dict[str, Any] = {"experiment_id": experiment.pk, "multiple": False}
    params.update({f"variant_{i}": key for i, key in enumerate(variant_keys)})
    known = ", ".join(f"%(variant_{i})s" for i in range(len(variant_keys))) or "NULL"
    # The exposure table is read directly (not through a subquery) and grouped by its primary
    # key alone, so PostgreSQL knows the other columns follow from it and needs no sort on
    # the text columns; rows then come in primary-key order.
    unit_id, t0 = f"u.{col['unit_id']}", f"u.{col['first_exposed_at']}"
    select = f"SELECT {unit_id}, u.{col['variant']}, {t0}"
    exposures = f"FROM {qn(exposure.db_table)} u"
    where = f"""
        WHERE u.{col["experiment"]} = %(experiment_id)s
          AND u.{col["multiple_variants"]} = %(multiple)s
          AND u.{col["variant"]} IN ({known})
    """
    order = f"ORDER BY u.{col['id']}"
    if not metrics:
        return f"{select} {exposures} {where} {order}", params

    names = sorted(
        {m.event for m in metrics} | {m.denominator_event for m in metrics if m.denominator_event}
    )
    params.update({f"name_{i}": name for i, name in enumerate(names)})
    values = []
    for i, metric in enumerate(metrics):
        params[f"event_{i}"] = metric.event
        params[f"denominator_{i}"] = metric.denominator_event or metric.event
        params[f"window_{i}"] = metric.conversion_window_hours
        # The join keeps only outcomes at or after the exposure; the window closes the range.
        window = ""
        if metric.conversion_window_hours is not None:
            window = f" AND o.ts < {shifted(t0, f'window_{i}', vendor)}"
        hit = f"o.name = %(event_{i})s{window}"
        aggregation = metric.aggregation
        if aggregation == Aggregation.CONVERSION:
            value = f"CAST(MAX(CASE WHEN {hit} THEN 1 ELSE 0 END) AS BIGINT)"
        elif aggregation == Aggregation.COUNT:
            value = f"CAST(COUNT(CASE WHEN {hit} THEN 1 END) AS BIGINT)"
        elif aggregation == Aggregation.SUM:
            value = f"CAST(SUM(CASE WHEN {hit} THEN o.value ELSE 0 END) AS DOUBLE PRECISION)"
        elif aggregation == Aggregation.MEAN:
            value = (
                f"CAST(SUM(CASE WHEN {hit} THEN o.value END) AS DOUBLE PRECISION)"
                f" / NULLIF(COUNT(CASE WHEN {hit} THEN 1 END), 0)"
            )
        elif aggregation == Aggregation.RATIO:
            below = f"o.name = %(denominator_{i})s{window}"
            numerator = f"CAST(SUM(CASE WHEN {hit} THEN o.value ELSE 0 END) AS DOUBLE PRECISION)"
            denominator = (
                f"CAST(SUM(CASE WHEN {below} THEN o.value ELSE 0 END) AS DOUBLE PRECISION)"
            )
            value = (
                f"{numerator} / NULLIF({denominator}, 0) AS m_{i},"
                f" {numerator} AS m_{i}_numerator, {denominator} AS m_{i}_denominator"
            )
            values.append(value)
            continue
        elif aggregation == Aggregation.QUANTILE:
            # An event-level quantile is a property of the arm's pooled events, not of a unit.
            value = "CAST(NULL AS DOUBLE PRECISION)"
        else:
            raise ValueError(f"unknown aggregation {aggregation!r}")
        values.append(f"{value} AS m_{i}")

    # Outcomes are renamed in a subquery as in `_metric_sql`, so o.ts / o.name / o.value work
    # whatever the real column names are.
    outcomes = (
        f"(SELECT {col['unit_id']} AS unit_id, {col['name']} AS name, {col['value']} AS value,"
        f" {col['timestamp']} AS ts FROM {qn(outcome.db_table)})"
    )
    in_names = ", ".join(f"%(name_{i})s" for i in range(len(names)))
    sql = f"""
        {select}, {", ".join(values)}
        {exposures}
        LEFT JOIN {outcomes} o
          ON o.name IN ({in_names}) AND o.unit_id = {unit_id} AND o.ts >= {t0}
        {where}
        GROUP BY u.{col["id"]}
        {order}
    """
    return sql, params
