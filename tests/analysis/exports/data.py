"""An experiment with awkward raw data, and pandas oracles for the `units` and `events` exports.

The oracles read the raw rows back through the ORM and recompute every per-unit value with
pandas merges and group-bys from docs/api.md §6's definitions: they share no code with the SQL.
"""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass

import numpy as np
import pandas as pd

from events.models import Exposure, ExposureEvent, Outcome
from experiments.models import Experiment, Metric
from tests.factories import MetricFactory, make_experiment

START = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
PURCHASE, SESSION, CLICK = "purchase", "session", "click"
# key → (aggregation, event, denominator event, conversion window hours)
METRICS = {
    "converted": ("conversion", PURCHASE, "", None),
    "clicks": ("count", CLICK, "", None),
    "revenue": ("sum", PURCHASE, "", 72),
    "basket": ("mean", PURCHASE, "", 48),
    "per-session": ("ratio", PURCHASE, SESSION, 24),
}


@dataclass
class Built:
    experiment: Experiment
    metrics: list[Metric]


def build(units: int = 120, seed: int = 5) -> Built:
    """Exposures (some multiple-variant, one under an unknown variant key), raw exposure events,
    and outcomes before, at, inside and after each unit's windows; a second experiment and an
    unexposed unit must not leak in."""
    rng = np.random.default_rng(seed)
    metrics = [
        MetricFactory(
            key=key,
            aggregation=aggregation,
            event=event,
            denominator_event=denominator,
            conversion_window_hours=window,
            cuped_lookback_days=0,
        )
        for key, (aggregation, event, denominator, window) in METRICS.items()
    ]
    roles = ["primary", "secondary", "guardrail", "secondary", "secondary"]
    experiment = make_experiment(
        "shop",
        metrics=[{"metric": m.key, "role": r} for m, r in zip(metrics, roles, strict=True)],
    )
    other = make_experiment("other")

    exposures, events, outcomes = [], [], []
    for i in range(units):
        uid = f"u{i:04d}"
        t0 = START + dt.timedelta(microseconds=int(rng.integers(0, 5 * 86_400 * 10**6)))
        variant = "ghost" if i == 7 else ("control", "treatment")[int(rng.integers(0, 2))]
        exposures.append(
            Exposure(
                experiment=experiment,
                unit_id=uid,
                variant=variant,
                first_exposed_at=t0,
                multiple_variants=i % 17 == 3,
            )
        )
        for k in range(int(rng.integers(1, 3))):
            events.append(
                ExposureEvent(
                    event_id=f"x-{uid}-{k}",
                    experiment=experiment,
                    unit_id=uid,
                    variant=variant,
                    timestamp=t0 + dt.timedelta(minutes=k),
                )
            )
        if i % 5 == 4:
            continue  # a unit without any outcome
        for name, rate in ((PURCHASE, 1.5), (SESSION, 2.0), (CLICK, 2.5)):
            for _ in range(int(rng.poisson(rate))):
                offset = dt.timedelta(microseconds=int(rng.integers(-2, 5) * 86_400 * 10**6))
                offset += dt.timedelta(microseconds=int(rng.integers(0, 86_400 * 10**6)))
                outcomes.append((uid, name, round(float(rng.lognormal(2, 1)), 3), t0 + offset))
        if i % 6 == 0:  # edges: at the exposure (in), at the window ends (out)
            outcomes += [
                (uid, PURCHASE, 4.0, t0),
                (uid, SESSION, 2.0, t0 + dt.timedelta(hours=24)),
                (uid, PURCHASE, 8.0, t0 + dt.timedelta(hours=48)),
                (uid, PURCHASE, 9.0, t0 - dt.timedelta(microseconds=1)),
            ]
    exposures += [
        Exposure(experiment=other, unit_id=f"u{i:04d}", variant="control", first_exposed_at=START)
        for i in range(0, units, 4)
    ]
    events.append(
        ExposureEvent(
            event_id="x-other",
            experiment=other,
            unit_id="u0000",
            variant="control",
            timestamp=START,
        )
    )
    outcomes.append(("stranger", PURCHASE, 1.0, START))
    Exposure.objects.bulk_create(exposures)
    ExposureEvent.objects.bulk_create(events)
    Outcome.objects.bulk_create(
        [
            Outcome(event_id=f"o-{k}", unit_id=u, name=n, value=v, timestamp=t)
            for k, (u, n, v, t) in enumerate(outcomes)
        ]
    )
    return Built(experiment=experiment, metrics=metrics)


def expected_units(built: Built) -> pd.DataFrame:
    """The `units` export recomputed in pandas, sorted by unit_id."""
    exp = built.experiment
    variants = set(exp.variants.values_list("key", flat=True))
    units = pd.DataFrame.from_records(
        list(
            Exposure.objects.filter(experiment=exp).values(
                "unit_id", "variant", "first_exposed_at", "multiple_variants"
            )
        )
    )
    units = units[~units["multiple_variants"] & units["variant"].isin(variants)]
    units = units.drop(columns="multiple_variants").sort_values("unit_id", ignore_index=True)
    units["first_exposed_at"] = pd.to_datetime(units["first_exposed_at"], utc=True)
    outcomes = pd.DataFrame.from_records(
        list(Outcome.objects.values("unit_id", "name", "value", "timestamp"))
    )
    outcomes["timestamp"] = pd.to_datetime(outcomes["timestamp"], utc=True)
    joined = units[["unit_id", "first_exposed_at"]].merge(outcomes, on="unit_id")
    after = joined[joined["timestamp"] >= joined["first_exposed_at"]]

    def events(name: str, window: int | None) -> pd.DataFrame:
        rows = after[after["name"] == name]
        if window is not None:
            rows = rows[rows["timestamp"] < rows["first_exposed_at"] + pd.Timedelta(hours=window)]
        return rows.groupby("unit_id")["value"]

    result = units.set_index("unit_id")
    for metric in built.metrics:
        window = metric.conversion_window_hours
        grouped = events(metric.event, window)
        if metric.aggregation == "conversion":
            column = (grouped.size() > 0).astype("int64")
        elif metric.aggregation == "count":
            column = grouped.size()
        elif metric.aggregation == "sum":
            column = grouped.sum()
        elif metric.aggregation == "mean":
            column = grouped.mean()
        else:
            numerator = grouped.sum().reindex(result.index, fill_value=0.0)
            denominator = events(metric.denominator_event, window).sum()
            denominator = denominator.reindex(result.index, fill_value=0.0)
            column = numerator / denominator.where(denominator != 0)
        column = column.reindex(result.index)
        parts = {}
        if metric.aggregation == "ratio":
            # The dashboard's ratio is Σnumerator / Σdenominator: both parts per unit.
            parts = {"numerator": numerator, "denominator": denominator}
        if metric.aggregation in ("conversion", "count"):
            column = column.fillna(0).astype("int64")
        elif metric.aggregation == "sum":
            column = column.fillna(0.0)
        result[metric.key] = column.astype("float64" if column.dtype.kind == "f" else "int64")
        for part, values in parts.items():
            result[f"{metric.key}_{part}"] = values.astype("float64")
    return result.reset_index()


def expected_events(built: Built) -> pd.DataFrame:
    """The `events` export recomputed from the raw tables, sorted by (type, event_id)."""
    exp = built.experiment
    exposures = pd.DataFrame.from_records(
        list(
            ExposureEvent.objects.filter(experiment=exp).values(
                "event_id", "unit_id", "variant", "timestamp"
            )
        )
    ).assign(type="exposure", name=None, value=np.nan)
    first = dict(Exposure.objects.filter(experiment=exp).values_list("unit_id", "variant"))
    outcomes = pd.DataFrame.from_records(
        list(Outcome.objects.values("event_id", "unit_id", "name", "value", "timestamp"))
    )
    outcomes = outcomes[outcomes["unit_id"].isin(first)].assign(type="outcome")
    outcomes["variant"] = outcomes["unit_id"].map(first)
    frame = pd.concat([exposures, outcomes], ignore_index=True).assign(experiment=exp.key)
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    columns = ["event_id", "type", "unit_id", "experiment", "variant", "name", "value"]
    frame = frame[[*columns, "timestamp"]]
    return frame.sort_values(["type", "event_id"], ignore_index=True)


def read_csv(content: bytes, timestamp: str | None) -> pd.DataFrame:
    frame = pd.read_csv(io.BytesIO(content), dtype={"unit_id": str, "event_id": str})
    if timestamp:
        frame[timestamp] = pd.to_datetime(frame[timestamp], utc=True, format="ISO8601")
    return frame
