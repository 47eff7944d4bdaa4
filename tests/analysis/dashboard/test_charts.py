"""SVG charts: geometry recomputed from the scale, text escaped, empty inputs handled."""

from __future__ import annotations

import datetime as dt
import re
import xml.etree.ElementTree as ET

import pytest

from analysis import charts

NS = {"svg": "http://www.w3.org/2000/svg"}


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)  # also proves the string is well-formed XML


def test_linear_scale__domain_ends__map_to_range_ends() -> None:
    scale = charts.LinearScale(-0.1, 0.3, 100, 500)
    assert scale(-0.1) == pytest.approx(100)
    assert scale(0.3) == pytest.approx(500)
    assert scale(0.1) == pytest.approx(300)
    assert charts.LinearScale(1, 1, 0, 10)(1) == 5  # a flat domain lands in the middle


def test_nice_ticks__a_range__round_steps_inside_it() -> None:
    assert charts.nice_ticks(-0.05, 0.2, 5) == pytest.approx([-0.05, 0.0, 0.05, 0.1, 0.15, 0.2])
    assert charts.nice_ticks(0, 930, 4) == [0, 250, 500, 750]


def test_forest_plot__known_intervals__lines_span_the_scaled_x() -> None:
    # Given two rows with known intervals and the layout's scale
    rows = [
        charts.ForestRow("Checkout · treatment", 0.10, 0.04, 0.16, "win"),
        charts.ForestRow("Latency · treatment", -0.05, -0.12, 0.02, "inconclusive"),
    ]
    layout = charts.ForestLayout()
    x = layout.scale(rows)
    # When
    root = parse(charts.forest_plot(rows, layout))
    # Then each interval line runs from x(low) to x(high) on its row, the dot sits at x(estimate)
    lines = root.findall("svg:line[@class='vl-interval']", NS)
    dots = root.findall("svg:circle[@class='vl-estimate']", NS)
    assert len(lines) == len(dots) == 2
    for row, line, dot in zip(rows, lines, dots, strict=True):
        assert float(line.get("x1")) == pytest.approx(x(row.low), abs=0.06)
        assert float(line.get("x2")) == pytest.approx(x(row.high), abs=0.06)
        assert float(dot.get("cx")) == pytest.approx(x(row.estimate), abs=0.06)
        assert line.get("y1") == line.get("y2") == dot.get("cy")
    assert lines[0].get("stroke") == charts.DECISION_COLOURS["win"]
    # The zero line is inside the plot, between the two rows' estimates
    zero = root.find("svg:line[@class='vl-zero']", NS)
    assert float(zero.get("x1")) == pytest.approx(x(0.0), abs=0.06)
    assert x(-0.05) < x(0.0) < x(0.10)
    # and every interval lies within the plotting area
    assert layout.label_width <= x(-0.12) and x(0.16) <= layout.width - layout.right_margin


def test_forest_plot__hostile_label__escaped() -> None:
    svg = charts.forest_plot([charts.ForestRow('<script>alert("x")</script>', 0.1, 0.0, 0.2)])
    assert "<script>" not in svg
    assert "&lt;script&gt;" in svg
    parse(svg)


def test_forest_plot__missing_estimate__says_not_enough_data() -> None:
    svg = charts.forest_plot([charts.ForestRow("m · t", None, None, None)])
    assert "not enough data" in svg
    assert "vl-interval" not in svg


def test_forest_plot__no_rows__empty_message() -> None:
    assert "No comparisons yet" in charts.forest_plot([])


def test_effect_over_time__points__line_and_band_follow_the_scales() -> None:
    # Given three snapshots a day apart whose intervals narrow
    start = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
    points = [
        charts.EffectPoint(start + dt.timedelta(days=i), 0.05 + 0.01 * i, -0.1 + 0.05 * i, 0.2)
        for i in range(3)
    ]
    layout = charts.TimeLayout()
    # When
    root = parse(charts.effect_over_time(points, layout))
    # Then the line has one vertex per snapshot, first at the left edge, last at the right edge
    line = root.find("svg:polyline[@class='vl-estimate-line']", NS)
    vertices = [tuple(map(float, p.split(","))) for p in line.get("points").split()]
    assert len(vertices) == 3
    assert vertices[0][0] == pytest.approx(layout.left)
    assert vertices[-1][0] == pytest.approx(layout.width - layout.right)
    ys = [v[1] for v in vertices]
    assert ys[0] > ys[1] > ys[2]  # a rising effect goes up the page (smaller y)
    band = root.find("svg:polygon[@class='vl-band']", NS)
    assert len(band.get("points").split()) == 6  # upper edge and lower edge
    assert "3 snapshots" in ET.tostring(root, encoding="unicode")


def test_effect_over_time__single_or_no_points__still_draws() -> None:
    at = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
    one = parse(charts.effect_over_time([charts.EffectPoint(at, 0.1, 0.0, 0.2)]))
    assert one.find("svg:polygon[@class='vl-band']", NS) is not None
    assert "No estimate in the analyses so far" in charts.effect_over_time(
        [charts.EffectPoint(at, None, None, None)]
    )


def test_exposures_bars__two_variants__one_bar_each_per_day_heights_proportional() -> None:
    days = ["2024-03-01", "2024-03-02"]
    root = parse(charts.exposures_bars(days, [("control", [100, 200]), ("b<x>", [50, 0])]))
    bars = root.findall("svg:rect[@class='vl-bar']", NS)
    assert len(bars) == 4
    heights = [float(b.get("height")) for b in bars]
    assert heights[1] == pytest.approx(2 * heights[0], abs=0.1)
    assert heights[2] == pytest.approx(heights[0] / 2, abs=0.1)
    assert heights[3] == 0
    assert bars[0].get("fill") != bars[2].get("fill")
    assert "b&lt;x&gt;" in ET.tostring(root, encoding="unicode").replace("&amp;", "&")


def test_progress_bar__partial_full_and_no_plan() -> None:
    half = parse(charts.progress_bar(500, 1000, width=400))
    fill = half.find("svg:rect[@class='vl-progress-fill']", NS)
    assert float(fill.get("width")) == pytest.approx(200)
    over = parse(charts.progress_bar(1500, 1000, width=400))
    assert float(over.find("svg:rect[@class='vl-progress-fill']", NS).get("width")) == 400
    assert re.search(r"1,500 of 1,000 units \(150%\)", charts.progress_bar(1500, 1000))
    assert "no plan" in charts.progress_bar(10, None)


def test_effect_over_time__wide_early_interval__tick_labels_stay_inside_the_svg() -> None:
    # Given a first look whose interval spans thousands of percent
    start = dt.datetime(2026, 11, 22, tzinfo=dt.UTC)
    points = [
        charts.EffectPoint(start, 0.5, -25.0, 30.0),
        charts.EffectPoint(start + dt.timedelta(days=1), 0.1, -0.2, 0.4),
    ]
    # When drawn
    svg = charts.effect_over_time(points)
    # Then every right-aligned tick label ends far enough right to hold its text
    labels = re.findall(r'<text x="([\d.]+)"[^>]*text-anchor="end"[^>]*>([^<]+)</text>', svg)
    ticks = [(float(x), text) for x, text in labels if text.endswith("%")]
    assert any(len(text) >= 6 for _, text in ticks)
    for x, text in ticks:
        assert x >= charts.LABEL_CHAR_PX * len(text) + 4, (x, text)


def test_guardrail_bound__threshold_and_marker_where_the_scales_put_them() -> None:
    # Given a latency guardrail's lower bound rising through 0 over four checks, and a
    # rollback at the third check's time
    start = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
    bounds = [-40.0, -10.0, 12.0, 30.0]
    points = [
        charts.BoundPoint(start + dt.timedelta(minutes=5 * i), b) for i, b in enumerate(bounds)
    ]
    marker = start + dt.timedelta(minutes=10)
    layout = charts.TimeLayout()
    root = parse(
        charts.guardrail_bound_over_time(
            points,
            threshold=0.0,
            harm_above=True,
            relative=False,
            marker_at=marker,
            layout=layout,
            title="p95 <latency> · v2",
        )
    )
    # Then the threshold line sits at y(0) of a domain holding the bounds and 0
    low, high = charts.padded_domain([*bounds, 0.0])
    y = charts.LinearScale(low, high, layout.height - layout.bottom, layout.top)
    threshold = root.find("svg:line[@class='vl-threshold']", NS)
    assert float(threshold.get("y1")) == pytest.approx(y(0.0), abs=0.06)
    # the bound line has one vertex per check, rising up the page
    line = root.find("svg:polyline[@class='vl-bound-line']", NS)
    vertices = [tuple(map(float, p.split(","))) for p in line.get("points").split()]
    assert [v[1] for v in vertices] == pytest.approx([y(b) for b in bounds], abs=0.06)
    # and the rollback marker is vertical at two thirds of the time axis (10 of 15 minutes)
    x = charts.LinearScale(0, 15, layout.left, layout.width - layout.right)
    rollback = root.find("svg:line[@class='vl-rollback-marker']", NS)
    assert float(rollback.get("x1")) == pytest.approx(x(10), abs=0.06)
    assert rollback.get("x1") == rollback.get("x2")
    text = ET.tostring(root, encoding="unicode")
    assert "harm above 0" in text and "&lt;latency&gt;" in text


def test_guardrail_bound__relative_margin_below__labelled_in_percent() -> None:
    start = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
    points = [
        charts.BoundPoint(start, 0.02),
        charts.BoundPoint(start + dt.timedelta(hours=1), -0.01),
    ]
    svg = charts.guardrail_bound_over_time(
        points, threshold=-0.05, harm_above=False, relative=True
    )
    assert "harm below -5%" in svg
    assert 'class="vl-rollback-marker"' not in svg


def test_guardrail_bound__no_points__empty_message() -> None:
    svg = charts.guardrail_bound_over_time([], threshold=0.0, harm_above=True, relative=False)
    assert "No guardrail checks yet" in svg
