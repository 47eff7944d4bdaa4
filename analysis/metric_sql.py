"""The metric SQL: one per-unit value builder that every metric query composes, both dialects.

Every number the analysis and the unit export show starts from the same per-unit values
(docs/api.md §6): the experiment's analysed units (``units``: one row per unit, minus units seen
in more than one variant and exposures under a variant key the experiment does not define),
joined to their outcomes, aggregated per unit. This module writes that SQL once:

- `metric_terms`: a metric's per-unit aggregates over the join (y after exposure, x in the CUPED
  lookback, d the ratio denominator) — the one place the counting rules live;
- `metric_join`: which outcome rows of a unit a single-metric query joins;
- `scoped_outcomes`: the outcome rows any query reads, bounded by name and by time (below);

and composes them into the four consumers: `totals_sql` (per-variant n, Σ, Σ², cross sums;
optionally winsorized, or only the caps), `quantile_events_sql` (+ `quantile_moments_sql`,
`event_quantiles_sql`: the quantile metric's event values), and `unit_values_sql` (the export's
one row per unit). The functions return SQL text and its parameters; `analysis.selectors` runs
them. Nothing here queries the database.

Bounded scans. An outcome can only count for a unit if its time is in
``[t0 − lookback, t0 + window)``, t0 the unit's first exposure. So every query reads outcomes
only from (the experiment's first exposure − the lookback) to (its last exposure + the
conversion window), and only of the metric's event names: `Scope` carries the experiment's first
and last exposure (read with the variant keys, one query), and the ``outcome_by_name_time``
index serves the range. The bound is derived from the exposures themselves, not from
``started_at`` / ``stopped_at``: exposures are not clamped to the experiment's run, and a unit
exposed at stop − 1 s converts until stop − 1 s + window, so this bound never drops an event a
unit counts. Without a conversion window a metric counts every later event, so the scan has no
upper bound.

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

Timestamps: PostgreSQL shifts them with interval arithmetic. SQLite stores Django datetimes as
UTC text ``YYYY-MM-DD HH:MM:SS[.ffffff]``, which compares correctly as text; a shift is computed on
the whole seconds and the original fraction appended again, so it is exact to the microsecond
(SQLite's own date functions round to milliseconds). Scan bounds are computed in Python and
passed in the stored format.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connection

from core.sql import POSTGRESQL, shifted
from events.models import Exposure, Outcome
from experiments.models import Aggregation, Metric


@dataclass(frozen=True, slots=True)
class Scope:
    """The experiment a metric query is about: what bounds its units and its outcome scan."""

    experiment_id: int
    variant_keys: tuple[str, ...]  # the experiment's variants, in position order
    # First exposure times of the analysed units: the earliest and the latest (None: no unit).
    first_exposure: dt.datetime | None
    last_exposure: dt.datetime | None


@dataclass(frozen=True, slots=True)
class ScanSpan:
    """Outcome times a query reads: ``start <= ts`` and, when `end` is set, ``ts < end``."""

    start: dt.datetime | None
    end: dt.datetime | None


def scan_span(scope: Scope, metrics: Sequence[Metric], *, with_covariate: bool) -> ScanSpan:
    """The outcome times any of `metrics` can count for a unit of `scope` (module docstring)."""
    if scope.first_exposure is None or scope.last_exposure is None:
        return ScanSpan(None, None)  # no analysed unit: the join finds nothing anyway
    lookback = max((m.cuped_lookback_days for m in metrics), default=0) if with_covariate else 0
    windows = [m.conversion_window_hours for m in metrics]
    end = None
    if windows and all(w is not None for w in windows):
        end = scope.last_exposure + dt.timedelta(hours=max(w for w in windows if w is not None))
    return ScanSpan(scope.first_exposure - dt.timedelta(days=lookback), end)


@dataclass(frozen=True, slots=True)
class MetricTerms:
    """A metric's per-unit aggregates over ``units u JOIN outcomes o`` grouped by unit."""

    y: str  # the metric after exposure (NULL for a mean without events)
    x: str  # the same in the CUPED lookback ("0" when unused)
    d: str  # a ratio's denominator total ("0" otherwise)


# --- The rules ---------------------------------------------------------------------------------


def _columns() -> dict[str, str]:
    qn = connection.ops.quote_name
    fields = (*Exposure._meta.concrete_fields, *Outcome._meta.concrete_fields)
    return {f.name: qn(f.column or "") for f in fields}


def _tables() -> tuple[str, str]:
    qn = connection.ops.quote_name
    return qn(Exposure._meta.db_table), qn(Outcome._meta.db_table)


def metric_params(metric: Metric, tag: str = "") -> dict[str, Any]:
    """The parameters `metric_terms` and `metric_join` use for `metric` (names end in `tag`)."""
    return {
        f"event{tag}": metric.event,
        f"denominator_event{tag}": metric.denominator_event or metric.event,
        f"window_hours{tag}": metric.conversion_window_hours,
        f"lookback_hours{tag}": -24 * metric.cuped_lookback_days,
    }


def _window_end(metric: Metric, t0: str, tag: str, vendor: str) -> str:
    """`` AND o.ts < <end of the conversion window>``, or nothing without a window."""
    if metric.conversion_window_hours is None:
        return ""
    return f" AND o.ts < {shifted(t0, f'window_hours{tag}', vendor)}"


def metric_join(metric: Metric, *, with_covariate: bool, vendor: str, tag: str = "") -> str:
    """The join condition of one metric's outcomes ``o`` to a unit ``u``: its event names, in
    ``[t0 (or t0 − lookback), end of the conversion window)``."""
    is_event = f"o.name = %(event{tag})s"
    names = (
        f"o.name IN (%(event{tag})s, %(denominator_event{tag})s)"
        if metric.aggregation == Aggregation.RATIO
        else is_event
    )
    lower = shifted("u.t0", f"lookback_hours{tag}", vendor) if with_covariate else "u.t0"
    upper = _window_end(metric, "u.t0", tag, vendor)
    return f"{names} AND o.unit_id = u.unit_id AND o.ts >= {lower}{upper}"


def metric_terms(
    metric: Metric,
    *,
    with_covariate: bool,
    vendor: str,
    tag: str = "",
    joined: bool = True,
    t0: str = "u.t0",
) -> MetricTerms:
    """The per-unit values of `metric` (docs/api.md §6), as aggregates over the unit's outcomes.

    `joined`: the outcomes were joined with `metric_join` of this metric, so the names and the
    window are already checked there and only before/after the exposure is left to tell apart.
    Otherwise (several metrics over one join of outcomes at or after exposure) each aggregate
    checks its own event name and window. `t0`: the SQL of the unit's first exposure time.
    """
    aggregation = metric.aggregation
    is_ratio = aggregation == Aggregation.RATIO
    post, pre = f"o.ts >= {t0}", f"o.ts < {t0}"
    event = "" if joined and not is_ratio else f" AND o.name = %(event{tag})s"
    if not joined:
        post += _window_end(metric, t0, tag, vendor)
    hit, before = post + event, pre + event

    def total(condition: str) -> str:
        return f"SUM(CASE WHEN {condition} THEN o.value ELSE 0 END)"

    def count(condition: str) -> str:
        return f"COUNT(CASE WHEN {condition} THEN 1 END)"

    if aggregation == Aggregation.CONVERSION:
        y = f"MAX(CASE WHEN {hit} THEN 1 ELSE 0 END)"
        x = f"MAX(CASE WHEN {before} THEN 1 ELSE 0 END)"
    elif aggregation == Aggregation.COUNT:
        y, x = count(hit), count(before)
    elif aggregation == Aggregation.SUM:
        y, x = total(hit), total(before)
    elif aggregation == Aggregation.MEAN:
        # Mean per unit: the unit's sum over its event count. x is 0 without pre-period events.
        y = f"{total(hit)} / NULLIF({count(hit)}, 0)"
        x = f"COALESCE({total(before)} / NULLIF({count(before)}, 0), 0)"
    elif is_ratio:
        y, x = total(hit), "0"
    else:
        raise ValueError(f"no per-unit value for aggregation {aggregation!r}")
    d = total(f"{post} AND o.name = %(denominator_event{tag})s") if is_ratio else "0"
    return MetricTerms(y=y, x=x if with_covariate else "0", d=d)


def units_filter(scope: Scope, params: dict[str, Any], alias: str) -> str:
    """The WHERE condition of the analysed units on the exposure table under `alias`; adds
    its parameters to `params`.

    Exposures under a variant key the experiment does not define are left out here, not only
    after grouping: otherwise their values would move the winsorization cap of the real arms.
    """
    col = _columns()
    params.update({"experiment_id": scope.experiment_id, "multiple": False})
    params.update({f"variant_{i}": key for i, key in enumerate(scope.variant_keys)})
    known = ", ".join(f"%(variant_{i})s" for i in range(len(scope.variant_keys))) or "NULL"
    return (
        f"{alias}.{col['experiment']} = %(experiment_id)s"
        f" AND {alias}.{col['multiple_variants']} = %(multiple)s"
        f" AND {alias}.{col['variant']} IN ({known})"
    )


def units_sql(scope: Scope, params: dict[str, Any]) -> str:
    """The analysed units (id, unit_id, variant, t0); adds its parameters to `params`."""
    col = _columns()
    e_table, _ = _tables()
    return f"""
        SELECT e.{col["id"]} AS id, e.{col["unit_id"]} AS unit_id, e.{col["variant"]} AS variant,
               e.{col["first_exposed_at"]} AS t0
        FROM {e_table} e
        WHERE {units_filter(scope, params, "e")}
    """


def scoped_outcomes(names: Sequence[str], span: ScanSpan, params: dict[str, Any]) -> str:
    """A subquery of the outcomes (unit_id, name, value, ts) of `names` within `span`.

    The columns are renamed so the rules above use o.ts / o.value / o.name whatever the real
    column names are; PostgreSQL flattens the subquery into the join.
    """
    col = _columns()
    _, o_table = _tables()
    distinct = sorted(set(names))
    params.update({f"scan_name_{i}": name for i, name in enumerate(distinct)})
    in_names = ", ".join(f"%(scan_name_{i})s" for i in range(len(distinct)))
    where = [f"{col['name']} IN ({in_names})"]
    adapt = connection.ops.adapt_datetimefield_value
    if span.start is not None:
        params["scan_start"] = adapt(span.start)
        where.append(f"{col['timestamp']} >= %(scan_start)s")
    if span.end is not None:
        params["scan_end"] = adapt(span.end)
        where.append(f"{col['timestamp']} < %(scan_end)s")
    return (
        f"(SELECT {col['unit_id']} AS unit_id, {col['name']} AS name, {col['value']} AS value,"
        f" {col['timestamp']} AS ts FROM {o_table} WHERE {' AND '.join(where)})"
    )


def _metric_names(metric: Metric) -> list[str]:
    if metric.aggregation == Aggregation.RATIO and metric.denominator_event:
        return [metric.event, metric.denominator_event]
    return [metric.event]


# --- Totals: per-variant sufficient statistics -------------------------------------------------

TOTALS = (
    "SUM(y) AS sy, SUM(y * y) AS syy, SUM(x) AS sx, SUM(x * x) AS sxx, SUM(x * y) AS sxy,"
    " SUM(d) AS sd, SUM(d * d) AS sdd, SUM(y * d) AS syd, SUM(y * y * y) AS syyy"
)


def totals_sql(
    scope: Scope, metric: Metric, *, with_covariate: bool, vendor: str, caps_only: bool = False
) -> tuple[str, dict[str, Any]]:
    """Per variant: n, Σy, Σy², Σx, Σx², Σxy, Σd, Σd², Σyd, Σy³ (winsorized if the metric is).

    `caps_only`: instead, one row with the winsorization caps (y, then d for a ratio; x is
    not asked for). Steps: analysed units; per unit y, x, d from their joined outcomes;
    optionally each column capped at its percentile over all analysed units; per-variant sums.
    """
    aggregation = metric.aggregation
    is_ratio = aggregation == Aggregation.RATIO
    params: dict[str, Any] = metric_params(metric)
    units_cte = units_sql(scope, params)
    span = scan_span(scope, [metric], with_covariate=with_covariate)
    outcomes = scoped_outcomes(_metric_names(metric), span, params)
    terms = metric_terms(metric, with_covariate=with_covariate, vendor=vendor)
    join = metric_join(metric, with_covariate=with_covariate, vendor=vendor)
    per_unit_cte = f"""
        SELECT u.variant AS variant,
               CAST({terms.y} AS DOUBLE PRECISION) AS y,
               CAST({terms.x} AS DOUBLE PRECISION) AS x,
               CAST({terms.d} AS DOUBLE PRECISION) AS d
        FROM units u
        LEFT JOIN {outcomes} o ON {join}
        GROUP BY u.id, u.variant
    """
    # Mean: units without events after exposure have y NULL and are not analysed.
    analysed = "WHERE y IS NOT NULL" if aggregation == Aggregation.MEAN else ""
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
                WHERE EXISTS (SELECT 1 FROM {outcomes} o WHERE {join})
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
                SELECT variant, {hits_n} AS n, {TOTALS} FROM hits {analysed} GROUP BY variant
                {units_n}
            ) AS t
            GROUP BY variant
        """
        return sql, params
    # With a cap, every unit's value (0 included) enters the percentile: one outer join.
    ctes = [("units", units_cte), ("per_unit", per_unit_cte)]
    params["fraction"] = percentile / 100.0
    capped = {"y": True, "x": with_covariate, "d": is_ratio}
    caps = [c for c, on in capped.items() if on]
    for column in caps:
        ctes.extend(_cap_ctes(column, analysed, vendor))
    if caps_only:
        with_clause = ",\n".join(f"{name} AS ({body})" for name, body in ctes)
        joins = " CROSS JOIN ".join(f"cap_{c}" for c in caps)
        columns = ", ".join(f"cap_{c}.v" for c in caps)
        return f"WITH {with_clause} SELECT {columns} FROM {joins}", params
    select = ", ".join(
        f"CASE WHEN p.{c} > cap_{c}.v THEN cap_{c}.v ELSE p.{c} END AS {c}"
        if c in caps
        else f"p.{c} AS {c}"
        for c in ("y", "x", "d")
    )
    joins = " ".join(f"CROSS JOIN cap_{c}" for c in caps)
    ctes.append(("capped", f"SELECT p.variant, {select} FROM per_unit p {joins}"))
    with_clause = ",\n".join(f"{name} AS ({body})" for name, body in ctes)
    sql = f"""
        WITH {with_clause}
        SELECT variant, COUNT(*), {TOTALS}
        FROM capped
        {analysed}
        GROUP BY variant
    """
    return sql, params


def _cap_ctes(column: str, analysed: str, vendor: str) -> list[tuple[str, str]]:
    """CTE(s) ending in ``cap_<column>(v)``: the percentile of the column over analysed units."""
    if vendor == POSTGRESQL:
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


# --- Quantile metrics: event values of analysed units ------------------------------------------


def quantile_events_sql(scope: Scope, metric: Metric, vendor: str) -> tuple[str, dict[str, Any]]:
    """SQL for the CTEs ``units`` (analysed units: id, unit_id, variant, t0) and ``events``
    (uid, variant, v): every event of the metric's name of an analysed unit, at or after its
    first exposure and before the end of the conversion window if set."""
    params: dict[str, Any] = metric_params(metric)
    units_cte = units_sql(scope, params)
    span = scan_span(scope, [metric], with_covariate=False)
    outcomes = scoped_outcomes([metric.event], span, params)
    join = metric_join(metric, with_covariate=False, vendor=vendor)
    sql = f"""
        units AS ({units_cte}),
        events AS (
            SELECT u.id AS uid, u.variant AS variant, CAST(o.value AS DOUBLE PRECISION) AS v
            FROM units u
            JOIN {outcomes} o ON {join}
        )
    """
    return sql, params


def quantile_moments_sql(events_sql: str, vendor: str) -> str:
    """Per variant: units, ΣN, ΣN², ΣS, ΣS², ΣS·N, Q̂ (step 1 of the quantile metric)."""
    if vendor == POSTGRESQL:
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


def event_quantiles_sql(
    events_sql: str,
    params: dict[str, Any],
    probabilities: dict[str, tuple[float, float]],
    vendor: str,
) -> tuple[str, dict[str, Any]]:
    """Per variant, the event quantiles at its two probabilities (step 2), in one query.

    PostgreSQL: one row, two columns per variant (low, high) in the order of `probabilities`.
    SQLite: rows (variant, tag, value), tag 0 for the low probability and 1 for the high one.
    """
    params = dict(params)
    for i, (key, (low, high)) in enumerate(probabilities.items()):
        params.update({f"pv_{i}": key, f"plo_{i}": low, f"phi_{i}": high})
    wanted = range(len(probabilities))
    if vendor == POSTGRESQL:
        columns = ", ".join(
            f"percentile_cont(CAST(%({bound}_{i})s AS DOUBLE PRECISION)) WITHIN GROUP (ORDER BY v)"
            f" FILTER (WHERE variant = %(pv_{i})s)"
            for i in wanted
            for bound in ("plo", "phi")
        )
        return f"WITH {events_sql} SELECT {columns} FROM events", params
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
    return sql, params


# --- The unit export: one row per analysed unit ------------------------------------------------


def unit_values_sql(
    scope: Scope, metrics: Sequence[Metric], vendor: str
) -> tuple[str, dict[str, Any]]:
    """One row per analysed unit: unit_id, variant, first_exposed_at, then per metric its value
    (a ratio: value, numerator, denominator), rows in exposure order; meant to be streamed.
    `analysis.selectors.unit_values_sql` documents the values."""
    col = _columns()
    e_table, _ = _tables()
    params: dict[str, Any] = {}
    # The exposure table is read directly (not through the `units` subquery) and grouped by
    # its primary key alone, so PostgreSQL knows the other columns follow from it and needs no
    # sort on the text columns; rows then come in primary-key order.
    where = units_filter(scope, params, "u")
    unit_id, t0 = f"u.{col['unit_id']}", f"u.{col['first_exposed_at']}"
    select = f"SELECT {unit_id}, u.{col['variant']}, {t0}"
    order = f"ORDER BY u.{col['id']}"
    if not metrics:
        return f"{select} FROM {e_table} u WHERE {where} {order}", params

    values = []
    for i, metric in enumerate(metrics):
        tag = f"_{i}"
        params.update(metric_params(metric, tag))
        if metric.aggregation == Aggregation.QUANTILE:
            # An event-level quantile is a property of the arm's pooled events, not of a unit.
            values.append(f"CAST(NULL AS DOUBLE PRECISION) AS m_{i}")
            continue
        terms = metric_terms(
            metric, with_covariate=False, vendor=vendor, tag=tag, joined=False, t0=t0
        )
        if metric.aggregation == Aggregation.RATIO:
            numerator = f"CAST({terms.y} AS DOUBLE PRECISION)"
            denominator = f"CAST({terms.d} AS DOUBLE PRECISION)"
            values.append(
                f"{numerator} / NULLIF({denominator}, 0) AS m_{i},"
                f" {numerator} AS m_{i}_numerator, {denominator} AS m_{i}_denominator"
            )
        elif metric.aggregation in (Aggregation.CONVERSION, Aggregation.COUNT):
            values.append(f"CAST({terms.y} AS BIGINT) AS m_{i}")
        else:
            values.append(f"CAST({terms.y} AS DOUBLE PRECISION) AS m_{i}")

    names = [name for m in metrics for name in _metric_names(m)]
    # The join keeps outcomes of the metrics' names at or after the exposure; each value
    # checks its own name and window.
    outcomes = scoped_outcomes(names, scan_span(scope, metrics, with_covariate=False), params)
    sql = f"""
        {select}, {", ".join(values)}
        FROM {e_table} u
        LEFT JOIN {outcomes} o ON o.unit_id = {unit_id} AND o.ts >= {t0}
        WHERE {where}
        GROUP BY u.{col["id"]}
        {order}
    """
    return sql, params
