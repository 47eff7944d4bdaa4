"""Server-side SVG charts for the results dashboard: pure functions from numbers to SVG strings.

No JavaScript and no CDN: each function returns one self-contained ``<svg>`` element. Every piece
of text (metric names, variant keys, dates) is escaped here, so callers may mark the result safe.
Text and axes use ``currentColor`` so the charts follow the admin's light or dark theme.

Geometry is kept simple and testable: `LinearScale` maps a data domain onto pixels, and the
charts place every mark with it, so a test can recompute where a value should be drawn.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from html import escape

DECISION_COLOURS = {"win": "#1a7f37", "loss": "#cf222e", "inconclusive": "#6e7781"}
VARIANT_COLOURS = ("#8c959f", "#0969da", "#bc4c00", "#8250df", "#1b7c83", "#bf3989")
FONT = "font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;font-size:12px"


def variant_colour(index: int) -> str:
    """Colour of the index-th variant (the control, first, is grey)."""
    return VARIANT_COLOURS[index % len(VARIANT_COLOURS)]


@dataclass(frozen=True, slots=True)
class LinearScale:
    """Maps [domain_low, domain_high] linearly onto [range_low, range_high] pixels."""

    domain_low: float
    domain_high: float
    range_low: float
    range_high: float

    def __call__(self, value: float) -> float:
        span = self.domain_high - self.domain_low
        if span == 0:
            return (self.range_low + self.range_high) / 2
        share = (value - self.domain_low) / span
        return self.range_low + share * (self.range_high - self.range_low)


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values (1, 2, 2.5 or 5 × 10^k apart) covering [low, high]."""
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        return [low]
    raw = (high - low) / max(1, count)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(low / step - 1e-9) * step
    ticks = []
    value = first
    while value <= high + step * 1e-9:
        ticks.append(round(value, 12) + 0.0)  # + 0.0 turns -0.0 into 0.0
        value += step
    return ticks


def padded_domain(values: Sequence[float], include_zero: bool = True) -> tuple[float, float]:
    """A domain holding every value (and zero), widened by 8% so marks never touch the edge."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if include_zero:
        finite.append(0.0)
    if not finite:
        return -1.0, 1.0
    low, high = min(finite), max(finite)
    pad = (high - low) * 0.08 if high > low else (abs(high) * 0.1 or 0.01)
    return low - pad, high + pad


def percent_label(value: float) -> str:
    """Tick text for a relative effect (a fraction), e.g. 0.025 → "+2.5%"."""
    text = f"{value * 100:+.1f}".rstrip("0").rstrip(".")
    return "0%" if text in ("+0", "-0") else f"{text}%"


def _num(value: float) -> str:
    return f"{value:.1f}"


def _text(x: float, y: float, content: str, anchor: str = "start", extra: str = "") -> str:
    return (
        f'<text x="{_num(x)}" y="{_num(y)}" text-anchor="{anchor}" fill="currentColor"{extra}>'
        f"{escape(content)}</text>"
    )


def _svg(width: int, height: int, title: str, body: list[str], css_class: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="{escape(css_class)}" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(title)}" style="{FONT}"><title>{escape(title)}</title>'
        + "".join(body)
        + "</svg>"
    )


def _empty(width: int, height: int, title: str, message: str, css_class: str) -> str:
    return _svg(width, height, title, [_text(width / 2, height / 2, message, "middle")], css_class)


@dataclass(frozen=True, slots=True)
class ForestRow:
    """One metric × treatment: relative effect and its interval, as fractions."""

    label: str
    estimate: float | None
    low: float | None
    high: float | None
    decision: str = "inconclusive"


@dataclass(frozen=True, slots=True)
class ForestLayout:
    width: int = 760
    label_width: int = 260
    right_margin: int = 80
    row_height: int = 28
    top: int = 12
    bottom: int = 34

    def scale(self, rows: Sequence[ForestRow]) -> LinearScale:
        values = [v for r in rows for v in (r.estimate, r.low, r.high) if v is not None]
        low, high = padded_domain(values)
        return LinearScale(low, high, self.label_width, self.width - self.right_margin)


def forest_plot(
    rows: Sequence[ForestRow], layout: ForestLayout = ForestLayout(), title: str = ""
) -> str:
    """Relative effects with their intervals, one row each, around a dashed line at zero."""
    title = title or "Relative effect by metric and variant"
    height = layout.top + layout.row_height * max(1, len(rows)) + layout.bottom
    if not rows:
        return _empty(layout.width, height, title, "No comparisons yet", "vl-forest")
    x = layout.scale(rows)
    plot_bottom = height - layout.bottom
    body: list[str] = []
    for tick in nice_ticks(x.domain_low, x.domain_high, 6):
        tx = x(tick)
        body.append(
            f'<line class="vl-grid" x1="{_num(tx)}" y1="{layout.top}" x2="{_num(tx)}" '
            f'y2="{_num(plot_bottom)}" stroke="currentColor" stroke-opacity="0.12"/>'
        )
        body.append(_text(tx, plot_bottom + 16, percent_label(tick), "middle"))
    zero = x(0.0)
    body.append(
        f'<line class="vl-zero" x1="{_num(zero)}" y1="{layout.top - 4}" x2="{_num(zero)}" '
        f'y2="{_num(plot_bottom)}" stroke="currentColor" stroke-dasharray="4 3"/>'
    )
    for i, row in enumerate(rows):
        cy = layout.top + layout.row_height * (i + 0.5)
        colour = DECISION_COLOURS.get(row.decision, DECISION_COLOURS["inconclusive"])
        body.append(_text(layout.label_width - 10, cy + 4, row.label, "end"))
        if row.estimate is None:
            body.append(_text(zero + 6, cy + 4, "not enough data", extra=' font-style="italic"'))
            continue
        if row.low is not None and row.high is not None:
            body.append(
                f'<line class="vl-interval" x1="{_num(x(row.low))}" y1="{_num(cy)}" '
                f'x2="{_num(x(row.high))}" y2="{_num(cy)}" stroke="{colour}" '
                'stroke-width="3" stroke-linecap="round"/>'
            )
        body.append(
            f'<circle class="vl-estimate" cx="{_num(x(row.estimate))}" cy="{_num(cy)}" r="5" '
            f'fill="{colour}"><title>{escape(row.label)}: {escape(percent_label(row.estimate))}'
            "</title></circle>"
        )
        body.append(
            _text(
                layout.width - layout.right_margin + 8,
                cy + 4,
                percent_label(row.estimate),
                extra=f' fill-opacity="0.9" font-weight="600" style="fill:{colour}"',
            )
        )
    body.append(
        _text(
            (layout.label_width + layout.width - layout.right_margin) / 2,
            height - 2,
            "relative effect vs control (interval)",
            "middle",
            ' fill-opacity="0.7"',
        )
    )
    return _svg(layout.width, height, title, body, "vl-forest")


@dataclass(frozen=True, slots=True)
class EffectPoint:
    """A snapshot's reported relative effect and interval at the time it was computed."""

    at: dt.datetime
    estimate: float | None
    low: float | None
    high: float | None


# A generous width of one character of the charts' 12 px labels (digits, "+", "%").
LABEL_CHAR_PX = 8


@dataclass(frozen=True, slots=True)
class TimeLayout:
    width: int = 760
    height: int = 200
    left: int = 56
    right: int = 16
    top: int = 12
    bottom: int = 30


def _time_scale(points: Sequence[EffectPoint], layout: TimeLayout) -> LinearScale:
    first, last = points[0].at.timestamp(), points[-1].at.timestamp()
    return LinearScale(first, last, layout.left, layout.width - layout.right)


def effect_over_time(
    points: Sequence[EffectPoint], layout: TimeLayout = TimeLayout(), title: str = ""
) -> str:
    """The estimate as a line and its interval as a band, snapshot by snapshot."""
    title = title or "Relative effect over time"
    points = sorted((p for p in points if p.estimate is not None), key=lambda p: p.at)
    if not points:
        # The analyses exist (this chart is drawn for one of their series) but none had an
        # estimate yet, e.g. too few units: saying "no snapshots" would contradict the page.
        message = "No estimate in the analyses so far"
        return _empty(layout.width, layout.height, title, message, "vl-over-time")
    values = [v for p in points for v in (p.estimate, p.low, p.high) if v is not None]
    y_low, y_high = padded_domain(values)
    ticks = nice_ticks(y_low, y_high, 4)
    # Room for the widest tick label ("+3000%" on an early, wide interval): an SVG clips
    # whatever is drawn left of its edge.
    widest = max((len(percent_label(t)) for t in ticks), default=0)
    layout = replace(layout, left=max(layout.left, 10 + LABEL_CHAR_PX * widest))
    x = _time_scale(points, layout)
    y = LinearScale(y_low, y_high, layout.height - layout.bottom, layout.top)
    body: list[str] = []
    for tick in ticks:
        ty = y(tick)
        body.append(
            f'<line x1="{layout.left}" y1="{_num(ty)}" x2="{layout.width - layout.right}" '
            f'y2="{_num(ty)}" stroke="currentColor" stroke-opacity="0.12"/>'
        )
        body.append(_text(layout.left - 6, ty + 4, percent_label(tick), "end"))
    # (time, low, high) of the points with an interval.
    banded = [
        (p.at.timestamp(), p.low, p.high)
        for p in points
        if p.low is not None and p.high is not None
    ]
    if banded:
        upper = [f"{_num(x(at))},{_num(y(high))}" for at, _low, high in banded]
        lower = [f"{_num(x(at))},{_num(y(low))}" for at, low, _high in reversed(banded)]
        if len(banded) == 1:  # a single snapshot: draw its interval as a vertical bar
            at, low, high = banded[0]
            px = x(at)
            top, bottom = _num(y(high)), _num(y(low))
            upper = [f"{_num(px - 3)},{top}", f"{_num(px + 3)},{top}"]
            lower = [f"{_num(px + 3)},{bottom}", f"{_num(px - 3)},{bottom}"]
        body.append(
            f'<polygon class="vl-band" points="{" ".join(upper + lower)}" fill="#0969da" '
            'fill-opacity="0.18"/>'
        )
    zero = y(0.0)
    body.append(
        f'<line class="vl-zero" x1="{layout.left}" y1="{_num(zero)}" '
        f'x2="{layout.width - layout.right}" y2="{_num(zero)}" stroke="currentColor" '
        'stroke-dasharray="4 3"/>'
    )
    # Every point left has an estimate (filtered above); the pairs carry that to the types.
    estimates = [(p.at.timestamp(), p.estimate) for p in points if p.estimate is not None]
    line = " ".join(f"{_num(x(at))},{_num(y(estimate))}" for at, estimate in estimates)
    body.append(
        f'<polyline class="vl-estimate-line" points="{line}" fill="none" stroke="#0969da" '
        'stroke-width="2"/>'
    )
    last = points[-1]
    last_at, last_estimate = estimates[-1]
    body.append(
        f'<circle cx="{_num(x(last_at))}" cy="{_num(y(last_estimate))}" r="3.5" fill="#0969da"/>'
    )
    base = layout.height - layout.bottom + 18
    body.append(_text(layout.left, base, _date(points[0].at), "start"))
    if len(points) > 1:
        body.append(_text(layout.width - layout.right, base, _date(last.at), "end"))
    body.append(
        _text(
            (layout.left + layout.width - layout.right) / 2,
            base,
            f"{len(points)} snapshot{'s' if len(points) != 1 else ''}",
            "middle",
            ' fill-opacity="0.7"',
        )
    )
    return _svg(layout.width, layout.height, title, body, "vl-over-time")


def _date(moment: dt.datetime) -> str:
    # With the year: a long experiment's axis can cross New Year, and a date alone is ambiguous.
    return moment.strftime("%b %d, %Y %H:%M").replace(" 0", " ")


@dataclass(frozen=True, slots=True)
class BarsLayout:
    width: int = 760
    height: int = 200
    left: int = 56
    right: int = 16
    top: int = 28
    bottom: int = 30


def exposures_bars(
    days: Sequence[str],
    series: Sequence[tuple[str, Sequence[int]]],
    layout: BarsLayout = BarsLayout(),
    title: str = "New units per day by variant",
) -> str:
    """Grouped bars: for each day, one bar per variant (``series`` = [(variant, counts)])."""
    if not days or not series:
        return _empty(layout.width, layout.height, title, "No exposures yet", "vl-exposures")
    top_value = max((c for _, counts in series for c in counts), default=0) or 1
    ticks = nice_ticks(0, top_value, 4)
    y = LinearScale(0, max(top_value, ticks[-1]), layout.height - layout.bottom, layout.top)
    plot_width = layout.width - layout.left - layout.right
    slot = plot_width / len(days)
    bar = max(1.0, (slot * 0.8) / len(series))
    body: list[str] = []
    for tick in ticks:
        ty = y(tick)
        body.append(
            f'<line x1="{layout.left}" y1="{_num(ty)}" x2="{layout.width - layout.right}" '
            f'y2="{_num(ty)}" stroke="currentColor" stroke-opacity="0.12"/>'
        )
        body.append(_text(layout.left - 6, ty + 4, f"{tick:,.0f}", "end"))
    for s, (variant, counts) in enumerate(series):
        colour = variant_colour(s)
        for d, count in enumerate(counts):
            bx = layout.left + slot * d + slot * 0.1 + bar * s
            by = y(count)
            body.append(
                f'<rect class="vl-bar" x="{_num(bx)}" y="{_num(by)}" width="{bar:.2f}" '
                f'height="{_num(y(0) - by)}" fill="{colour}"><title>{escape(days[d])} '
                f"{escape(variant)}: {count:,}</title></rect>"
            )
        lx = layout.left + s * 130
        body.append(
            f'<rect x="{_num(lx)}" y="6" width="10" height="10" fill="{colour}"/>'
            + _text(lx + 14, 15, variant)
        )
    base = layout.height - layout.bottom + 18
    body.append(_text(layout.left, base, days[0], "start"))
    if len(days) > 1:
        body.append(_text(layout.width - layout.right, base, days[-1], "end"))
    return _svg(layout.width, layout.height, title, body, "vl-exposures")


def progress_bar(done: int, planned: int | None, width: int = 760, height: int = 14) -> str:
    """Units so far against the planned sample size, capped at full; the page prints numbers."""
    title = "Sample size progress"
    if not planned:
        return _empty(width, height, title, "no plan", "vl-progress")
    share = min(1.0, max(0.0, done / planned))
    filled = width * share
    label = f"{done:,} of {planned:,} units ({done / planned:.0%})"
    return _svg(
        width,
        height,
        f"{title}: {label}",
        [
            f'<rect x="0" y="0" width="{width}" height="{height}" rx="4" fill="currentColor" '
            'fill-opacity="0.1"/>',
            f'<rect class="vl-progress-fill" x="0" y="0" width="{_num(filled)}" '
            f'height="{height}" rx="4" fill="{"#1a7f37" if share >= 1 else "#0969da"}"/>',
        ],
        "vl-progress",
    )


@dataclass(frozen=True, slots=True)
class BoundPoint:
    """One guardrail look: the one-sided always-valid bound on the harmful side."""

    at: dt.datetime
    bound: float


def guardrail_bound_over_time(
    points: Sequence[BoundPoint],
    *,
    threshold: float,
    harm_above: bool,
    relative: bool,
    marker_at: dt.datetime | None = None,
    marker_label: str = "rolled back",
    layout: TimeLayout = TimeLayout(),
    title: str = "",
) -> str:
    """A guardrail's harm-side bound look by look, its harm threshold as a dashed red line and
    a rollback as a vertical marker. Harm is declared once the bound crosses the threshold
    (above it when ``harm_above``, e.g. latency; below it otherwise)."""
    title = title or "Guardrail bound over time"
    points = sorted((p for p in points if math.isfinite(p.bound)), key=lambda p: p.at)
    if not points:
        return _empty(layout.width, layout.height, title, "No guardrail checks yet", "vl-bound")
    first = points[0].at.timestamp()
    last = max(points[-1].at.timestamp(), marker_at.timestamp() if marker_at else first)
    x = LinearScale(first, last, layout.left, layout.width - layout.right)
    y_low, y_high = padded_domain([p.bound for p in points] + [threshold])
    y = LinearScale(y_low, y_high, layout.height - layout.bottom, layout.top)
    label = percent_label if relative else _short
    body: list[str] = []
    for tick in nice_ticks(y_low, y_high, 4):
        ty = y(tick)
        body.append(
            f'<line x1="{layout.left}" y1="{_num(ty)}" x2="{layout.width - layout.right}" '
            f'y2="{_num(ty)}" stroke="currentColor" stroke-opacity="0.12"/>'
        )
        body.append(_text(layout.left - 6, ty + 4, label(tick), "end"))
    ty = y(threshold)
    body.append(
        f'<line class="vl-threshold" x1="{layout.left}" y1="{_num(ty)}" '
        f'x2="{layout.width - layout.right}" y2="{_num(ty)}" stroke="{DECISION_COLOURS["loss"]}" '
        'stroke-dasharray="5 3"/>'
    )
    side = "above" if harm_above else "below"
    body.append(
        _text(layout.width - layout.right - 4, ty - 4, f"harm {side} {label(threshold)}", "end")
    )
    line = " ".join(f"{_num(x(p.at.timestamp()))},{_num(y(p.bound))}" for p in points)
    body.append(
        f'<polyline class="vl-bound-line" points="{line}" fill="none" stroke="#0969da" '
        'stroke-width="2"/>'
    )
    if marker_at is not None:
        mx = x(marker_at.timestamp())
        body.append(
            f'<line class="vl-rollback-marker" x1="{_num(mx)}" y1="{layout.top}" x2="{_num(mx)}" '
            f'y2="{layout.height - layout.bottom}" stroke="{DECISION_COLOURS["loss"]}" '
            'stroke-width="2"/>'
        )
        body.append(_text(mx + 4, layout.top + 10, marker_label, "start"))
    base = layout.height - layout.bottom + 18
    body.append(_text(layout.left, base, _date(points[0].at), "start"))
    if len(points) > 1:
        body.append(_text(layout.width - layout.right, base, _date(points[-1].at), "end"))
    body.append(
        _text(
            (layout.left + layout.width - layout.right) / 2,
            base,
            f"{len(points)} check{'s' if len(points) != 1 else ''}",
            "middle",
            ' fill-opacity="0.7"',
        )
    )
    return _svg(layout.width, layout.height, title, body, "vl-bound")


def _short(value: float) -> str:
    return f"{value:.4g}"
