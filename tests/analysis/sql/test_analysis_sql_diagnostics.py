"""exposure_diagnostics: counts and exclusions, checked against pandas over the raw exposures."""

from __future__ import annotations

import datetime as dt

import pytest

from analysis.selectors import ExposureDay, exposure_diagnostics
from events.models import Exposure
from tests.analysis.sql import synthetic
from tests.factories import ExposureFactory, make_experiment

pytestmark = pytest.mark.django_db


def test_exposure_diagnostics__synthetic_experiment__match_pandas(db) -> None:
    # Given exposures with multiple-variant units, mismatches, and another experiment
    data = synthetic.build()
    frame = data.exposures
    analysed = frame[~frame["multiple_variants"]]
    # When
    diagnostics = exposure_diagnostics(experiment=data.experiment)
    # Then the counts equal pandas' over the raw rows
    assert diagnostics.units_by_variant == analysed["variant"].value_counts().to_dict()
    assert list(diagnostics.units_by_variant) == ["control", "treatment"]
    assert diagnostics.multiple_variant_units == int(frame["multiple_variants"].sum()) > 0
    assert diagnostics.mismatched_exposures == int(frame["mismatched_count"].sum()) > 0
    by_day = (
        analysed.assign(day=analysed["first_exposed_at"].dt.date)
        .groupby(["day", "variant"])
        .size()
    )
    assert diagnostics.exposures_by_day == [
        ExposureDay(date=day, variant=variant, units=int(units))
        for (day, variant), units in by_day.items()
    ]
    assert sum(d.units for d in diagnostics.exposures_by_day) == len(analysed)


def test_exposure_diagnostics__no_exposures__zeros_for_every_variant(db) -> None:
    # Given a started experiment nobody has seen yet
    experiment = make_experiment("quiet")
    # When
    diagnostics = exposure_diagnostics(experiment=experiment)
    # Then every variant is listed with 0 and nothing else is reported
    assert diagnostics.units_by_variant == {"control": 0, "treatment": 0}
    assert diagnostics.multiple_variant_units == 0
    assert diagnostics.mismatched_exposures == 0
    assert diagnostics.exposures_by_day == []


def test_exposure_diagnostics__days__cut_at_utc_midnight(db) -> None:
    # Given exposures a microsecond either side of midnight UTC
    experiment = make_experiment("midnight")
    midnight = dt.datetime(2024, 6, 2, tzinfo=dt.UTC)
    Exposure.objects.bulk_create(
        Exposure(experiment=experiment, unit_id=uid, variant="control", first_exposed_at=at)
        for uid, at in [
            ("a", midnight - dt.timedelta(microseconds=1)),
            ("b", midnight),
            ("c", midnight + dt.timedelta(hours=23, minutes=59)),
        ]
    )
    # When
    days = exposure_diagnostics(experiment=experiment).exposures_by_day
    # Then
    assert days == [
        ExposureDay(date=dt.date(2024, 6, 1), variant="control", units=1),
        ExposureDay(date=dt.date(2024, 6, 2), variant="control", units=2),
    ]


def test_exposure_diagnostics__unknown_variant_key__still_counted(db) -> None:
    # Given an exposure reporting a variant the experiment does not define
    experiment = make_experiment("typo")
    ExposureFactory(
        experiment=experiment, unit_id="u", variant="treatmnet", first_exposed_at=synthetic.START
    )
    # When
    counts = exposure_diagnostics(experiment=experiment).units_by_variant
    # Then it shows after the defined variants, so the client bug is visible
    assert counts == {"control": 0, "treatment": 0, "treatmnet": 1}
