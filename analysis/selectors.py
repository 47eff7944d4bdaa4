"""Reads for the analysis: per-variant sufficient statistics, computed inside the database.

`metric_variant_stats` reduces an experiment's exposures and outcomes to one `VariantStats` per
variant with a single SQL query; no exposure or outcome row is ever loaded into Python, so memory
stays flat however many units an experiment has. The SQL itself (which events count, CUPED,
winsorization, quantiles, the unit export's values, the time-bounded scans) is written once in
`analysis.metric_sql`; this module reads the experiment's `Scope`, runs that SQL and turns the
rows into results. Exposures whose variant key is not one of the experiment's variants are
ignored.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.db import connection
from django.db.models import Count, Q, Subquery, Sum
from django.db.models.functions import TruncDate

from analysis import metric_sql
from analysis.metric_sql import Scope
from analysis.models import Snapshot, SnapshotState
from core.sql import POSTGRESQL
from events.models import Exposure
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
    scope = metric_scope(experiment=experiment)
    variant_keys = scope.variant_keys
    is_ratio = metric.aggregation == Aggregation.RATIO
    with_covariate = cuped and not is_ratio and metric.cuped_lookback_days > 0
    sql, params = metric_sql.totals_sql(
        scope, metric, with_covariate=with_covariate, vendor=connection.vendor
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
    """A quantile metric's arms (docs/api.md §6) as sufficient statistics, keyed by variant.

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
    scope = metric_scope(experiment=experiment)
    variant_keys = scope.variant_keys
    vendor = connection.vendor
    events_sql, params = metric_sql.quantile_events_sql(scope, metric, vendor)
    params["q"] = metric.quantile
    sql = metric_sql.quantile_moments_sql(events_sql, vendor)
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


def metric_scope(*, experiment: Experiment) -> Scope:
    """`experiment`'s variant keys and the first and last exposure of its analysed units: what
    bounds every metric query (`analysis.metric_sql`), read in one query."""
    exposures = Exposure.objects.filter(experiment=experiment.pk, multiple_variants=False)
    # ORDER BY ... LIMIT 1 rather than MIN/MAX: PostgreSQL reads one entry of exposure_by_time.
    first = exposures.order_by("first_exposed_at").values("first_exposed_at")[:1]
    last = exposures.order_by("-first_exposed_at").values("first_exposed_at")[:1]
    rows = list(
        experiment.variants.order_by("position", "id")
        .annotate(first=Subquery(first), last=Subquery(last))
        .values_list("key", "first", "last")
    )
    return Scope(
        experiment_id=experiment.pk,
        variant_keys=tuple(key for key, _, _ in rows),
        first_exposure=rows[0][1] if rows else None,
        last_exposure=rows[0][2] if rows else None,
    )


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
    scope = metric_scope(experiment=experiment)
    sql, params = metric_sql.totals_sql(
        scope, metric, with_covariate=False, vendor=connection.vendor, caps_only=True
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    names = ["y", "d"] if metric.aggregation == Aggregation.RATIO else ["y"]
    return {name: (None if v is None else float(v)) for name, v in zip(names, row, strict=True)}


def _event_quantiles(
    events_sql: str,
    params: dict[str, Any],
    probabilities: dict[str, tuple[float, float]],
    vendor: str,
) -> dict[str, tuple[float, float]]:
    """Per variant, the event quantiles at its two probabilities (step 2), in one query."""
    sql, params = metric_sql.event_quantiles_sql(events_sql, params, probabilities, vendor)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        if vendor == POSTGRESQL:
            row = cursor.fetchone()
            return {
                key: (float(row[2 * i]), float(row[2 * i + 1]))
                for i, key in enumerate(probabilities)
            }
        found = {(variant, int(tag)): float(value) for variant, tag, value in cursor.fetchall()}
    return {key: (found[(key, 0)], found[(key, 1)]) for key in probabilities}


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
    scope = metric_scope(experiment=experiment)
    return metric_sql.unit_values_sql(scope, metrics, vendor or connection.vendor)
