"""Treatment minus control, and the fixed-horizon Welch test of it.

Absolute effect Δ = m_T − m_C with variance V = s²_T/n_T + s²_C/n_C (arms are independent).
Welch–Satterthwaite degrees of freedom

    df = V² / ((s²_T/n_T)²/(n_T − 1) + (s²_C/n_C)²/(n_C − 1)),

Student t interval Δ ± t_{1−α/2, df}·√V and two-sided p = 2·P(T_df > |Δ|/√V).

Relative effect Δ/m_C, delta method (the contract's formula, first order in 1/n):

    Var = s²_T/(m_C²·n_T) + s²_C·m_T²/(m_C⁴·n_C),

with m_T = m_C + Δ, so that under CUPED the adjusted difference and adjusted variances enter and
m_C stays the unadjusted control mean. Its interval uses the same t quantile.

This test is valid only when looked at once, at a sample size fixed in advance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from scipy import special

from analysis.stats.moments import ArmMoments, Undefined


@dataclass(frozen=True, slots=True)
class EffectEstimate:
    """Δ and its variance; the relative effect when the control mean allows one."""

    absolute: float
    variance: float
    df: float
    total_units: int
    relative: float | None = None
    relative_variance: float | None = None
    relative_reason: str | None = None
    # The relative effect's denominator (the unadjusted control mean), the variance of that
    # mean and its covariance with Δ: what Fieller's interval for Δ/baseline needs.
    baseline: float | None = None
    baseline_variance: float | None = None
    covariance: float | None = None
    control_units: int = 0
    treatment_units: int = 0


@dataclass(frozen=True, slots=True)
class IntervalTest:
    """What a test says about an EffectEstimate: intervals, p-value and test statistic."""

    absolute_ci: tuple[float, float]
    relative_ci: tuple[float, float] | None
    p_value: float
    statistic: float
    # Group sequential only: the boundary |statistic| had to reach at this look.
    z_boundary: float | None = None


def welch_satterthwaite_df(
    var_control: float, n_control: int, var_treatment: float, n_treatment: int
) -> float:
    """Degrees of freedom of Δ/√V when the two arms have different variances."""
    a, b = var_treatment / n_treatment, var_control / n_control
    # Written with the shares a/(a + b), b/(a + b): the textbook form squares tiny variances
    # and underflows to 0/0, this one does not (and is scale-free).
    share_t, share_c = a / (a + b), b / (a + b)
    return 1.0 / (share_t * share_t / (n_treatment - 1) + share_c * share_c / (n_control - 1))


def difference_estimate(
    control: ArmMoments,
    treatment: ArmMoments,
    *,
    control_mean: float | None = None,
    baseline_variance: float | None = None,
    covariance: float | None = None,
) -> EffectEstimate | Undefined:
    """Δ = treatment − control; ``control_mean`` (unadjusted) is the relative baseline.

    ``baseline_variance`` and ``covariance`` (of the baseline mean, and of Δ with it) default
    to the unadjusted case, v_C and −v_C; CUPED passes its own.
    """
    if min(control.units, treatment.units) < 2:
        return Undefined("too_few_units")
    v_t, v_c = treatment.variance_of_mean, control.variance_of_mean
    variance = v_t + v_c
    # Both arms constant: no noise estimate, so neither a p-value nor an interval exists.
    if not variance > 0.0 or not math.isfinite(variance):
        return Undefined("zero_variance")
    delta = treatment.mean - control.mean
    df = welch_satterthwaite_df(
        control.variance, control.units, treatment.variance, treatment.units
    )
    baseline = control.mean if control_mean is None else control_mean
    total = control.units + treatment.units
    # A control mean that is zero, or zero up to float noise next to its spread (sums that
    # cancel), gives no meaningful relative effect: report it as undefined, not as 1e16.
    units: dict[str, Any] = {"control_units": control.units, "treatment_units": treatment.units}
    if baseline == 0.0 or abs(baseline) <= 1e-9 * math.sqrt(control.variance):
        return EffectEstimate(
            delta, variance, df, total, relative_reason="zero_control_mean", **units
        )
    fieller: dict[str, Any] = {
        "baseline": baseline,
        "baseline_variance": v_c if baseline_variance is None else baseline_variance,
        "covariance": -v_c if covariance is None else covariance,
        **units,
    }
    m_t = baseline + delta
    try:
        # (m_T/m_C)² first: the same formula without squaring a tiny m_C twice over.
        relative_variance = (v_t + v_c * (m_t / baseline) ** 2) / baseline**2
        relative = delta / baseline
    except (OverflowError, ZeroDivisionError):
        relative_variance = math.inf
    if not math.isfinite(relative_variance) or not math.isfinite(relative):
        return EffectEstimate(
            delta, variance, df, total, relative_reason="relative_overflow", **units
        )
    return EffectEstimate(delta, variance, df, total, relative, relative_variance, **fieller)


def welch_test(estimate: EffectEstimate, alpha: float = 0.05) -> IntervalTest:
    """Fixed-horizon Welch t test: intervals at level 1 − α and the two-sided p-value."""
    se = math.sqrt(estimate.variance)
    statistic = estimate.absolute / se
    # special.stdtr/stdtrit are the Student t cdf/quantile ufuncs: same numbers as
    # scipy.stats.t, without its per-call overhead (the engine runs thousands per snapshot).
    p_value = float(2.0 * special.stdtr(estimate.df, -abs(statistic)))
    quantile = float(special.stdtrit(estimate.df, 1.0 - alpha / 2.0))
    half = quantile * se
    relative_ci = None
    if estimate.relative is not None and estimate.relative_variance is not None:
        relative_half = quantile * math.sqrt(estimate.relative_variance)
        relative_ci = (estimate.relative - relative_half, estimate.relative + relative_half)
    return IntervalTest(
        absolute_ci=(estimate.absolute - half, estimate.absolute + half),
        relative_ci=relative_ci,
        p_value=min(1.0, max(0.0, p_value)),
        statistic=statistic,
    )
