"""Sample size and duration: how many units to detect a given effect, and how many days.

Fixed horizon, treatment i against the control, allocation shares w_C and w_i of all N units,
absolute minimum detectable effect Δ (a relative MDE is Δ = mde × baseline):

    N_i = (z_{1−α/2} + z_{power})² · (σ²_C/w_C + σ²_i/w_i) / Δ²,   N = max_i N_i,

with σ² = p(1 − p) for proportions (p_T = p_C + Δ in the treatment) and σ² given for means.
Each comparison keeps its own α (no Bonferroni): correct at analysis time if you must.

Sequential (confidence sequence): the interval is wider than a fixed one, so we look for the
N at which the sequence half-width plus z_{power}·SE equals Δ, i.e. where the sequence excludes
zero with probability ``power`` if the effect is Δ. When the tuning N* is not given it is set to
that N's pair total (the sequence is tightest where you plan to end), and then the ratio to the
fixed design is the constant ((k_α + z_power)/(z_{1−α/2} + z_power))² with
k_α = √(2(c+1)/c · ln(√(c+1)/α)), c = −2 ln α + ln(1 − 2 ln α) (≈ 1.92 at α = 0.05, 80%).
Experiments often stop earlier, since peeking is allowed; the N here is the planning maximum.

Group sequential: the fixed N times the design's inflation factor (Jennison & Turnbull's R,
≈ 1.025 for five O'Brien–Fleming looks); the expected sample size under the effect comes from
the same boundary-crossing recursion, since the test may stop at an early look.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from scipy import optimize, special

from analysis.stats.group_sequential import (
    GroupSequentialBoundaries,
    boundary_inflation_factor,
    crossing_probabilities,
    obrien_fleming_boundaries,
)
from analysis.stats.sequential import confidence_sequence_half_width


@dataclass(frozen=True, slots=True)
class SampleSizePlan:
    """Units per variant (control first), totals, and days at the given daily traffic."""

    metric_type: str
    method: str
    alpha: float
    power: float
    absolute_mde: float
    units_per_variant: tuple[int, ...]
    total_units: int
    fixed_total_units: int
    inflation: float
    sequential_tuning: float | None = None
    expected_total_units: float | None = None
    days_to_max: int | None = None
    expected_days: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric_type": self.metric_type,
            "method": self.method,
            "alpha": self.alpha,
            "power": self.power,
            "absolute_mde": self.absolute_mde,
            "units_per_variant": list(self.units_per_variant),
            "total_units": self.total_units,
            "fixed_total_units": self.fixed_total_units,
            "inflation": self.inflation,
            "sequential_tuning": self.sequential_tuning,
            "expected_total_units": self.expected_total_units,
            "days_to_max": self.days_to_max,
            "expected_days": self.expected_days,
        }


def _shares(variants: int, weights: Sequence[float] | None) -> list[float]:
    if variants < 2:
        raise ValueError("at least two variants (control and a treatment) are needed")
    if weights is None:
        return [1.0 / variants] * variants
    if len(weights) != variants or any(not (w > 0.0) for w in weights):
        raise ValueError("one positive weight per variant is needed")
    total = float(sum(weights))
    return [w / total for w in weights]


def _variances(
    metric_type: str, baseline: float, delta: float, standard_deviation: float | None
) -> tuple[float, float]:
    if metric_type == "proportion":
        treated = baseline + delta
        if not (0.0 < baseline < 1.0 and 0.0 <= treated <= 1.0):
            raise ValueError("proportions and baseline + effect must lie in (0, 1)")
        return baseline * (1 - baseline), treated * (1 - treated)
    if metric_type != "mean":
        raise ValueError("sample sizes are planned for mean or proportion metrics")
    if standard_deviation is None or not standard_deviation > 0.0:
        raise ValueError("a positive standard_deviation is needed for a mean metric")
    return standard_deviation**2, standard_deviation**2


def _days(units: float, daily_units: float | None) -> int | None:
    if daily_units is None or not daily_units > 0:
        return None
    return math.ceil(units / daily_units)


def sample_size(
    metric_type: str,
    baseline: float,
    mde: float,
    *,
    relative: bool = True,
    standard_deviation: float | None = None,
    alpha: float = 0.05,
    power: float = 0.8,
    variants: int = 2,
    weights: Sequence[float] | None = None,
    method: str = "fixed",
    sequential_tuning: float | None = None,
    planned_looks: int = 5,
    daily_units: float | None = None,
) -> SampleSizePlan:
    """Units needed to detect ``mde`` (relative to ``baseline`` unless ``relative=False``).

    ``baseline`` is the control proportion or mean; ``weights`` the allocation (equal when
    omitted); ``daily_units`` the units entering the experiment per day, all variants together.
    Raises ValueError for impossible settings.
    """
    if not (0.0 < alpha < 1.0 and 0.0 < power < 1.0):
        raise ValueError("alpha and power must lie in (0, 1)")
    if method not in ("fixed", "sequential", "group_sequential"):
        raise ValueError("method must be fixed, sequential or group_sequential")
    delta = abs(mde * baseline if relative else mde)
    if not delta > 0.0 or not math.isfinite(delta):
        raise ValueError("the minimum detectable effect must be non-zero")
    shares = _shares(variants, weights)
    var_c, var_t = _variances(metric_type, baseline, delta, standard_deviation)
    z_sum = float(special.ndtri(1 - alpha / 2) + special.ndtri(power))
    # Per-unit variance of Δ when all N units are split by ``shares``: V = spread / N.
    spread = max(var_c / shares[0] + var_t / share for share in shares[1:])
    # The pair with the largest spread needs the most units; the sequence counts its units.
    worst = max(range(1, variants), key=lambda i: var_c / shares[0] + var_t / shares[i])
    pair_share = shares[0] + shares[worst]
    fixed_total = z_sum**2 * spread / delta**2

    tuning: float | None = None
    expected_total: float | None = None
    if method == "fixed":
        total, inflation = fixed_total, 1.0
        expected_total = total
    elif method == "sequential":
        z_power = float(special.ndtri(power))

        def shortfall(log_total: float) -> float:
            n = math.exp(log_total)
            pair_units = pair_share * n
            n_star = sequential_tuning if sequential_tuning is not None else pair_units
            variance = spread / n
            half = confidence_sequence_half_width(variance, pair_units, alpha, n_star)
            return half + z_power * math.sqrt(variance) - delta

        # A real root: the left side falls from +∞ (tiny N) to −Δ (huge N).
        low, high = math.log(4.0), math.log(fixed_total) + 40.0
        total = math.exp(optimize.brentq(shortfall, low, high, xtol=1e-12, rtol=1e-12))
        tuning = sequential_tuning if sequential_tuning is not None else pair_share * total
        inflation = total / fixed_total
        expected_total = None
    else:
        boundaries: GroupSequentialBoundaries = obrien_fleming_boundaries(planned_looks, alpha)
        inflation = boundary_inflation_factor(boundaries, power)
        total = fixed_total * inflation
        # Average sample number if the effect is exactly Δ: stop at the first crossing.
        drift = z_sum * math.sqrt(inflation)
        stops = crossing_probabilities(
            boundaries.z_boundaries, boundaries.information_fractions, drift
        )
        fractions = boundaries.information_fractions
        average_fraction = sum(t * p for t, p in zip(fractions, stops, strict=True))
        average_fraction += 1.0 - sum(stops)  # never crossed: runs to the end
        expected_total = total * average_fraction

    units = tuple(math.ceil(share * total - 1e-9) for share in shares)
    planned = sum(units)
    return SampleSizePlan(
        metric_type=metric_type,
        method=method,
        alpha=alpha,
        power=power,
        absolute_mde=delta,
        units_per_variant=units,
        total_units=planned,
        fixed_total_units=math.ceil(fixed_total - 1e-9),
        inflation=inflation,
        sequential_tuning=tuning,
        expected_total_units=expected_total,
        days_to_max=_days(planned, daily_units),
        expected_days=_days(expected_total if expected_total else planned, daily_units),
    )
