"""Always-valid inference: results you may look at after every new unit.

A fixed-horizon p-value checked every day will eventually dip below α by chance alone. The
asymptotic confidence sequence of Waudby-Smith, Arbour, Sinha, Kennedy & Ramdas (2023,
"Time-uniform central limit theory and asymptotic confidence sequences") holds at *all* sample
sizes at once with probability ≥ 1 − α, so peeking is free. Its dual p-value is the
normal-mixture mSPRT of Johari, Koomen, Pekelis & Walsh ("Always valid inference", 2017/2022):
p ≤ α exactly when the sequence excludes 0.

With N = n_C + n_T units in total, V the variance of Δ and tuning N* (the total sample size at
which the interval is tightest relative to a fixed one):

    ρ² = (−2 ln α + ln(1 − 2 ln α)) / N*
    half-width = √(V·N) · √( 2(Nρ² + 1)/(N²ρ²) · ln(√(Nρ² + 1)/α) )
    p = min(1, √(Nρ² + 1) · exp(−ρ²·N·Δ² / (V · 2(Nρ² + 1))))

V·N is the per-unit variance of Δ, so the interval shrinks like √(log N / N): a little wider
than a fixed interval, the price of looking any time. Across looks an experiment reports the
running minimum p and the running intersection of intervals, both still valid over time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from analysis.stats.fixed import EffectEstimate, IntervalTest

DEFAULT_SEQUENTIAL_TUNING = 5000


def mixture_rho_squared(alpha: float, tuning: float) -> float:
    """ρ² that makes the sequence tightest at N* = ``tuning`` total units."""
    log_alpha = math.log(alpha)
    return (-2.0 * log_alpha + math.log(1.0 - 2.0 * log_alpha)) / tuning


def confidence_sequence_half_width(
    variance: float, total_units: float, alpha: float, tuning: float
) -> float:
    """Half-width of the asymptotic confidence sequence for an effect of variance V."""
    rho2 = mixture_rho_squared(alpha, tuning)
    n = float(total_units)
    n_rho2_plus_1 = n * rho2 + 1.0
    radius = 2.0 * n_rho2_plus_1 / (n * n * rho2) * math.log(math.sqrt(n_rho2_plus_1) / alpha)
    return math.sqrt(variance * n) * math.sqrt(radius)


def msprt_p_value(
    effect: float, variance: float, total_units: float, alpha: float, tuning: float
) -> float:
    """Always-valid p-value of the normal-mixture sequential probability ratio test."""
    rho2 = mixture_rho_squared(alpha, tuning)
    n = float(total_units)
    n_rho2_plus_1 = n * rho2 + 1.0
    exponent = -rho2 * n * effect * effect / (variance * 2.0 * n_rho2_plus_1)
    # exp underflows to 0 for huge effects, which is the right limit; min() caps at 1.
    return min(1.0, math.sqrt(n_rho2_plus_1) * math.exp(exponent))


def sequential_test(
    estimate: EffectEstimate, alpha: float = 0.05, tuning: float = DEFAULT_SEQUENTIAL_TUNING
) -> IntervalTest:
    """Confidence sequence and mSPRT p-value for one look at the data."""
    n = estimate.total_units
    half = confidence_sequence_half_width(estimate.variance, n, alpha, tuning)
    relative_ci = None
    if estimate.relative is not None and estimate.relative_variance is not None:
        relative_half = confidence_sequence_half_width(
            estimate.relative_variance, n, alpha, tuning
        )
        relative_ci = (estimate.relative - relative_half, estimate.relative + relative_half)
    return IntervalTest(
        absolute_ci=(estimate.absolute - half, estimate.absolute + half),
        relative_ci=relative_ci,
        p_value=msprt_p_value(estimate.absolute, estimate.variance, n, alpha, tuning),
        statistic=estimate.absolute / math.sqrt(estimate.variance),
    )


@dataclass(frozen=True, slots=True)
class SequentialState:
    """What an experiment reports after several looks: min p and intersected intervals."""

    looks: int
    p_value: float | None
    absolute_ci: tuple[float, float] | None
    relative_ci: tuple[float, float] | None
    # "intervals_disjoint": a new interval missed the running one (a ≤ α event under the
    # model, or a drifting effect); the newest interval is then reported instead.
    reason: str | None = None


def _intersect(
    previous: tuple[float, float] | None, new: tuple[float, float] | None
) -> tuple[tuple[float, float] | None, bool]:
    if previous is None:
        return new, False
    if new is None:
        return previous, False
    low, high = max(previous[0], new[0]), min(previous[1], new[1])
    if low > high:
        return new, True
    return (low, high), False


def sequential_state_update(
    previous: SequentialState | None,
    p_value: float | None,
    absolute_ci: tuple[float, float] | None,
    relative_ci: tuple[float, float] | None = None,
) -> SequentialState:
    """Fold one new look into the running state (pass ``None`` before the first look).

    A look whose values are undefined (None) leaves the running values as they were.
    """
    if previous is None:
        previous = SequentialState(looks=0, p_value=None, absolute_ci=None, relative_ci=None)
    running_p = previous.p_value
    if p_value is not None:
        running_p = p_value if running_p is None else min(running_p, p_value)
    absolute, absolute_disjoint = _intersect(previous.absolute_ci, absolute_ci)
    relative, relative_disjoint = _intersect(previous.relative_ci, relative_ci)
    reason = "intervals_disjoint" if absolute_disjoint or relative_disjoint else None
    return replace(
        previous,
        looks=previous.looks + 1,
        p_value=running_p,
        absolute_ci=absolute,
        relative_ci=relative,
        reason=reason,
    )
