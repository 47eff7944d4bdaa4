"""SRM against scipy's chisquare; Holm and BH against statsmodels' multipletests."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as scipy_stats
from statsmodels.stats.multitest import multipletests

from analysis.stats import (
    Comparison,
    VariantStats,
    adjust_p_values,
    analyze,
    correct_comparisons,
    sample_ratio_mismatch,
)


@pytest.mark.parametrize(
    ("counts", "weights"),
    [([5000, 5100], None), ([1000, 2100, 2900], [0.2, 0.4, 0.4]), ([50_000, 51_000], [1, 1])],
)
def test_sample_ratio_mismatch__counts__matches_scipy_chisquare(counts, weights) -> None:
    # Given observed units and intended weights
    observed = {f"v{i}": c for i, c in enumerate(counts)}
    # When tested
    result = sample_ratio_mismatch(observed, weights)
    # Then scipy's Pearson χ² with expected = weight × total is the oracle
    w = np.array(weights if weights else [1] * len(counts), dtype=float)
    expected = w / w.sum() * sum(counts)
    oracle = scipy_stats.chisquare(counts, f_exp=expected)
    assert result.p_value == pytest.approx(oracle.pvalue, rel=1e-9)
    assert result.flagged == (oracle.pvalue < 0.001)
    assert result.expected_weights == pytest.approx(dict(zip(observed, w / w.sum(), strict=True)))


def test_sample_ratio_mismatch__clear_mismatch__flagged_with_custom_threshold() -> None:
    # Given 50.8% / 49.2% of 100,000 units
    result = sample_ratio_mismatch({"c": 50_800, "t": 49_200}, [0.5, 0.5], threshold=0.01)
    # Then it is flagged
    assert result.flagged and result.p_value < 1e-6


def test_sample_ratio_mismatch__no_units_or_zero_weight__no_exception() -> None:
    # Given no units yet, then units in a variant weighted 0
    empty = sample_ratio_mismatch({"c": 0, "t": 0})
    zero = sample_ratio_mismatch({"c": 10, "t": 3}, [1.0, 0.0])
    # Then: undefined with a reason, and a certain mismatch
    assert (empty.p_value, empty.flagged, empty.reason) == (None, False, "no_units")
    assert (zero.p_value, zero.flagged) == (0.0, True)


@pytest.mark.parametrize(("ours", "theirs"), [("holm", "holm"), ("bh", "fdr_bh")])
def test_adjust_p_values__random_family__matches_statsmodels_multipletests(ours, theirs) -> None:
    # Given 40 p-values with ties, some tiny, some None (undefined comparisons)
    rng = np.random.default_rng(4)
    raw = np.concatenate([rng.uniform(0, 1, 30), rng.uniform(0, 0.001, 6), [0.02, 0.02, 1.0, 0.0]])
    with_gaps: list[float | None] = [*raw.tolist(), None, None]
    rng.shuffle(with_gaps)
    # When adjusted
    adjusted = adjust_p_values(with_gaps, ours)
    # Then the defined ones equal statsmodels' adjustment, in the same order; gaps stay None
    present = [p for p in with_gaps if p is not None]
    oracle = multipletests(present, method=theirs)[1]
    assert [a for a in adjusted if a is not None] == pytest.approx(oracle, rel=1e-12, abs=1e-15)
    assert [a is None for a in adjusted] == [p is None for p in with_gaps]


def test_adjust_p_values__none_method_and_unknown_method() -> None:
    # Given / When / Then: 'none' copies, an unknown name is refused
    assert adjust_p_values([0.01, None, 0.5], "none") == [0.01, None, 0.5]
    with pytest.raises(ValueError):
        adjust_p_values([0.1], "bonferroni-ish")


def _comparison(p: float, effect: float, direction: str = "increase") -> Comparison:
    return Comparison(
        "t", "c", effect, (effect - 1, effect + 1), None, None, p, p, False, "inconclusive",
        None, direction,
    )  # fmt: skip


def test_correct_comparisons__several_metrics__holm_over_family_then_decisions() -> None:
    # Given comparisons from three metrics, one of them "lower is better"
    comparisons = [
        _comparison(0.001, 2.0),
        _comparison(0.02, -1.0, "decrease"),
        _comparison(0.03, -3.0),
    ]
    # When corrected together with Holm
    corrected = correct_comparisons(comparisons, "holm", alpha=0.05)
    # Then adjusted p equals statsmodels', and decisions follow direction and significance
    oracle = multipletests([0.001, 0.02, 0.03], method="holm")[1]
    assert [c.adjusted_p_value for c in corrected] == pytest.approx(oracle)
    assert [c.p_value for c in corrected] == [0.001, 0.02, 0.03]
    assert [c.decision for c in corrected] == ["win", "win", "loss"]
    assert [c.significant for c in corrected] == [True, True, True]
    # And a stricter family (BH at α = 0.01) leaves only the first
    strict = correct_comparisons(comparisons, "bh", alpha=0.01)
    assert [c.decision for c in strict] == ["win", "inconclusive", "inconclusive"]


def test_analyze__srm_in_result__observed_units_and_weights() -> None:
    # Given a 1:2 design that received 1:1 traffic
    variants = [VariantStats("c", 5000, 2500.0, 4000.0), VariantStats("t", 5000, 2600.0, 4100.0)]
    # When / Then
    srm = analyze("mean", "fixed", variants, expected_weights=[1, 2]).srm
    assert srm.observed == {"c": 5000, "t": 5000}
    assert srm.expected_weights == pytest.approx({"c": 1 / 3, "t": 2 / 3})
    assert srm.flagged is True
