"""metric_variant_stats: SQL sufficient statistics against a numpy oracle over the raw rows.

Runs on SQLite by default and on PostgreSQL with DATABASE_URL set (scripts/test.sh does both),
so both the vendor branches (time shifts, percentiles) meet the same oracle.
"""

from __future__ import annotations

import pytest

from analysis.selectors import metric_variant_stats
from analysis.stats.inputs import VariantStats, check_variants
from tests.analysis.sql import synthetic

pytestmark = pytest.mark.django_db

FIELDS = (
    "sum",
    "sum_squares",
    "covariate_sum",
    "covariate_sum_squares",
    "cross_sum",
    "denominator_sum",
    "denominator_sum_squares",
)


def assert_matches(stats: dict[str, VariantStats], expected: dict[str, dict[str, float]]) -> None:
    assert list(stats) == list(expected)
    for key, totals in expected.items():
        got = stats[key]
        assert got.key == key
        assert got.n == totals["n"], key
        for field in FIELDS:
            if field in totals:
                assert getattr(got, field) == pytest.approx(totals[field], rel=1e-9), (key, field)
            else:
                assert getattr(got, field) is None, (key, field)


@pytest.fixture
def data(db) -> synthetic.Synthetic:
    return synthetic.build()


@pytest.mark.parametrize("aggregation", ["conversion", "count", "sum", "mean", "ratio"])
def test_metric_variant_stats__each_aggregation__matches_numpy(data, aggregation) -> None:
    # Given the synthetic experiment and a metric without CUPED
    metric = synthetic.metric(aggregation)
    # When the database reduces it per variant
    stats = metric_variant_stats(experiment=data.experiment, metric=metric)
    # Then every total equals the unit-by-unit numpy oracle, and the engine accepts it
    assert_matches(stats, synthetic.expected(data, metric))
    metric_type = {"conversion": "proportion", "ratio": "ratio"}.get(aggregation, "mean")
    check_variants(metric_type, list(stats.values()))


def test_metric_variant_stats__mean__counts_only_units_with_events(data) -> None:
    # Given a mean metric and units that never had the event
    metric = synthetic.metric("mean")
    analysed = data.exposures[~data.exposures["multiple_variants"]]
    # When
    stats = metric_variant_stats(experiment=data.experiment, metric=metric)
    # Then fewer units than the exposed ones are analysed
    assert sum(s.n for s in stats.values()) < len(analysed)
    assert sum(s.n for s in stats.values()) > 0


@pytest.mark.parametrize("aggregation", ["conversion", "count", "sum", "mean"])
def test_metric_variant_stats__cuped_lookback__covariate_sums_match_numpy(
    data, aggregation
) -> None:
    # Given a 14-day lookback (events 20 days before exposure fall outside it)
    metric = synthetic.metric(aggregation, cuped_lookback_days=14)
    # When
    stats = metric_variant_stats(experiment=data.experiment, metric=metric)
    # Then Σx, Σx² and Σxy match the oracle, and the covariate is not trivially zero
    assert_matches(stats, synthetic.expected(data, metric))
    assert all(s.covariate_sum > 0 for s in stats.values())
    check_variants("proportion" if aggregation == "conversion" else "mean", list(stats.values()))


def test_metric_variant_stats__cuped_switched_off__no_covariate(data) -> None:
    # Given a metric with a lookback, and a caller that turns CUPED off
    metric = synthetic.metric("sum", cuped_lookback_days=7)
    # When
    stats = metric_variant_stats(experiment=data.experiment, metric=metric, cuped=False)
    # Then the covariate sums are None and y is unchanged
    assert_matches(stats, synthetic.expected(data, metric, cuped=False))
    assert not any(s.has_covariate for s in stats.values())


@pytest.mark.parametrize(
    ("aggregation", "percentile", "lookback"),
    [("sum", 95.0, 14), ("count", 90.0, 0), ("mean", 97.5, 14), ("ratio", 95.0, 0)],
)
def test_metric_variant_stats__winsorized__capped_at_numpy_linear_percentile(
    data, aggregation, percentile, lookback
) -> None:
    # Given a metric capped at a percentile of its per-unit values (heavy-tailed lognormal data)
    metric = synthetic.metric(
        aggregation, winsorize_percentile=percentile, cuped_lookback_days=lookback
    )
    uncapped = synthetic.metric(aggregation, cuped_lookback_days=lookback)
    # When
    stats = metric_variant_stats(experiment=data.experiment, metric=metric)
    # Then the totals are those of values capped at numpy.percentile(..., method="linear")
    assert_matches(stats, synthetic.expected(data, metric))
    raw = metric_variant_stats(experiment=data.experiment, metric=uncapped)
    assert all(stats[k].sum_squares < raw[k].sum_squares for k in stats)


def test_metric_variant_stats__winsorized_conversion__left_uncapped(data) -> None:
    # Given a conversion metric with a percentile set
    capped = synthetic.metric("conversion", winsorize_percentile=60.0)
    plain = synthetic.metric("conversion")
    # When / Then 0/1 values stay 0/1: the totals equal the uncapped ones
    assert metric_variant_stats(experiment=data.experiment, metric=capped) == metric_variant_stats(
        experiment=data.experiment, metric=plain
    )


@pytest.mark.parametrize("aggregation", ["conversion", "sum", "ratio"])
def test_metric_variant_stats__conversion_window__ignores_later_events(data, aggregation) -> None:
    # Given a 24-hour window (the synthetic data puts events exactly at +24h, which are out)
    metric = synthetic.metric(aggregation, conversion_window_hours=24, cuped_lookback_days=14)
    unbounded = synthetic.metric(aggregation)
    # When
    stats = metric_variant_stats(experiment=data.experiment, metric=metric)
    # Then the totals match the oracle and are smaller than without a window
    assert_matches(stats, synthetic.expected(data, metric))
    everything = metric_variant_stats(experiment=data.experiment, metric=unbounded)
    assert all(stats[k].sum < everything[k].sum for k in stats)


def test_metric_variant_stats__window_edges__exact_to_the_microsecond(db) -> None:
    # Given one unit exposed at a time with microseconds and events right at the edges
    import datetime as dt

    from events.models import Outcome
    from tests.factories import ExposureFactory, make_experiment

    exp = make_experiment("edges")
    t0 = dt.datetime(2024, 5, 1, 12, 0, 0, 999_600, tzinfo=dt.UTC)
    ExposureFactory(experiment=exp, unit_id="u", variant="control", first_exposed_at=t0)
    us = dt.timedelta(microseconds=1)
    hour, day = dt.timedelta(hours=1), dt.timedelta(days=1)
    events = [
        (t0 - us, 1.0),  # pre-period
        (t0, 10.0),  # in: at exposure
        (t0 + 2 * hour - us, 100.0),  # in: last microsecond of the window
        (t0 + 2 * hour, 1000.0),  # out: window end
        (t0 - day, 10_000.0),  # pre-period: lookback start
        (t0 - day - us, 100_000.0),  # out: before the lookback
    ]
    Outcome.objects.bulk_create(
        Outcome(event_id=str(i), unit_id="u", name="buy", value=v, timestamp=t)
        for i, (t, v) in enumerate(events)
    )
    metric = synthetic.metric("sum", event="buy", conversion_window_hours=2, cuped_lookback_days=1)
    # When
    control = metric_variant_stats(experiment=exp, metric=metric)["control"]
    # Then only the in-window events count, on either side of the exposure
    assert (control.n, control.sum, control.covariate_sum) == (1, 110.0, 10_001.0)


def test_metric_variant_stats__variant_without_units__present_with_zeros(db) -> None:
    # Given three variants, the third never exposed
    arms = [
        {"key": "control", "weight": 0.4, "is_control": True},
        {"key": "treatment", "weight": 0.4},
        {"key": "zeta", "weight": 0.2},
    ]
    data = synthetic.build(units=60, variants=arms)
    metric = synthetic.metric("sum", cuped_lookback_days=14)
    # When
    stats = metric_variant_stats(experiment=data.experiment, metric=metric)
    # Then it is reported, in variant order, with n = 0 and zero totals
    assert list(stats) == ["control", "treatment", "zeta"]
    assert stats["zeta"] == VariantStats("zeta", 0, 0.0, 0.0, 0.0, 0.0, 0.0, sum_cubes=0.0)
    assert_matches(stats, synthetic.expected(data, metric))


def test_metric_variant_stats__any_size__two_queries(data, django_assert_num_queries) -> None:
    # Given a CUPED, winsorized, windowed metric
    metric = synthetic.metric(
        "sum", cuped_lookback_days=14, winsorize_percentile=99.0, conversion_window_hours=48
    )
    # When / Then the variant keys and one aggregate query: no rows come back per unit
    with django_assert_num_queries(2):
        metric_variant_stats(experiment=data.experiment, metric=metric)
