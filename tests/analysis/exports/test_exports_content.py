"""What each export level contains, read back with pandas and checked against independent oracles.

Runs on SQLite by default and on PostgreSQL with DATABASE_URL set (server-side cursors there).
"""

from __future__ import annotations

import datetime as dt
import io
import json

import numpy as np
import pandas as pd
import pytest

from analysis.exports import export_stream, export_table
from analysis.models import Snapshot, SnapshotState
from tests.analysis.exports import data
from tests.factories import (
    ExposureFactory,
    SnapshotComparisonFactory,
    SnapshotFactory,
    make_experiment,
)

pytestmark = pytest.mark.django_db

UNIT_COLUMNS = ["unit_id", "variant", "first_exposed_at"]
EVENT_COLUMNS = ["event_id", "type", "unit_id", "experiment", "variant", "name", "value"]


@pytest.fixture
def built() -> data.Built:
    return data.build()


def export(experiment, level: str, fmt: str) -> bytes:
    return b"".join(export_stream(export_table(experiment=experiment, level=level), fmt))


def read(content: bytes, fmt: str, timestamp: str) -> pd.DataFrame:
    if fmt == "csv":
        return data.read_csv(content, timestamp)
    if fmt == "parquet":
        return pd.read_parquet(io.BytesIO(content))
    frame = pd.DataFrame.from_records(json.loads(content))
    frame[timestamp] = pd.to_datetime(frame[timestamp], utc=True, format="ISO8601")
    return frame


def assert_same(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    got = got.reset_index(drop=True)
    assert list(got.columns) == list(expected.columns)
    for name in expected.columns:
        if expected[name].dtype.kind == "M":
            got_times = pd.to_datetime(got[name], utc=True).dt.as_unit("us")
            pd.testing.assert_series_equal(got_times, expected[name].dt.as_unit("us"))
        elif expected[name].dtype.kind in "fi":
            pd.testing.assert_series_equal(
                got[name].astype("float64"), expected[name].astype("float64"), rtol=1e-9
            )
        else:
            # Missing strings: None (Parquet, JSON) or NaN (CSV) are the same thing here.
            left = got[name].astype(object).where(got[name].notna(), None).tolist()
            right = expected[name].astype(object).where(expected[name].notna(), None).tolist()
            assert left == right, name


@pytest.mark.parametrize("fmt", ["csv", "parquet", "json"])
def test_units_export__raw_rows__equal_pandas_per_unit_values(built, fmt) -> None:
    # Given exposures and outcomes around every metric's windows
    keys = [link.metric.key for link in built.experiment.metrics.all()]  # the analysis' order
    keys += ["per-session_numerator", "per-session_denominator"]  # the ratio's two parts
    expected = data.expected_units(built)[UNIT_COLUMNS + keys]
    # When the units are exported and read back
    got = read(export(built.experiment, "units", fmt), fmt, "first_exposed_at")
    # Then the columns are the contract's plus one per metric key (and the ratio's parts),
    # the rows the oracle's
    assert list(got.columns) == UNIT_COLUMNS + keys
    assert_same(got.sort_values("unit_id"), expected)
    # and multiple-variant units and the unknown variant key are left out
    assert "ghost" not in set(got["variant"])
    assert len(got) == len(expected) < 120


def test_units_export__parquet__typed_columns(built) -> None:
    # Given / When a Parquet export
    import pyarrow.parquet as pq

    schema = pq.read_schema(io.BytesIO(export(built.experiment, "units", "parquet")))
    # Then times are UTC microseconds, conversions and counts integers, the rest floats
    types = {f.name: str(f.type) for f in schema}
    assert types["first_exposed_at"] == "timestamp[us, tz=UTC]"
    assert types["converted"] == types["clicks"] == "int64"
    assert types["revenue"] == types["basket"] == types["per-session"] == "double"


def test_units_export__unit_without_events__zeros_and_nulls_in_json(built) -> None:
    # Given unit u0004, exposed but without any outcome
    # When
    rows = {r["unit_id"]: r for r in json.loads(export(built.experiment, "units", "json"))}
    # Then conversion, count and sum are 0; mean and ratio (0 / 0) are null
    assert {k: v for k, v in rows["u0004"].items() if k not in UNIT_COLUMNS} == {
        "converted": 0,
        "clicks": 0,
        "revenue": 0.0,
        "basket": None,
        "per-session": None,
        "per-session_numerator": 0.0,
        "per-session_denominator": 0.0,
    }


def test_units_export__no_metrics__three_columns(db) -> None:
    # Given an experiment without metrics and one unit
    experiment = make_experiment("bare")
    ExposureFactory(
        experiment=experiment,
        unit_id="u-1",
        variant="control",
        first_exposed_at=dt.datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=dt.UTC),
    )
    # When
    content = export(experiment, "units", "csv").decode()
    # Then
    assert content == "unit_id,variant,first_exposed_at\nu-1,control,2024-01-02T03:04:05.678901Z\n"


@pytest.mark.parametrize("fmt", ["csv", "parquet", "json"])
def test_events_export__raw_tables__equal_exposures_and_outcomes_of_exposed_units(
    built, fmt
) -> None:
    # Given raw exposure events and outcomes (other experiments' and unexposed units' too)
    expected = data.expected_events(built)
    # When
    got = read(export(built.experiment, "events", fmt), fmt, "timestamp")
    # Then the columns are the contract's and the rows are the raw rows, once each
    assert list(got.columns) == [*EVENT_COLUMNS, "timestamp"]
    assert_same(got.sort_values(["type", "event_id"]), expected)
    # in one time line
    assert pd.to_datetime(got["timestamp"], utc=True).is_monotonic_increasing


def test_events_export__json__array_of_contract_objects(built) -> None:
    # Given / When
    rows = json.loads(export(built.experiment, "events", "json"))
    # Then a JSON array of objects with exactly the contract's keys
    assert isinstance(rows, list)
    assert {tuple(r) for r in rows} == {(*EVENT_COLUMNS, "timestamp")}
    exposure = next(r for r in rows if r["type"] == "exposure")
    assert exposure["name"] is None
    assert exposure["value"] is None
    assert exposure["experiment"] == "shop"
    assert exposure["timestamp"].endswith("Z")


# --- summary ---------------------------------------------------------------------------------


def comparison(variant: str, **values) -> dict:
    base = {
        "variant": variant,
        "baseline": "control",
        "absolute_effect": 0.02,
        "absolute_ci": [0.01, 0.03],
        "relative_effect": 0.1,
        "relative_ci": [0.05, 0.15],
        "p_value": 0.001,
        "adjusted_p_value": 0.002,
        "significant": True,
        "decision": "win",
        "reason": None,
    }
    return {**base, **values}


def make_snapshot(experiment, metrics: list[dict], **fields) -> Snapshot:
    """A finished snapshot with §8 results and the matching SnapshotComparison rows."""
    results = {"experiment": experiment.key, "metrics": metrics}
    snapshot = SnapshotFactory(
        experiment=experiment,
        state=fields.pop("state", SnapshotState.DONE),
        computed_at=fields.pop("computed_at", dt.datetime(2024, 5, 1, tzinfo=dt.UTC)),
        results=results,
    )
    for metric in metrics:
        units = {v["variant"]: v["units"] for v in metric["variants"]}
        for c in metric["comparisons"]:
            absolute = c["absolute_ci"] or (None, None)
            relative = c["relative_ci"] or (None, None)
            SnapshotComparisonFactory(
                snapshot=snapshot,
                metric=metric["metric"],
                role=metric["role"],
                variant=c["variant"],
                baseline=c["baseline"],
                units=units[c["variant"]],
                baseline_units=units[c["baseline"]],
                absolute_effect=c["absolute_effect"],
                absolute_low=absolute[0],
                absolute_high=absolute[1],
                relative_effect=c["relative_effect"],
                relative_low=relative[0],
                relative_high=relative[1],
                p_value=c["p_value"],
                adjusted_p_value=c["adjusted_p_value"],
                significant=c["significant"],
                decision=c["decision"],
            )
    return snapshot


@pytest.fixture
def snapshot(db) -> Snapshot:
    experiment = make_experiment(
        "menu",
        variants=[
            {"key": "control", "weight": 0.4, "is_control": True},
            {"key": "b", "weight": 0.3},
            {"key": "c", "weight": 0.3},
        ],
    )
    arms = [
        {"variant": "control", "units": 400},
        {"variant": "b", "units": 310},
        {"variant": "c", "units": 290},
    ]
    old = [{"metric": "old", "role": "primary", "variants": arms, "comparisons": []}]
    make_snapshot(experiment, old, computed_at=dt.datetime(2024, 4, 1, tzinfo=dt.UTC))
    latest = make_snapshot(
        experiment,
        [
            {
                "metric": "ctr",
                "role": "primary",
                "variants": arms,
                "comparisons": [
                    comparison("b"),
                    comparison(
                        "c",
                        absolute_effect=None,
                        absolute_ci=None,
                        relative_effect=None,
                        relative_ci=None,
                        p_value=None,
                        adjusted_p_value=None,
                        significant=False,
                        decision="inconclusive",
                        reason="zero variance",
                    ),
                ],
            },
            {
                "metric": "latency",
                "role": "guardrail",
                "variants": arms,
                "comparisons": [comparison("b", decision="loss"), comparison("c")],
            },
        ],
    )
    # A snapshot still running is not the latest finished one.
    SnapshotFactory(experiment=experiment, state=SnapshotState.RUNNING)
    return latest


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_summary_export__latest_snapshot__rows_equal_snapshot_comparisons(snapshot, fmt) -> None:
    # Given a finished snapshot (an older one and a running one exist too)
    expected = pd.DataFrame.from_records(
        list(
            snapshot.comparisons.order_by("id").values(
                "metric",
                "role",
                "variant",
                "baseline",
                "units",
                "baseline_units",
                "absolute_effect",
                "absolute_low",
                "absolute_high",
                "relative_effect",
                "relative_low",
                "relative_high",
                "p_value",
                "adjusted_p_value",
                "significant",
                "decision",
            )
        )
    ).rename(columns=lambda c: c.replace("_low", "_ci_low").replace("_high", "_ci_high"))
    # When
    content = export(snapshot.experiment, "summary", fmt)
    got = data.read_csv(content, None) if fmt == "csv" else pd.read_parquet(io.BytesIO(content))
    # Then one row per metric × treatment, in the snapshot's order, equal to its rows
    v2_columns = ["adjusted_ci_low", "adjusted_ci_high", "effective_alpha", "harm"]
    arms = ["mean", "variance", "baseline_mean", "baseline_variance"]
    columns = list(expected.columns)
    columns[6:6] = arms  # each arm's mean and variance follow the unit counts
    assert list(got.columns) == ["snapshot_id", *columns, "reason", *v2_columns]
    # Results written before the v2 rule have no adjusted_ci: the deciding interval is the
    # reported one
    for side in ("low", "high"):
        left = [None if pd.isna(v) else v for v in got[f"adjusted_ci_{side}"]]
        assert left == [None if pd.isna(v) else v for v in expected[f"absolute_ci_{side}"]]
    assert set(got["snapshot_id"]) == {snapshot.pk}
    for name in expected.columns:
        left, right = got[name].tolist(), expected[name].tolist()
        assert [None if pd.isna(v) else v for v in left] == [
            None if pd.isna(v) else v for v in right
        ], name
    assert [None if pd.isna(v) else v for v in got["reason"]] == [
        None,
        "zero variance",
        None,
        None,
    ]


def flat(comparison: dict) -> dict:
    """A §5 comparison with its intervals split into ``_low`` / ``_high`` columns."""
    out = {}
    for key, value in comparison.items():
        if key.endswith("_ci"):
            low, high = value or (None, None)
            out[f"{key}_low"], out[f"{key}_high"] = low, high
        else:
            out[key] = value
    return out


def test_summary_export__json__same_flat_columns_as_csv_and_parquet(snapshot) -> None:
    # Given / When the summary in the three formats
    rows = json.loads(export(snapshot.experiment, "summary", "json"))
    csv_frame = data.read_csv(export(snapshot.experiment, "summary", "csv"), None)
    parquet = pd.read_parquet(io.BytesIO(export(snapshot.experiment, "summary", "parquet")))
    # Then JSON has exactly the columns of CSV and Parquet, in the same order
    assert list(rows[0]) == list(csv_frame.columns) == list(parquet.columns)
    # and each object is the §5 comparison (intervals split) plus metric, role, arms
    comparisons = [
        flat({**c, "metric": m["metric"], "role": m["role"]})
        for m in snapshot.results["metrics"]
        for c in m["comparisons"]
    ]
    assert [{k: r[k] for k in c} for r, c in zip(rows, comparisons, strict=True)] == comparisons
    assert (rows[0]["absolute_ci_low"], rows[0]["absolute_ci_high"]) == (0.01, 0.03)
    assert rows[1]["absolute_ci_low"] is None and rows[1]["absolute_ci_high"] is None
    assert rows[0]["units"] == 310
    assert rows[0]["baseline_units"] == 400


def test_summary_export__no_finished_snapshot__not_found(db) -> None:
    # Given an experiment never analysed
    from core.errors import NotFoundError

    experiment = make_experiment("fresh")
    # When / Then
    with pytest.raises(NotFoundError) as caught:
        export_table(experiment=experiment, level="summary")
    assert caught.value.code == "no_results"


@pytest.mark.parametrize("fmt", ["csv", "parquet", "json"])
def test_units_export__winsorized_metrics__raw_and_capped_at_numpy_percentile(built, fmt) -> None:
    # Given a sum, a mean and a ratio capped at their 90th percentile (conversions never are)
    from experiments.models import Metric

    Metric.objects.filter(key__in=["revenue", "basket", "per-session"]).update(
        winsorize_percentile=90.0
    )
    # When the units are exported
    got = read(export(built.experiment, "units", fmt), fmt, "first_exposed_at")
    # Then each capped value sits beside its raw value
    assert "converted_winsorized" not in got.columns
    twins = {
        "revenue": ["revenue", "revenue_winsorized"],
        "basket": ["basket", "basket_winsorized"],
        "per-session": [
            "per-session",
            "per-session_numerator",
            "per-session_denominator",
            "per-session_numerator_winsorized",
            "per-session_denominator_winsorized",
        ],
    }
    order = [link.metric.key for link in built.experiment.metrics.all()]
    assert list(got.columns)[3:] == [c for key in order for c in twins.get(key, [key])]
    for raw_name in ("revenue", "basket", "per-session_numerator", "per-session_denominator"):
        raw = got[raw_name].astype("float64")
        analysed = raw.dropna()  # a mean metric: units without events are not analysed
        # numpy's default (linear) percentile over every analysed unit, variants pooled
        cap = np.percentile(analysed.to_numpy(), 90)
        expected = raw.where(raw.isna(), np.minimum(raw, cap))
        pd.testing.assert_series_equal(
            got[f"{raw_name}_winsorized"].astype("float64"),
            expected,
            check_names=False,
            rtol=1e-9,
        )
        assert (got[f"{raw_name}_winsorized"] < raw).any()  # the cap changed something
