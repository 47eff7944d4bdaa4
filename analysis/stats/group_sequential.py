"""Group sequential designs: a few planned looks, each with its own stricter threshold.

At look k with information fraction t_k (share of the planned sample seen so far), the test
statistic is Z_k = Δ_k/√V_k; we stop and declare an effect when |Z_k| ≥ z_k.

Lan & DeMets (1983) choose z_k by *spending* α over the fractions. The O'Brien–Fleming-like
spending function spends almost nothing early and most at the end. Spent per side at α/2, it
is, two-sided,

    α(t) = 4·(1 − Φ(z_{1−α/4} / √t)),     α(1) = α,

and z_k solves P(|Z_1| < z_1, …, |Z_{k−1}| < z_{k−1}, |Z_k| ≥ z_k) = α(t_k) − α(t_{k−1}).

Under the null, Z_k·√t_k = W(t_k) is a Brownian motion at time t_k, so that probability is a
recursive integral (Armitage, McPherson & Rowe 1969): the density of W on the continuation
region (−z_k√t_k, z_k√t_k) at look k is the density at look k−1 convolved with the normal
kernel of the increment W(t_k) − W(t_{k−1}) ~ N(θ·Δt, Δt). We evaluate it with Simpson's rule
on a uniform grid whose spacing is a small fraction of both the spread of the density and the
width of the kernel, and solve for each z_k with Brent's method. With drift θ ≠ 0 the same
recursion gives power, hence the sample-size inflation of a design.

The classical O'Brien & Fleming (1979) boundary is c·√(K/k) (c/√t_k for unequal looks), with c
solved so that the total two-sided crossing probability is α.

After look k, ``group_sequential_p_value`` gives the repeated p-value (Jennison & Turnbull,
ch. 9): the smallest α at which the design's boundary at that look would have been crossed, so
p ≤ α exactly when |Z_k| ≥ z_k, and it can be fed to Holm or Benjamini–Hochberg.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from scipy import optimize, special

from analysis.stats.fixed import EffectEstimate, IntervalTest

# Beyond this |z| every tail probability is below 1e-299: a practical "never crosses" that
# still serialises as a JSON number.
MAX_Z_BOUNDARY = 37.0
# Grid spacing as a fraction of min(spread of W, width of the next increment's kernel), and
# a cap on grid points that only very close looks (Δt < ~1e-5) would hit.
_SPACING_FRACTION = 1.0 / 16.0
_MAX_GRID_POINTS = 4001
_SQRT_2PI = math.sqrt(2.0 * math.pi)


@dataclass(frozen=True, slots=True)
class GroupSequentialBoundaries:
    """Two-sided symmetric z boundaries; ``nominal_alpha`` is 2·(1 − Φ(z_k)) at each look."""

    looks: int
    alpha: float
    information_fractions: tuple[float, ...]
    z_boundaries: tuple[float, ...]
    nominal_alpha: tuple[float, ...]
    # Classical O'Brien–Fleming only: the constant c of c·√(K/k).
    constant: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "looks": self.looks,
            "alpha": self.alpha,
            "information_fractions": list(self.information_fractions),
            "z_boundaries": list(self.z_boundaries),
            "nominal_alpha": list(self.nominal_alpha),
        }


def equal_information_fractions(looks: int) -> tuple[float, ...]:
    return tuple((k + 1) / looks for k in range(looks))


def check_information_fractions(fractions: Sequence[float]) -> tuple[float, ...]:
    """Strictly increasing in (0, 1]; raise ValueError otherwise."""
    values = tuple(float(f) for f in fractions)
    if not values:
        raise ValueError("at least one look is needed")
    previous = 0.0
    for value in values:
        if not (previous < value <= 1.0) or not math.isfinite(value):
            raise ValueError("information fractions must increase strictly within (0, 1]")
        previous = value
    return values


def obrien_fleming_spending(fraction: float, alpha: float) -> float:
    """Two-sided α spent by information fraction t: 4·(1 − Φ(z_{1−α/4}/√t))."""
    if fraction <= 0.0:
        return 0.0
    x = float(special.ndtri(1.0 - alpha / 4.0)) / math.sqrt(min(fraction, 1.0))
    return 4.0 * float(special.ndtr(-x))


def _simpson_grid(half_width: float, spacing: float) -> tuple[np.ndarray, np.ndarray]:
    intervals = max(2, math.ceil(2.0 * half_width / spacing))
    intervals = min(intervals + intervals % 2, _MAX_GRID_POINTS - 1)  # Simpson: even count
    points = np.linspace(-half_width, half_width, intervals + 1)
    weights = np.ones(intervals + 1)
    weights[1:-1:2] = 4.0
    weights[2:-1:2] = 2.0
    return points, weights * (2.0 * half_width / intervals / 3.0)


class _BrownianRecursion:
    """Mass of W(t) still inside the continuation region, carried from look to look.

    ``points``/``mass`` discretise the sub-density of W at the last look (Simpson weight ×
    density). It starts as a point mass at W(0) = 0.
    """

    def __init__(self, drift: float) -> None:
        self.drift = drift
        self.time = 0.0
        self.points = np.zeros(1)
        self.mass = np.ones(1)

    def crossing(self, fraction: float, z: float) -> tuple[float, float]:
        """P(first exit at this look above +z√t, below −z√t)."""
        dt = fraction - self.time
        sd, shift, b = math.sqrt(dt), self.drift * dt, z * math.sqrt(fraction)
        upper = float(self.mass @ special.ndtr((self.points + shift - b) / sd))
        lower = float(self.mass @ special.ndtr((-b - self.points - shift) / sd))
        return upper, lower

    def advance(self, fraction: float, z: float, next_fraction: float | None) -> None:
        """Move the surviving density to this look, on a grid fit for the next step."""
        dt = fraction - self.time
        sd, shift, b = math.sqrt(dt), self.drift * dt, z * math.sqrt(fraction)
        scale = math.sqrt(fraction)
        if next_fraction is not None:
            scale = min(scale, math.sqrt(next_fraction - fraction))
        points, weights = _simpson_grid(b, scale * _SPACING_FRACTION)
        kernel = np.exp(-0.5 * ((points[:, None] - self.points[None, :] - shift) / sd) ** 2)
        density = kernel @ self.mass / (sd * _SQRT_2PI)
        self.points, self.mass, self.time = points, weights * density, fraction


def _solve_boundary(recursion: _BrownianRecursion, fraction: float, target: float) -> float:
    """The z whose two-sided first-crossing probability at this look equals ``target``."""
    if target <= 0.0:
        return MAX_Z_BOUNDARY

    def excess(z: float) -> float:
        upper, lower = recursion.crossing(fraction, z)
        return upper + lower - target

    if excess(MAX_Z_BOUNDARY) >= 0.0:
        return MAX_Z_BOUNDARY
    if excess(0.0) <= 0.0:  # only if the target exceeds all remaining mass (numerical edge)
        return 0.0
    return float(optimize.brentq(excess, 0.0, MAX_Z_BOUNDARY, xtol=1e-10, rtol=1e-12))


@lru_cache(maxsize=256)
def _spending_boundaries(fractions: tuple[float, ...], alpha: float) -> tuple[float, ...]:
    recursion = _BrownianRecursion(drift=0.0)
    boundaries: list[float] = []
    spent = 0.0
    for k, fraction in enumerate(fractions):
        cumulative = obrien_fleming_spending(fraction, alpha)
        if k == 0:
            # Closed form on the log scale, exact even when the first look spends ~1e-300.
            # Per side, P(Z_1 ≥ z_1) = α(t_1)/2 = 2·(1 − Φ(z_{1−α/4}/√t_1)).
            x = float(special.ndtri(1.0 - alpha / 4.0)) / math.sqrt(fraction)
            log_half = math.log(2.0) + float(special.log_ndtr(-x))
            z = min(MAX_Z_BOUNDARY, -float(special.ndtri_exp(log_half)))
        else:
            z = _solve_boundary(recursion, fraction, cumulative - spent)
        boundaries.append(z)
        spent = cumulative
        next_fraction = fractions[k + 1] if k + 1 < len(fractions) else None
        if next_fraction is not None:
            recursion.advance(fraction, z, next_fraction)
    return tuple(boundaries)


def _boundaries_result(
    fractions: tuple[float, ...], alpha: float, z: Sequence[float], constant: float | None = None
) -> GroupSequentialBoundaries:
    return GroupSequentialBoundaries(
        looks=len(fractions),
        alpha=alpha,
        information_fractions=fractions,
        z_boundaries=tuple(z),
        nominal_alpha=tuple(2.0 * float(special.ndtr(-value)) for value in z),
        constant=constant,
    )


def obrien_fleming_boundaries(
    looks: int, alpha: float = 0.05, information_fractions: Sequence[float] | None = None
) -> GroupSequentialBoundaries:
    """Lan–DeMets O'Brien–Fleming spending boundaries (equal looks unless fractions given)."""
    if looks < 1:
        raise ValueError("looks must be at least 1")
    if not 0.0 < alpha < 1.0:
        raise ValueError("alpha must be in (0, 1)")
    if information_fractions is None:
        fractions = equal_information_fractions(looks)
    else:
        fractions = check_information_fractions(information_fractions)
        if len(fractions) != looks:
            raise ValueError("one information fraction per look is needed")
    return _boundaries_result(fractions, alpha, _spending_boundaries(fractions, alpha))


def crossing_probabilities(
    z_boundaries: Sequence[float], information_fractions: Sequence[float], drift: float = 0.0
) -> list[float]:
    """P(the test first crosses ±z_k at look k) when Z at t = 1 has mean ``drift``."""
    fractions = check_information_fractions(information_fractions)
    recursion = _BrownianRecursion(drift=drift)
    probabilities: list[float] = []
    for k, (fraction, z) in enumerate(zip(fractions, z_boundaries, strict=True)):
        upper, lower = recursion.crossing(fraction, z)
        probabilities.append(upper + lower)
        if k + 1 < len(fractions):
            recursion.advance(fraction, z, fractions[k + 1])
    return probabilities


def classical_obrien_fleming_boundaries(
    looks: int, alpha: float = 0.05, information_fractions: Sequence[float] | None = None
) -> GroupSequentialBoundaries:
    """O'Brien & Fleming's c·√(K/k) (c/√t_k), with c giving total two-sided level α."""
    if looks < 1:
        raise ValueError("looks must be at least 1")
    fractions = (
        equal_information_fractions(looks)
        if information_fractions is None
        else check_information_fractions(information_fractions)
    )

    def excess(c: float) -> float:
        z = [c / math.sqrt(t) for t in fractions]
        return sum(crossing_probabilities(z, fractions)) - alpha

    constant = float(optimize.brentq(excess, 0.1, MAX_Z_BOUNDARY / 2, xtol=1e-10))
    z = [constant / math.sqrt(t) for t in fractions]
    return _boundaries_result(fractions, alpha, z, constant)


def boundary_inflation_factor(boundaries: GroupSequentialBoundaries, power: float) -> float:
    """Maximum sample size of the design over that of a fixed test with the same α and power.

    The drift θ (mean of Z at t = 1) giving ``power`` for the design, squared, over the one
    for a single look: sample size grows with θ².
    """

    def drift_for(z: Sequence[float], fractions: Sequence[float]) -> float:
        def shortfall(theta: float) -> float:
            return sum(crossing_probabilities(z, fractions, drift=theta)) - power

        return float(optimize.brentq(shortfall, 0.0, 20.0, xtol=1e-10))

    fixed_z = float(special.ndtri(1.0 - boundaries.alpha / 2.0))
    design = drift_for(boundaries.z_boundaries, boundaries.information_fractions)
    return (design / drift_for([fixed_z], [1.0])) ** 2


# Repeated p-values below this are reported as this value: the spending recursion has no
# precision left further out, and no decision depends on it.
MIN_REPEATED_P_VALUE = 1e-12


def group_sequential_p_value(
    statistic: float, look: int, information_fractions: Sequence[float]
) -> float:
    """Repeated p-value at look k (1-based): smallest α whose boundary z_k(α) ≤ |statistic|."""
    fractions = check_information_fractions(information_fractions)[:look]
    target = abs(statistic)

    def gap(log_alpha: float) -> float:
        return _spending_boundaries(fractions, math.exp(log_alpha))[-1] - target

    low, high = math.log(MIN_REPEATED_P_VALUE), math.log(1.0 - 1e-9)
    if gap(high) >= 0.0:
        return 1.0
    if gap(low) <= 0.0:
        return MIN_REPEATED_P_VALUE
    return math.exp(optimize.brentq(gap, low, high, xtol=1e-9))


def group_sequential_test(
    estimate: EffectEstimate,
    alpha: float,
    look: int,
    information_fractions: Sequence[float],
) -> IntervalTest:
    """Test at planned look k: repeated confidence interval Δ ± z_k·√V and repeated p-value."""
    fractions = check_information_fractions(information_fractions)
    z = _spending_boundaries(fractions[:look], alpha)[-1]
    se = math.sqrt(estimate.variance)
    statistic = estimate.absolute / se
    relative_ci = None
    if estimate.relative is not None and estimate.relative_variance is not None:
        relative_half = z * math.sqrt(estimate.relative_variance)
        relative_ci = (estimate.relative - relative_half, estimate.relative + relative_half)
    return IntervalTest(
        absolute_ci=(estimate.absolute - z * se, estimate.absolute + z * se),
        relative_ci=relative_ci,
        p_value=group_sequential_p_value(statistic, look, fractions),
        statistic=statistic,
        z_boundary=z,
    )
