"""Sample sizes against statsmodels' power solvers and against simulated experiments."""

from __future__ import annotations

import math

import numpy as np
import pytest
from statsmodels.stats.power import NormalIndPower, tt_ind_solve_power

from analysis.stats import (
    confidence_sequence_half_width,
    obrien_fleming_boundaries,
    sample_size,
)


@pytest.mark.parametrize(("ratio", "power"), [(1.0, 0.8), (2.0, 0.9)])
def test_sample_size__mean_fixed__matches_statsmodels_normal_ind_power(ratio, power) -> None:
    # Given a mean metric (σ = 12) and an absolute MDE of 1.5, treatment weight = ratio × control
    plan = sample_size(
        "mean", 40.0, 1.5, relative=False, standard_deviation=12.0, power=power,
        weights=[1.0, ratio],
    )  # fmt: skip
    # When statsmodels solves the same design for the control arm's size
    nobs1 = NormalIndPower().solve_power(
        effect_size=1.5 / 12.0, alpha=0.05, power=power, ratio=ratio
    )
    # Then the control arm needs ceil(nobs1) units (within the ignored far tail, < 0.1%)
    assert plan.units_per_variant[0] == pytest.approx(nobs1, rel=1e-3, abs=1)
    assert plan.units_per_variant[1] == pytest.approx(ratio * nobs1, rel=1e-3, abs=1)
    # And a t-based solver agrees at this size
    t_based = tt_ind_solve_power(effect_size=1.5 / 12.0, alpha=0.05, power=power, ratio=ratio)
    assert plan.units_per_variant[0] == pytest.approx(t_based, rel=5e-3)


def test_sample_size__relative_mde__same_as_equivalent_absolute() -> None:
    # Given a 5% relative lift on a mean of 20 / When / Then: identical to an absolute 1.0
    relative = sample_size("mean", 20.0, 0.05, standard_deviation=8.0)
    absolute = sample_size("mean", 20.0, 1.0, relative=False, standard_deviation=8.0)
    assert relative.units_per_variant == absolute.units_per_variant


def test_sample_size__proportion_fixed__simulated_power_reaches_target() -> None:
    # Given a 10% baseline and a +15% relative MDE, three variants
    plan = sample_size("proportion", 0.10, 0.15, variants=3, power=0.8)
    n = plan.units_per_variant[0]
    # When 20,000 experiments of that size are simulated with the effect present
    rng = np.random.default_rng(12)
    c = rng.binomial(n, 0.10, 20_000) / n
    t = rng.binomial(n, 0.115, 20_000) / n
    z = (t - c) / np.sqrt(c * (1 - c) / n + t * (1 - t) / n)
    # Then the Welch/z test rejects in about 80% of them
    assert np.mean(np.abs(z) > 1.959964) == pytest.approx(0.8, abs=0.015)


def test_sample_size__sequential__sequence_excludes_zero_with_target_power() -> None:
    # Given the sequential plan for a mean metric with σ = 1 and Δ = 0.1
    plan = sample_size(
        "mean", 1.0, 0.1, relative=False, standard_deviation=1.0, method="sequential"
    )
    n = plan.units_per_variant[0]
    # When 20,000 final-look estimates are simulated (Δ̂ ~ N(Δ, 2/n))
    variance = 2.0 / n
    half = confidence_sequence_half_width(variance, 2 * n, 0.05, plan.sequential_tuning)
    rng = np.random.default_rng(2)
    estimates = rng.normal(0.1, math.sqrt(variance), 20_000)
    # Then the confidence sequence excludes zero in ~80% of them at the planned size
    assert np.mean(estimates - half > 0) == pytest.approx(0.8, abs=0.015)
    # And it costs more than the fixed design (≈ 1.9× at α = 0.05, 80%)
    assert 1.7 < plan.inflation < 2.1


def test_sample_size__group_sequential__fixed_times_inflation_and_earlier_expected_stop() -> None:
    # Given five planned looks and 2,000 units a day
    plan = sample_size("proportion", 0.2, 0.1, method="group_sequential", daily_units=2000)
    fixed = sample_size("proportion", 0.2, 0.1, daily_units=2000)
    # Then the maximum is ~2.5% above fixed, the expected size under the effect below fixed
    assert plan.total_units == pytest.approx(fixed.total_units * 1.0247, rel=2e-3)
    assert plan.expected_total_units < fixed.total_units
    assert plan.days_to_max == math.ceil(plan.total_units / 2000)
    assert plan.expected_days <= fixed.expected_days
    assert obrien_fleming_boundaries(5).looks == 5


def test_sample_size__impossible_settings__value_error() -> None:
    # Given / When / Then: a proportion lifted past 1, a mean without σ, a zero MDE
    with pytest.raises(ValueError):
        sample_size("proportion", 0.9, 0.5)
    with pytest.raises(ValueError):
        sample_size("mean", 10.0, 0.1)
    with pytest.raises(ValueError):
        sample_size("proportion", 0.1, 0.0)
