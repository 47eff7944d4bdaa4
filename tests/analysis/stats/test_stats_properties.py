"""Properties that must hold for any data: symmetry, scale, shrinking intervals, valid JSON."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from analysis.stats import VariantStats, analyze
from tests.analysis.stats.helpers import variant_from_values

PROPERTY_SETTINGS = settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
values = st.lists(
    st.floats(min_value=-1e3, max_value=1e3, allow_nan=False, allow_infinity=False),
    min_size=2,
    max_size=40,
)
methods = st.sampled_from(["fixed", "sequential"])


def _defined(result) -> bool:
    return result.comparisons[0].absolute_effect is not None


@PROPERTY_SETTINGS
@given(control=values, treatment=values, method=methods)
def test_analyze__arms_swapped__absolute_effect_flips_sign(control, treatment, method) -> None:
    # Given two arms / When analysed in both orders
    a, b = (
        variant_from_values("a", np.array(control)),
        variant_from_values("b", np.array(treatment)),
    )
    forward = analyze("mean", method, [a, b], cuped=False)
    backward = analyze("mean", method, [b, a], cuped=False)
    assume(_defined(forward))
    # Then Δ changes sign and the p-value does not change
    f, r = forward.comparisons[0], backward.comparisons[0]
    assert f.absolute_effect == pytest.approx(-r.absolute_effect, rel=1e-9, abs=1e-9)
    assert f.p_value == pytest.approx(r.p_value, rel=1e-6, abs=1e-12)


@PROPERTY_SETTINGS
@given(
    control=values,
    treatment=values,
    scale=st.floats(min_value=0.01, max_value=100.0),
    method=methods,
)
def test_analyze__data_scaled__effect_scales_p_and_relative_unchanged(
    control, treatment, scale, method
) -> None:
    # Given data and the same data times c > 0
    c, t = np.array(control), np.array(treatment)
    base = analyze("mean", method, [variant_from_values("c", c), variant_from_values("t", t)])
    scaled = analyze(
        "mean", method, [variant_from_values("c", c * scale), variant_from_values("t", t * scale)]
    )
    assume(_defined(base) and _defined(scaled))
    b, s = base.comparisons[0], scaled.comparisons[0]
    # Spreads within float noise of the values' magnitude are not a meaningful test case.
    assume(b.absolute_ci[1] - b.absolute_ci[0] > 1e-6 * (np.abs(c).max() + np.abs(t).max()))
    # Then Δ and its interval scale by c; p and the relative effect do not move
    assert s.absolute_effect == pytest.approx(scale * b.absolute_effect, rel=1e-6, abs=1e-9)
    assert s.absolute_ci == pytest.approx([scale * v for v in b.absolute_ci], rel=1e-6, abs=1e-9)
    assert s.p_value == pytest.approx(b.p_value, rel=1e-5, abs=1e-9)
    if b.relative_effect is not None and s.relative_effect is not None:
        assert s.relative_effect == pytest.approx(b.relative_effect, rel=1e-6, abs=1e-9)


@PROPERTY_SETTINGS
@given(control=values, treatment=values, method=methods, copies=st.integers(2, 6))
def test_analyze__data_replicated__interval_shrinks(control, treatment, method, copies) -> None:
    # Given data, and the same data with every unit repeated (same means, more units)
    c, t = np.array(control), np.array(treatment)
    small = analyze("mean", method, [variant_from_values("c", c), variant_from_values("t", t)])
    large = analyze(
        "mean",
        method,
        [
            variant_from_values("c", np.tile(c, copies)),
            variant_from_values("t", np.tile(t, copies)),
        ],
    )
    assume(_defined(small) and _defined(large))
    lo_s, hi_s = small.comparisons[0].absolute_ci
    lo_l, hi_l = large.comparisons[0].absolute_ci
    # Spreads within float noise of the values' magnitude are not a meaningful test case.
    assume(hi_s - lo_s > 1e-6 * (np.abs(c).max() + np.abs(t).max()))
    # Then the interval is narrower
    assert hi_l - lo_l < hi_s - lo_s


finite = st.floats(min_value=-1e12, max_value=1e12, allow_nan=False, allow_infinity=False)


@st.composite
def variant_totals(draw, key: str, metric_type: str) -> VariantStats:
    """Any totals the validator accepts, including empty and degenerate arms."""
    n = draw(st.integers(0, 10_000))
    if metric_type == "proportion":
        total = float(draw(st.integers(0, n)))
        return VariantStats(key, n, total)
    total = draw(finite) if n else 0.0
    spread = draw(st.floats(min_value=0, max_value=1e12)) if n else 0.0
    sum_squares = total * total / n + spread if n else 0.0
    if metric_type == "mean":
        return VariantStats(key, n, total, sum_squares)
    d_total = draw(st.floats(min_value=0, max_value=1e9)) if n else 0.0
    d_squares = d_total * d_total / n + draw(st.floats(0, 1e9)) if n else 0.0
    rho = draw(st.floats(-1, 1))
    cross = (
        total * d_total / n
        # max(0, ·): cancellation can leave a centred sum a hair below 0 (a complex root).
        + 0.999
        * rho
        * math.sqrt(max(0.0, (sum_squares - total**2 / n) * (d_squares - d_total**2 / n)))
        if n
        else 0.0
    )
    return VariantStats(key, n, total, sum_squares, None, None, cross, d_total, d_squares)


@st.composite
def analyses(draw):
    metric_type = draw(st.sampled_from(["mean", "proportion", "ratio"]))
    count = draw(st.integers(2, 4))
    variants = [draw(variant_totals(f"v{i}", metric_type)) for i in range(count)]
    return metric_type, variants


@settings(max_examples=300, deadline=None)
@given(case=analyses(), method=methods, alpha=st.floats(0.001, 0.5))
def test_analyze__any_valid_totals__json_without_nan_and_p_in_unit_interval(
    case, method, alpha
) -> None:
    # Given any totals that pass validation (empty arms, constants, huge sums)
    metric_type, variants = case
    # When analysed
    result = analyze(metric_type, method, variants, alpha=alpha)
    payload = result.to_dict()
    # Then the JSON has no NaN or infinity, and every p-value is a probability
    json.dumps(payload, allow_nan=False)
    for comparison in payload["comparisons"]:
        for key in ("p_value", "adjusted_p_value"):
            assert comparison[key] is None or 0.0 <= comparison[key] <= 1.0
        assert comparison["decision"] in {"win", "loss", "inconclusive"}
        if comparison["p_value"] is None:
            assert comparison["reason"]
