"""Synthetic exposures and outcomes, and a numpy oracle for the SQL sufficient statistics.

The builder writes awkward data on purpose: outcomes inserted out of time order, events before
exposure (inside and outside the CUPED lookback), events exactly on the window edges, units
with no events, units seen in more than one variant, events of other names, another experiment
sharing unit ids, and unexposed units with events. The oracle reads the raw rows back into
pandas and recomputes every per-unit value with a plain loop over units: it shares no code with
the SQL, only the definitions in docs/api.md §6.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from events.models import Exposure, Outcome
from experiments.models import Experiment, Metric
from tests.factories import MetricFactory, make_experiment

START = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
MICROSECONDS_PER_DAY = 86_400 * 1_000_000
EVENT, DENOMINATOR, OTHER = "purchase", "session", "click"


@dataclass
class Synthetic:
    experiment: Experiment
    exposures: pd.DataFrame  # every exposure of `experiment`, as stored
    outcomes: pd.DataFrame  # every outcome in the database, as stored


def build(seed: int = 20240301, units: int = 300, **experiment: object) -> Synthetic:
    """Write one experiment's exposures and a mess of outcomes; return them read back."""
    rng = np.random.default_rng(seed)
    exp = make_experiment("exp", **experiment)
    keys = list(exp.variants.values_list("key", flat=True))
    other = make_experiment("other")

    unit_ids = [f"u{i:05d}" for i in range(units)]
    # First exposures spread over ten days, with microseconds, so fractions of a second matter.
    t0 = [START + _micros(rng.integers(0, 10 * MICROSECONDS_PER_DAY)) for _ in unit_ids]
    variant = rng.choice(keys[:2], size=units)  # a third variant, if any, gets no units
    multiple = rng.random(units) < 0.06
    exposures = [
        Exposure(
            experiment=exp,
            unit_id=uid,
            variant=str(variant[i]),
            first_exposed_at=t0[i],
            multiple_variants=bool(multiple[i]),
            exposure_count=int(rng.integers(1, 5)),
            mismatched_count=int(rng.integers(0, 3) if rng.random() < 0.1 else 0),
        )
        for i, uid in enumerate(unit_ids)
    ]
    # The same units in another experiment, exposed at other times: must not leak in.
    exposures += [
        Exposure(experiment=other, unit_id=uid, variant="control", first_exposed_at=START)
        for uid in unit_ids[::3]
    ]
    Exposure.objects.bulk_create(exposures)

    rows: list[tuple[str, str, float, dt.datetime]] = []
    silent = rng.random(units) < 0.15  # units with no events at all
    for i, uid in enumerate(unit_ids):
        if silent[i]:
            continue
        lift = 1.3 if variant[i] == "treatment" else 1.0
        for name, rate in ((EVENT, 2.5 * lift), (DENOMINATOR, 4.0), (OTHER, 2.0)):
            for _ in range(rng.poisson(rate)):
                # From 20 days before exposure (beyond a 14-day lookback) to 15 days after.
                offset = int(rng.integers(-20 * MICROSECONDS_PER_DAY, 15 * MICROSECONDS_PER_DAY))
                value = float(rng.lognormal(2.0, 1.2)) if name != OTHER else 1.0
                rows.append((uid, name, value, t0[i] + _micros(offset)))
        if i % 10 == 0:  # exact edges: at exposure (in), window end (out), lookback start (in)
            rows += [
                (uid, EVENT, 5.0, t0[i]),
                (uid, EVENT, 7.0, t0[i] + dt.timedelta(hours=24)),
                (uid, EVENT, 11.0, t0[i] - dt.timedelta(days=14)),
                (uid, EVENT, 13.0, t0[i] - dt.timedelta(microseconds=1)),
                (uid, DENOMINATOR, 2.0, t0[i] + dt.timedelta(hours=24, microseconds=-1)),
            ]
    for j in range(30):  # never exposed
        rows.append((f"stranger{j}", EVENT, 1.0, START + dt.timedelta(days=j % 10)))
    order = rng.permutation(len(rows))  # insert out of time order
    Outcome.objects.bulk_create(
        [
            Outcome(event_id=f"o-{k}", unit_id=u, name=n, value=v, timestamp=t)
            for k, (u, n, v, t) in ((int(k), rows[k]) for k in order)
        ],
        batch_size=2000,
    )
    return Synthetic(
        experiment=exp,
        exposures=_frame(
            Exposure.objects.filter(experiment=exp).values(
                "unit_id", "variant", "first_exposed_at", "multiple_variants", "mismatched_count"
            ),
            "first_exposed_at",
        ),
        outcomes=_frame(
            Outcome.objects.values("unit_id", "name", "value", "timestamp"), "timestamp"
        ),
    )


def metric(aggregation: str, **fields: object) -> Metric:
    defaults: dict[str, object] = {"event": EVENT, "cuped_lookback_days": 0}
    if aggregation == "ratio":
        defaults["denominator_event"] = DENOMINATOR
    return MetricFactory(aggregation=aggregation, **{**defaults, **fields})


def expected(data: Synthetic, metric: Metric, cuped: bool = True) -> dict[str, dict[str, float]]:
    """Per-variant totals recomputed from the raw rows, unit by unit."""
    units = data.exposures[~data.exposures["multiple_variants"]]
    by_unit = {uid: frame for uid, frame in data.outcomes.groupby("unit_id")}
    empty = data.outcomes.iloc[:0]
    ratio = metric.aggregation == "ratio"
    use_x = cuped and not ratio and metric.cuped_lookback_days > 0
    window = metric.conversion_window_hours
    lookback = pd.Timedelta(days=metric.cuped_lookback_days)

    keys, ys, xs, ds = [], [], [], []
    for unit in units.itertuples():
        o = by_unit.get(unit.unit_id, empty)
        t0, ts = unit.first_exposed_at, o["timestamp"]
        post = ts >= t0
        if window is not None:
            post &= ts < t0 + pd.Timedelta(hours=window)
        pre = (ts >= t0 - lookback) & (ts < t0)
        values = o["value"].to_numpy()
        y_values = values[(post & (o["name"] == metric.event)).to_numpy()]
        x_values = values[(pre & (o["name"] == metric.event)).to_numpy()]
        if metric.aggregation == "mean" and y_values.size == 0:
            continue  # a mean is defined only for units with events
        y, x = _aggregate(metric.aggregation, y_values), _aggregate(metric.aggregation, x_values)
        d = values[(post & (o["name"] == metric.denominator_event)).to_numpy()].sum()
        keys.append(unit.variant)
        ys.append(y)
        xs.append(x)
        ds.append(d)
    y, x, d, keys = np.array(ys), np.array(xs), np.array(ds), np.array(keys)
    if metric.winsorize_percentile is not None and metric.aggregation != "conversion":
        y = np.minimum(y, np.percentile(y, metric.winsorize_percentile))
        x = np.minimum(x, np.percentile(x, metric.winsorize_percentile)) if x.size else x
        d = np.minimum(d, np.percentile(d, metric.winsorize_percentile)) if d.size else d

    totals = {}
    for key in data.experiment.variants.values_list("key", flat=True):
        m = keys == key
        totals[key] = {"n": int(m.sum()), "sum": y[m].sum(), "sum_squares": (y[m] ** 2).sum()}
        if use_x:
            totals[key].update(
                covariate_sum=x[m].sum(),
                covariate_sum_squares=(x[m] ** 2).sum(),
                cross_sum=(x[m] * y[m]).sum(),
            )
        if ratio:
            totals[key].update(
                denominator_sum=d[m].sum(),
                denominator_sum_squares=(d[m] ** 2).sum(),
                cross_sum=(y[m] * d[m]).sum(),
            )
    return totals


def _aggregate(aggregation: str, values: np.ndarray) -> float:
    if aggregation == "conversion":
        return float(values.size > 0)
    if aggregation == "count":
        return float(values.size)
    if aggregation == "mean":
        return float(values.mean()) if values.size else 0.0  # no pre-period events: x = 0
    return float(values.sum())  # sum, and a ratio's numerator


def _frame(rows, time_column: str) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(list(rows))
    frame[time_column] = pd.to_datetime(frame[time_column], utc=True)
    return frame


def _micros(value: int | np.integer) -> dt.timedelta:
    return dt.timedelta(microseconds=int(value))
