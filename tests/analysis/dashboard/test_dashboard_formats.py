"""Numbers, dates and rates as the results page prints them (issue #15)."""

from __future__ import annotations

import datetime as dt

import pytest

from analysis import charts
from analysis.dashboard import fixed_decimals, metric_formatters, recent_daily_units

START = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC)


def test_recent_daily_units__five_units_in_minutes__no_rate() -> None:
    # Given 5 units that arrived within minutes of the start
    days = [{"date": "2026-11-28", "variant": "control", "units": 5}]
    # When the rate is taken over the time really observed
    rate = recent_daily_units(days, started_at=START, as_of=START + dt.timedelta(minutes=9))
    # Then there is no "5 units/day": less than a day says nothing about a day
    assert rate is None


def test_recent_daily_units__three_and_a_half_days__units_over_real_span() -> None:
    days = [
        {"date": (START.date() + dt.timedelta(days=d)).isoformat(), "variant": "c", "units": 70}
        for d in range(4)
    ]
    rate = recent_daily_units(days, started_at=START, as_of=START + dt.timedelta(days=3.5))
    assert rate == pytest.approx(280 / 3.5)


def test_recent_daily_units__long_experiment__last_seven_days_only() -> None:
    days = [
        {"date": (START.date() + dt.timedelta(days=d)).isoformat(), "variant": "c", "units": u}
        for d, u in enumerate([500] * 10 + [100] * 7)
    ]
    as_of = dt.datetime.combine(START.date() + dt.timedelta(days=17), dt.time(0, 0), tzinfo=dt.UTC)
    rate = recent_daily_units(days, started_at=START, as_of=as_of)
    assert rate == pytest.approx(100.0)


@pytest.mark.parametrize(
    ("aggregation", "means", "value", "effect", "shown", "shown_effect"),
    [
        ("conversion", [0.30, 0.36], 0.3, 0.06, "30.00%", "+6.00 pp"),
        # A click-through ratio is a proportion: percent, like conversions
        ("ratio", [0.05235, 0.05749], 0.05235, 0.005143, "5.24%", "+0.51 pp"),
        # Otherwise one fixed precision for the metric: mean, effect and interval alike
        ("mean", [67.82, 85.8], 67.82, 1.566, "67.82", "+1.57"),
        ("sum", [2.542, 2.589], 2.542, -0.008509, "2.542", "-0.009"),
        ("ratio", [41.5, 43.0], 41.5, 1.5, "41.50", "+1.50"),
    ],
)
def test_metric_formatters__per_metric_type__consistent(
    aggregation, means, value, effect, shown, shown_effect
) -> None:
    mean_fmt, abs_fmt = metric_formatters(aggregation, means)
    assert mean_fmt(value) == shown
    assert abs_fmt(effect) == shown_effect


def test_fixed_decimals__scale__four_significant_digits_of_the_largest_mean() -> None:
    assert fixed_decimals([67.82, 85.8]) == 2
    assert fixed_decimals([1234.5]) == 0
    assert fixed_decimals([0.0]) == 2


def test_effect_over_time__axis_dates__carry_the_year() -> None:
    points = [charts.EffectPoint(START + dt.timedelta(days=d), 0.1, 0.0, 0.2) for d in range(3)]
    svg = charts.effect_over_time(points)
    assert "Nov 28, 2026 12:00" in svg and "Nov 30, 2026 12:00" in svg
