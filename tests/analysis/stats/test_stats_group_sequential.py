"""Lan–DeMets O'Brien–Fleming boundaries against published tables and a Brownian simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from analysis.stats import (
    boundary_inflation_factor,
    classical_obrien_fleming_boundaries,
    crossing_probabilities,
    group_sequential_p_value,
    obrien_fleming_boundaries,
    obrien_fleming_spending,
)


def test_obrien_fleming_boundaries__five_equal_looks__match_contract_table() -> None:
    # Given K = 5 equal looks at α = 0.05 / When / Then: the contract's published values
    boundaries = obrien_fleming_boundaries(5, 0.05)
    assert boundaries.z_boundaries == pytest.approx([4.877, 3.357, 2.680, 2.290, 2.031], abs=1e-3)
    assert boundaries.information_fractions == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])


@pytest.mark.parametrize(
    ("looks", "expected"),
    [
        (1, [1.95996]),
        (2, [2.9626, 1.9686]),  # Lan–DeMets OBF, widely tabulated (gsDesign, ldbounds)
        (3, [3.7103, 2.5114, 1.9930]),
    ],
)
def test_obrien_fleming_boundaries__few_equal_looks__match_published_values(
    looks: int, expected: list[float]
) -> None:
    # Given K equal looks / When / Then
    assert obrien_fleming_boundaries(looks, 0.05).z_boundaries == pytest.approx(expected, abs=1e-3)


def test_obrien_fleming_boundaries__api_shape__nominal_alpha_is_two_sided_level() -> None:
    # Given the boundaries' JSON / When / Then: the contract's keys, nominal = 2(1 − Φ(z))
    payload = obrien_fleming_boundaries(5, 0.05).to_dict()
    assert set(payload) == {
        "looks",
        "alpha",
        "information_fractions",
        "z_boundaries",
        "nominal_alpha",
    }
    from scipy.stats import norm

    assert payload["nominal_alpha"] == pytest.approx(
        [2 * norm.sf(z) for z in payload["z_boundaries"]], rel=1e-12
    )


def test_classical_obrien_fleming__five_looks__constant_2_040() -> None:
    # Given K = 5, α = 0.05 / When / Then: c = 2.040 and c·√(K/k) (O'Brien & Fleming 1979)
    boundaries = classical_obrien_fleming_boundaries(5, 0.05)
    assert boundaries.constant == pytest.approx(2.040, abs=1e-3)
    assert boundaries.z_boundaries == pytest.approx([4.562, 3.226, 2.634, 2.281, 2.040], abs=1e-3)


@pytest.mark.parametrize(("looks", "constant"), [(1, 1.960), (2, 1.977), (3, 2.004), (4, 2.024)])
def test_classical_obrien_fleming__k_looks__constants_of_jennison_turnbull_table(
    looks: int, constant: float
) -> None:
    # Given K looks / When / Then: Jennison & Turnbull (2000) Table 2.3, C_B(K, 0.05)
    assert classical_obrien_fleming_boundaries(looks, 0.05).constant == pytest.approx(
        constant, abs=1e-3
    )


def test_crossing_probabilities__unequal_fractions__match_brownian_simulation() -> None:
    # Given unequal looks and their spending boundaries
    fractions = [0.25, 0.6, 1.0]
    boundaries = obrien_fleming_boundaries(3, 0.05, fractions)
    # When 400,000 Brownian paths are observed at those fractions (independent oracle)
    rng = np.random.default_rng(3)
    steps = np.diff([0.0, *fractions])
    paths = np.cumsum(rng.normal(size=(400_000, 3)) * np.sqrt(steps), axis=1)
    z = np.abs(paths / np.sqrt(fractions))
    crossed = z >= np.array(boundaries.z_boundaries)
    first = crossed.any(axis=1)
    # Then the recursion's per-look crossing probabilities equal the simulated ones
    computed = crossing_probabilities(boundaries.z_boundaries, fractions)
    assert sum(computed) == pytest.approx(0.05, abs=1e-6)
    assert first.mean() == pytest.approx(0.05, abs=4 * math.sqrt(0.05 * 0.95 / 400_000))
    # And each look spends the Lan–DeMets increment α(t_k) − α(t_{k−1})
    spent = [obrien_fleming_spending(t, 0.05) for t in [0.0, *fractions]]
    assert computed == pytest.approx(np.diff(spent), abs=1e-7)
    assert list(boundaries.z_boundaries) == sorted(boundaries.z_boundaries, reverse=True)


def test_obrien_fleming_boundaries__last_fraction_below_one__spends_less_than_alpha() -> None:
    # Given a design stopped at 70% information / When / Then: less than α is spent
    boundaries = obrien_fleming_boundaries(2, 0.05, [0.4, 0.7])
    total = sum(crossing_probabilities(boundaries.z_boundaries, [0.4, 0.7]))
    assert total == pytest.approx(obrien_fleming_spending(0.7, 0.05), abs=1e-8)
    assert total < 0.05


def test_obrien_fleming_boundaries__tiny_first_fraction__finite_boundaries() -> None:
    # Given a first look at 0.1% of the information (spends ~1e-300)
    boundaries = obrien_fleming_boundaries(3, 0.05, [0.001, 0.5, 1.0])
    # Then every boundary is a finite JSON number
    assert all(math.isfinite(z) for z in boundaries.z_boundaries)
    assert boundaries.z_boundaries[-1] == pytest.approx(1.97, abs=0.02)


@pytest.mark.parametrize(
    ("looks", "power", "published"),
    # Jennison & Turnbull (2000), Table 2.3: R for O'Brien–Fleming tests, α = 0.05
    [(2, 0.8, 1.008), (5, 0.8, 1.028), (5, 0.9, 1.026)],
)
def test_boundary_inflation_factor__classical_obrien_fleming__matches_jennison_turnbull(
    looks: int, power: float, published: float
) -> None:
    # Given classical OBF boundaries / When / Then
    boundaries = classical_obrien_fleming_boundaries(looks, 0.05)
    assert boundary_inflation_factor(boundaries, power) == pytest.approx(published, abs=1e-3)


@pytest.mark.parametrize("look", [1, 3, 5])
def test_group_sequential_p_value__statistic_on_boundary__equals_alpha(look: int) -> None:
    # Given the statistic exactly on look k's boundary
    fractions = [0.2, 0.4, 0.6, 0.8, 1.0]
    z = obrien_fleming_boundaries(5, 0.05).z_boundaries[look - 1]
    # When / Then: the repeated p-value is α there, above it just inside, below just outside
    assert group_sequential_p_value(z, look, fractions) == pytest.approx(0.05, rel=1e-6)
    assert group_sequential_p_value(z - 0.01, look, fractions) > 0.05
    assert group_sequential_p_value(-(z + 0.01), look, fractions) < 0.05
    assert group_sequential_p_value(0.0, look, fractions) == 1.0


def test_obrien_fleming_boundaries__bad_fractions__value_error() -> None:
    # Given decreasing fractions / When / Then
    with pytest.raises(ValueError):
        obrien_fleming_boundaries(2, 0.05, [0.6, 0.5])
    with pytest.raises(ValueError):
        obrien_fleming_boundaries(0, 0.05)
