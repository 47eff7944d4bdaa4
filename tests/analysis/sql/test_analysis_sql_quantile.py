"""quantile_variant_stats: the SQL quantile metric against numpy over the raw rows.

Runs on SQLite by default and on PostgreSQL with DATABASE_URL set (scripts/test.sh does both):
PostgreSQL computes Q̂ with percentile_cont, SQLite with window functions; both must equal
numpy's default (``linear``) quantile of every event of the arm's analysed units, and the
clustered standard error must equal the one recomputed here with numpy from the same events
(Deng, Knoblich & Lu 2018: delta-method σ of the share of events ≤ Q̂ over units, the event
quantiles at q ± 1.96σ, SE = their distance / (2·1.96)).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.selectors import quantile_variant_stats
from analysis.stats.inputs import check_variants
from tests.analysis.sql import synthetic

pytestmark = pytest.mark.django_db
Z = 1.959963984540054


@pytest.fixture
def data(db) -> synthetic.Synthetic:
    return synthetic.build()


def _arm_events(data: synthetic.Synthetic, event: str, window_hours: int | None):
    """{variant: (values, unit index, units)} from the raw rows, unit by unit."""
    units = data.exposures[~data.exposures["multiple_variants"]]
    by_unit = {uid: frame for uid, frame in data.outcomes.groupby("unit_id")}
    arms: dict[str, tuple[list[float], list[int], int]] = {}
    for key in data.experiment.variants.values_list("key", flat=True):
        values: list[float] = []
        index: list[int] = []
        mine = units[units["variant"] == key]
        for i, unit in enumerate(mine.itertuples()):
            o = by_unit.get(unit.unit_id)
            if o is None:
                continue
            keep = (o["name"] == event) & (o["timestamp"] >= unit.first_exposed_at)
            if window_hours is not None:
                keep &= o["timestamp"] < unit.first_exposed_at + pd.Timedelta(hours=window_hours)
            picked = o.loc[keep, "value"].to_numpy()
            values.extend(picked.tolist())
            index.extend([i] * picked.size)
        arms[key] = (values, index, len(mine))
    return arms


def _numpy_oracle(values: list[float], index: list[int], units: int, q: float):
    v, u = np.array(values), np.array(index, dtype=int)
    estimate = np.quantile(v, q)
    n_i = np.bincount(u, minlength=units).astype(float)
    s_i = np.bincount(u, weights=(v <= estimate).astype(float), minlength=units)
    r = s_i.sum() / n_i.sum()
    cov = np.cov(np.vstack([s_i, n_i]))  # unbiased, over units
    per_unit = (cov[0, 0] - 2 * r * cov[0, 1] + r * r * cov[1, 1]) / n_i.mean() ** 2
    sd = np.sqrt(per_unit / units)
    low, high = np.quantile(v, [max(0.0, q - Z * sd), min(1.0, q + Z * sd)])
    return estimate, (high - low) / (2 * Z)


@pytest.mark.parametrize(("q", "window"), [(0.95, None), (0.5, None), (0.9, 48)])
def test_quantile_variant_stats__matches_numpy_on_raw_events(data, q, window) -> None:
    # Given a quantile metric over the synthetic events (out of order, before exposure,
    # multi-variant units, other experiments, strangers)
    metric = synthetic.metric("quantile", quantile=q, conversion_window_hours=window)
    # When the database computes it per variant
    stats = quantile_variant_stats(experiment=data.experiment, metric=metric)
    arms = _arm_events(data, synthetic.EVENT, window)
    for key, (values, index, units) in arms.items():
        got = stats[key]
        assert got.n == units
        if not values:
            assert got.sum == 0.0
            continue
        estimate, se = _numpy_oracle(values, index, units, q)
        # Then the arm's mean is numpy's quantile of its events
        assert got.sum / got.n == pytest.approx(estimate, rel=1e-9)
        # and the variance of that mean is the clustered SE² recomputed with numpy
        variance_of_mean = (got.sum_squares - got.sum**2 / got.n) / (got.n - 1) / got.n
        assert variance_of_mean == pytest.approx(se**2, rel=1e-6, abs=1e-12)
    check_variants("mean", list(stats.values()))


def test_quantile_variant_stats__difference_of_p95s_equals_numpy(data) -> None:
    metric = synthetic.metric("quantile", quantile=0.95)
    stats = quantile_variant_stats(experiment=data.experiment, metric=metric)
    arms = _arm_events(data, synthetic.EVENT, None)
    control, treatment = (np.quantile(arms[k][0], 0.95) for k in ("control", "treatment"))
    got = stats["treatment"].sum / stats["treatment"].n - stats["control"].sum / stats["control"].n
    assert got == pytest.approx(treatment - control, rel=1e-9)


def test_quantile_variant_stats__variant_without_events__zero_spread(db) -> None:
    from tests.factories import make_experiment

    experiment = make_experiment("empty")
    metric = synthetic.metric("quantile", quantile=0.95)
    stats = quantile_variant_stats(experiment=experiment, metric=metric)
    assert all(s.n == 0 and s.sum == 0.0 for s in stats.values())
