"""Validation of sufficient statistics: impossible totals are refused with field names."""

from __future__ import annotations

import pytest

from analysis.stats import (
    StatsInputError,
    VariantStats,
    analyze,
    validate_variants,
    variants_from_dicts,
)


def _pair(**treatment: float) -> list[VariantStats]:
    control = VariantStats("control", n=100, sum=50.0, sum_squares=60.0)
    fields = {"key": "treatment", "n": 100, "sum": 55.0, "sum_squares": 70.0, **treatment}
    return [control, VariantStats(**fields)]  # type: ignore[arg-type]


def test_validate_variants__consistent_totals__no_errors() -> None:
    # Given totals that real data produced / When validated / Then nothing is reported
    assert validate_variants("mean", _pair()) == {}


@pytest.mark.parametrize(
    ("metric_type", "treatment", "field"),
    [
        ("mean", {"n": -1}, "variants[1].n"),
        ("mean", {"sum_squares": 10.0}, "variants[1].sum_squares"),  # < sum²/n = 30.25
        ("mean", {"sum_squares": -1.0}, "variants[1].sum_squares"),
        ("mean", {"sum_squares": None}, "variants[1].sum_squares"),
        ("proportion", {"sum": 101.0}, "variants[1].sum"),
        ("proportion", {"sum": -1.0}, "variants[1].sum"),
        ("mean", {"n": 0, "sum": 3.0, "sum_squares": 9.0}, "variants[1].sum"),
        ("mean", {"sum": float("nan")}, "variants[1].sum"),
        ("ratio", {"denominator_sum": 10.0}, "variants[1].denominator_sum_squares"),
        ("mean", {"covariate_sum": 5.0}, "variants[1].cross_sum"),
    ],
)
def test_validate_variants__impossible_totals__error_names_the_field(
    metric_type: str, treatment: dict[str, float], field: str
) -> None:
    # Given a treatment whose totals no data set can produce
    variants = _pair(**treatment)
    # When validated
    errors = validate_variants(metric_type, variants)
    # Then the error is keyed by the offending field's path
    assert field in errors


def test_validate_variants__cross_sum_breaks_cauchy_schwarz__error_on_cross_sum() -> None:
    # Given covariate totals with a centred cross product larger than √(Sxx·Syy)
    variants = _pair(covariate_sum=50.0, covariate_sum_squares=60.0, cross_sum=200.0)
    # When / Then
    assert "variants[1].cross_sum" in validate_variants("mean", variants)


def test_validate_variants__float_noise_in_sum_squares__accepted() -> None:
    # Given a constant metric whose Σy² equals (Σy)²/n up to float rounding
    value = 0.1
    n = 1000
    variant = VariantStats("t", n, sum=value * n, sum_squares=(value * value * n) * (1 - 1e-12))
    # When / Then: rounding is not an impossibility
    assert validate_variants("mean", [variant, VariantStats("c", n, 100.0, 10.0)]) == {}


def test_validate_variants__duplicate_keys_and_single_variant__refused() -> None:
    # Given one variant, then two with the same key
    one = [VariantStats("a", 10, 1.0, 1.0)]
    twins = [VariantStats("a", 10, 1.0, 1.0), VariantStats("a", 10, 1.0, 1.0)]
    # When / Then
    assert "variants" in validate_variants("mean", one)
    assert "variants[1].key" in validate_variants("mean", twins)


def test_variants_from_dicts__wrong_types__errors_keyed_by_index_and_field() -> None:
    # Given a JSON body with a string n and a missing sum
    body = [{"key": "c", "n": 10, "sum": 1.0}, {"key": "t", "n": "10"}]
    # When parsed
    with pytest.raises(StatsInputError) as caught:
        variants_from_dicts(body)
    # Then both problems are named
    assert set(caught.value.fields) == {"variants[1].n", "variants[1].sum"}


def test_variants_from_dicts__valid_body__builds_variant_stats() -> None:
    # Given the /stats API body's variants, integral floats included
    body = [
        {"key": "c", "n": 10.0, "sum": 3, "sum_squares": 3},
        {"key": "t", "n": 12, "sum": 4.5, "sum_squares": 5, "unknown": "ignored"},
    ]
    # When parsed / Then types are normalised
    control, treatment = variants_from_dicts(body)
    assert control == VariantStats("c", 10, 3.0, 3.0)
    assert treatment.sum == 4.5 and isinstance(treatment.n, int)


def test_analyze__impossible_input__raises_stats_input_error_with_fields() -> None:
    # Given impossible totals and a bad alpha
    variants = _pair(sum_squares=1.0)
    # When analysed / Then a StatsInputError names the fields (the API turns it into a 400)
    with pytest.raises(StatsInputError) as caught:
        analyze("mean", "fixed", variants, alpha=1.5)
    assert "alpha" in caught.value.fields
    with pytest.raises(StatsInputError) as caught:
        analyze("mean", "fixed", variants)
    assert "variants[1].sum_squares" in caught.value.fields
