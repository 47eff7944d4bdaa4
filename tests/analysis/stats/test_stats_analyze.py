"""The top-level ``analyze``: undefined cases, decisions, methods and JSON output."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from analysis.stats import VariantStats, analyze, obrien_fleming_boundaries
from tests.analysis.stats.helpers import variant_from_values


def _normal_arms(effect: float = 0.0, n: int = 2000, seed: int = 1):
    rng = np.random.default_rng(seed)
    return [
        variant_from_values("control", rng.normal(10.0, 2.0, n)),
        variant_from_values("treatment", rng.normal(10.0 + effect, 2.0, n)),
    ]


@pytest.mark.parametrize(
    ("variants", "reason"),
    [
        ([VariantStats("c", 1, 1.0, 1.0), VariantStats("t", 10, 5.0, 5.0)], "too_few_units"),
        ([VariantStats("c", 0, 0.0, 0.0), VariantStats("t", 0, 0.0, 0.0)], "too_few_units"),
        ([VariantStats("c", 10, 20.0, 40.0), VariantStats("t", 10, 30.0, 90.0)], "zero_variance"),
    ],
)
@pytest.mark.parametrize("method", ["fixed", "sequential"])
def test_analyze__undefined_case__null_fields_and_reason(variants, reason, method) -> None:
    # Given an arm with < 2 units or two constant arms
    # When analysed
    result = analyze("mean", method, variants)
    comparison = result.comparisons[0]
    # Then nothing is raised, the numbers are None, and the reason says why
    assert comparison.reason == reason
    assert comparison.absolute_effect is None and comparison.p_value is None
    assert comparison.decision == "inconclusive" and comparison.significant is False
    json.dumps(result.to_dict(), allow_nan=False)


def test_analyze__zero_control_mean__absolute_defined_relative_null() -> None:
    # Given a control whose mean is exactly 0
    rng = np.random.default_rng(3)
    control = rng.normal(0, 1, 500)
    control -= control.mean()
    variants = [
        variant_from_values("c", control),
        variant_from_values("t", rng.normal(0.5, 1, 500)),
    ]
    # When / Then
    comparison = analyze("mean", "fixed", variants).comparisons[0]
    assert comparison.absolute_effect is not None and comparison.absolute_ci is not None
    assert comparison.relative_effect is None and comparison.relative_ci is None
    assert comparison.reason == "zero_control_mean"


@pytest.mark.parametrize(
    ("effect", "direction", "decision"),
    [
        (0.5, "increase", "win"),
        (-0.5, "increase", "loss"),
        (-0.5, "decrease", "win"),
        (0.5, "decrease", "loss"),
        (0.0, "increase", "inconclusive"),
    ],
)
def test_analyze__direction__decides_win_loss_inconclusive(effect, direction, decision) -> None:
    # Given a clear effect (or none) and the metric's direction
    variants = _normal_arms(effect)
    # When analysed sequentially / Then the decision respects the direction
    comparison = analyze("mean", "sequential", variants, direction=direction).comparisons[0]
    assert comparison.decision == decision
    assert comparison.significant == (decision != "inconclusive")


def test_analyze__three_variants__holm_over_treatments_by_default() -> None:
    # Given a control and two treatments
    rng = np.random.default_rng(8)
    variants = [variant_from_values(k, rng.normal(m, 1, 400)) for k, m in
                (("c", 0), ("a", 0.15), ("b", 0.2))]  # fmt: skip
    # When analysed with the default Holm correction
    result = analyze("mean", "fixed", variants)
    p = [c.p_value for c in result.comparisons]
    adjusted = [c.adjusted_p_value for c in result.comparisons]
    # Then the smaller p is doubled and the larger is max(p_max, 2·p_min)
    assert min(adjusted) == pytest.approx(min(2 * min(p), 1))
    assert max(adjusted) == pytest.approx(max(max(p), min(2 * min(p), 1)))
    assert [c.baseline for c in result.comparisons] == ["c", "c"]
    assert [c.variant for c in result.comparisons] == ["a", "b"]


@pytest.mark.parametrize("look", [1, 2, 3, 4, 5])
def test_analyze__group_sequential__significant_iff_statistic_beyond_boundary(look) -> None:
    # Given an effect whose z statistic is ~2.8 at this look
    variants = _normal_arms(0.177, n=2000, seed=look)
    # When analysed at planned look k of 5
    result = analyze("mean", "group_sequential", variants, look=look, planned_looks=5)
    comparison = result.comparisons[0]
    boundary = obrien_fleming_boundaries(5).z_boundaries[look - 1]
    # Then significance is |Δ/√V| ≥ z_k, the interval is Δ ± z_k·√V
    assert comparison.z_boundary == pytest.approx(boundary)
    assert comparison.significant == (abs(comparison.statistic) >= boundary)
    half = (comparison.absolute_ci[1] - comparison.absolute_ci[0]) / 2
    assert half == pytest.approx(boundary * comparison.absolute_effect / comparison.statistic)
    assert result.to_dict()["boundaries"]["z_boundaries"] == pytest.approx(
        obrien_fleming_boundaries(5).z_boundaries
    )


def test_analyze__group_sequential_without_look__input_error_names_look() -> None:
    # Given group_sequential without its plan / When / Then
    from analysis.stats import StatsInputError

    with pytest.raises(StatsInputError) as caught:
        analyze("mean", "group_sequential", _normal_arms(), planned_looks=5)
    assert "look" in caught.value.fields


def test_analyze__sequential_tuning__changes_interval_and_is_reported() -> None:
    # Given the same data with two tunings
    variants = _normal_arms(0.1)
    near = analyze("mean", "sequential", variants, sequential_tuning=4000)
    far = analyze("mean", "sequential", variants, sequential_tuning=400_000)

    # Then the sequence tuned at the current size is the tighter one
    def width(result):
        low, high = result.comparisons[0].absolute_ci
        return high - low

    assert width(near) < width(far)
    assert near.to_dict()["sequential_tuning"] == 4000


def test_analyze__to_dict__contract_shape() -> None:
    # Given a proportion analysis / When serialised
    variants = [VariantStats("c", 1000, 100.0), VariantStats("t", 1000, 130.0)]
    payload = json.loads(json.dumps(analyze("proportion", "sequential", variants).to_dict()))
    # Then the contract's fields are present with the right shapes
    comparison = payload["comparisons"][0]
    assert set(comparison) >= {
        "variant", "baseline", "absolute_effect", "absolute_ci", "relative_effect",
        "relative_ci", "p_value", "adjusted_p_value", "significant", "decision", "reason",
    }  # fmt: skip
    assert len(comparison["absolute_ci"]) == 2 and len(comparison["relative_ci"]) == 2
    assert set(payload["srm"]) >= {"p_value", "observed", "expected_weights", "flagged"}
    assert payload["variants"][1] == {
        "variant": "t", "units": 1000, "mean": 0.13, "variance": pytest.approx(0.13 * 0.87),
    }  # fmt: skip


def test_analyze__huge_effect__p_value_zero_not_nan() -> None:
    # Given an effect of hundreds of standard errors / When / Then: finite, p in [0, 1]
    variants = [
        VariantStats("c", 10_000, 0.0 + 1000.0, 2000.0),
        VariantStats("t", 10_000, 1e6, 1e8 + 1e4),
    ]
    for method in ("fixed", "sequential"):
        comparison = analyze("mean", method, variants).comparisons[0]
        assert 0.0 <= comparison.p_value <= 1e-12
        assert all(math.isfinite(v) for v in comparison.absolute_ci)
