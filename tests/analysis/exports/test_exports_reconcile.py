"""Reconciliation (issue #15): every unit count, mean and effect on the demo's results pages is
recomputed with pandas from the exports, as docs/exports.md tells an analyst to, and matches.

The oracle is pandas over the `units` export (per-unit values, a ratio's numerator and
denominator, winsorized twins); the page is read as the product team sees it (the rendered
HTML); the `summary` export must carry the same units and means to full precision.
"""

from __future__ import annotations

import io
import json
from html.parser import HTMLParser
from io import StringIO

import pandas as pd
import pytest
from django.core.management import call_command

from analysis.dashboard import fmt_percent, metric_formatters
from analysis.exports import export_stream, export_table
from experiments.models import Experiment

pytestmark = pytest.mark.django_db(transaction=True)


class ResultsTables(HTMLParser):
    """(metric key, variant) → {"units", "mean", "absolute", "relative"} as printed."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: dict[tuple[str, str], dict[str, str]] = {}
        self.metric = self.variant = self.column = None
        self.in_value = False

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = dict(attrs)
        if tag == "div" and (a.get("id") or "").startswith("vl-metric-"):
            self.metric = a["id"].removeprefix("vl-metric-")
        elif tag == "tr" and "data-variant" in a and self.metric:
            self.variant = a["data-variant"]
            self.cells[(self.metric, self.variant)] = {}
        elif tag == "td" and "data-col" in a:
            self.column = a["data-col"]
        elif tag == "span" and a.get("class") == "vl-v" and self.column:
            self.in_value = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "span":
            self.in_value = False
        elif tag == "td":
            self.column = None

    def handle_data(self, data: str) -> None:
        if self.in_value and self.variant:
            cell = self.cells[(self.metric, self.variant)]
            cell[self.column] = cell.get(self.column, "") + data.strip()


def export_frame(experiment: Experiment, level: str, fmt: str) -> pd.DataFrame:
    content = b"".join(export_stream(export_table(experiment=experiment, level=level), fmt))
    if fmt == "parquet":
        return pd.read_parquet(io.BytesIO(content))
    if fmt == "json":
        return pd.DataFrame.from_records(json.loads(content))
    return pd.read_csv(io.BytesIO(content))


def arms_from_units(units: pd.DataFrame, metric, events: pd.DataFrame) -> pd.DataFrame:
    """Per variant: units and mean, as the analysis computes them (docs/api.md §6), in pandas."""
    key = metric.key
    if metric.aggregation == "quantile":
        # An event-level quantile: every event of an analysed unit at or after its first
        # exposure (within the window), pooled per arm; every analysed unit counts.
        exposed = units[["unit_id", "variant", "first_exposed_at"]]
        hits = events[(events["type"] == "outcome") & (events["name"] == metric.event)]
        hits = hits.drop(columns="variant").merge(exposed, on="unit_id")
        start = pd.to_datetime(hits["first_exposed_at"], utc=True, format="ISO8601")
        at = pd.to_datetime(hits["timestamp"], utc=True, format="ISO8601")
        keep = at >= start
        if metric.conversion_window_hours is not None:
            keep &= at < start + pd.Timedelta(hours=metric.conversion_window_hours)
        value = hits[keep].groupby("variant")["value"].quantile(metric.quantile)
        return pd.DataFrame({"units": units.groupby("variant").size(), "mean": value})
    if metric.aggregation == "ratio":
        num = f"{key}_numerator_winsorized" if f"{key}_numerator_winsorized" in units else None
        num = num or f"{key}_numerator"
        den = f"{key}_denominator_winsorized" if f"{key}_denominator_winsorized" in units else None
        den = den or f"{key}_denominator"
        grouped = units.groupby("variant")
        # The ratio of sums, not the mean of per-unit ratios
        return pd.DataFrame(
            {"units": grouped.size(), "mean": grouped[num].sum() / grouped[den].sum()}
        )
    column = f"{key}_winsorized" if f"{key}_winsorized" in units else key
    analysed = units.dropna(subset=[column])  # a mean metric: units with events only
    grouped = analysed.groupby("variant")[column]
    return pd.DataFrame({"units": grouped.size(), "mean": grouped.mean()})


def test_demo_results__recomputed_from_exports_with_pandas__match(admin_client) -> None:
    # Given the demo's simulated week
    call_command("demo", "--units", "2100", stdout=StringIO())
    checked = 0
    for experiment in Experiment.objects.order_by("id"):
        # When the analyst downloads the exports (the three formats carry the same columns)
        units = export_frame(experiment, "units", "parquet")
        events = export_frame(experiment, "events", "parquet")
        summary = export_frame(experiment, "summary", "parquet")
        for fmt in ("csv", "json"):
            assert list(export_frame(experiment, "units", fmt).columns) == list(units.columns)
            assert list(export_frame(experiment, "summary", fmt).columns) == list(summary.columns)
        # and the product team reads the results page
        page = admin_client.get(f"/admin/experiments/experiment/{experiment.pk}/results/")
        parser = ResultsTables()
        html = page.content.decode()
        parser.feed(html)
        assert parser.cells, experiment.key
        # "Units analysed" is the number of rows of the units export
        assert f'id="vl-total-units">{len(units):,}<' in html
        for link in experiment.metrics.select_related("metric"):
            metric = link.metric
            arms = arms_from_units(units, metric, events)
            control = experiment.variants.get(is_control=True).key
            mean_fmt, abs_fmt = metric_formatters(metric.aggregation, list(arms["mean"]))
            rows = summary[summary["metric"] == metric.key]
            for variant, arm in arms.iterrows():
                shown = parser.cells[(metric.key, variant)]
                # Then unit counts and means match the page ...
                assert shown["units"] == f"{int(arm['units']):,}", (metric.key, variant)
                assert shown["mean"] == mean_fmt(arm["mean"]), (metric.key, variant)
                if variant == control:
                    continue
                # ... and the effects: treatment minus control, and that over control
                absolute = arm["mean"] - arms.loc[control, "mean"]
                relative = absolute / arms.loc[control, "mean"]
                assert shown["absolute"] == abs_fmt(absolute), (metric.key, variant)
                assert shown["relative"] == fmt_percent(relative), (metric.key, variant)
                # and the summary export carries the same numbers to full precision
                (row,) = rows[rows["variant"] == variant].to_dict("records")
                assert row["units"] == arm["units"]
                assert row["baseline_units"] == arms.loc[control, "units"]
                assert row["mean"] == pytest.approx(arm["mean"], rel=1e-9)
                assert row["baseline_mean"] == pytest.approx(arms.loc[control, "mean"], rel=1e-9)
                assert row["absolute_effect"] == pytest.approx(absolute, rel=1e-9, abs=1e-12)
                assert row["relative_effect"] == pytest.approx(relative, rel=1e-9, abs=1e-12)
                checked += 1
    # Every comparison of the three experiments was checked (3 + 3·2 + 1 + ... pairs)
    assert checked == sum(
        e.metrics.count() * (e.variants.count() - 1) for e in Experiment.objects.all()
    )
