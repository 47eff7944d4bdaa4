"""Fieller's interval for a relative effect r = a/b (Fieller 1954, "Some problems in interval
estimation", JRSS B 16:175–185).

The relative effect is Δ/m_C. The delta method (``fixed.py``) treats it as roughly normal, which
fails when the control mean is noisy: its interval is symmetric around a skewed estimate, and
undercovers. Fieller inverts an exact-under-normality statement instead. With a the numerator,
b the denominator, V_a, V_b their variances, C their covariance and c the critical value, the
true r makes a − r·b a mean-zero normal of variance V_a − 2r·C + r²·V_b, so the interval is

    { r : (a − r·b)² ≤ c²·(V_a − 2r·C + r²·V_b) },

i.e. A·r² + B·r + D ≤ 0 with A = b² − c²·V_b, B = −2(a·b − c²·C), D = a² − c²·V_a. It is a
bounded interval exactly when A > 0 (b is significantly away from 0); otherwise the set is the
whole line or the complement of an interval, and is reported as unbounded.

Since the quadratic at r = 0 equals D, a bounded interval holds 0 exactly when a² ≤ c²·V_a,
i.e. exactly when the absolute interval a ± c·√V_a does: the relative and absolute intervals
never disagree about significance (the delta-method one can). That equivalence is decided here
from ``abs(a) <= c * sqrt(V_a)``, the same float computation as the absolute interval, and the
bounds are nudged by at most a rounding error to agree with it.

Inputs for the two arms (v = variance of an arm's mean, arms independent):

- plain: a = m_T − m_C, b = m_C, V_a = v_T + v_C, V_b = v_C, C = cov(m_T − m_C, m_C) = −v_C.
- CUPED: a = Δ_adj = (ȳ_T − θ·x̄_T) − (ȳ_C − θ·x̄_C) (the pooled-mean shift cancels), V_a its
  variance as CUPED computes it, b = ȳ_C the *unadjusted* control mean (the baseline users
  know), V_b = s²_{Y,C}/n_C. Treating θ as fixed (as CUPED's own variance does; its error is of
  smaller order) and the arms as independent, only the control part of Δ_adj covaries with ȳ_C:

      C = cov(Δ_adj, ȳ_C) = −cov(ȳ_C − θ·x̄_C, ȳ_C) = −(Var ȳ_C − θ·cov(x̄_C, ȳ_C))
        = −(s²_{Y,C} − θ·cov_{XY,C}) / n_C.

  With θ = 0 this is the plain case.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from analysis.stats.inputs import StatsInputError
from analysis.stats.moments import ArmMoments

UNBOUNDED_REASON = "relative_unbounded"
OVERFLOW_REASON = "relative_overflow"


@dataclass(frozen=True, slots=True)
class RatioInterval:
    """Fieller's interval for a ratio; both bounds None when there is none, and ``reason``
    says why: "relative_unbounded" (the denominator is not clearly away from 0) or, for
    magnitudes no data produce, "relative_overflow"."""

    low: float | None
    high: float | None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class RatioMoments:
    """The numerator and denominator of a ratio, their variances and their covariance."""

    numerator: float
    denominator: float
    var_numerator: float
    var_denominator: float
    covariance: float


def plain_ratio_moments(control: ArmMoments, treatment: ArmMoments) -> RatioMoments:
    """a = m_T − m_C over b = m_C, for two independent arms without CUPED."""
    v_t, v_c = treatment.variance_of_mean, control.variance_of_mean
    return RatioMoments(
        numerator=treatment.mean - control.mean,
        denominator=control.mean,
        var_numerator=v_t + v_c,
        var_denominator=v_c,
        covariance=-v_c,
    )


def cuped_ratio_moments(
    adjusted_difference: float,
    var_adjusted_difference: float,
    control_mean: float,
    control_variance: float,
    control_covariance_xy: float,
    theta: float,
    control_units: int,
) -> RatioMoments:
    """a = Δ_adj over b = the unadjusted control mean ȳ_C (derivation in the module docstring).

    ``control_variance`` is s²_{Y,C} and ``control_covariance_xy`` cov_{XY,C}, both per unit
    within the control arm; ``theta`` is the CUPED θ that produced Δ_adj.
    """
    return RatioMoments(
        numerator=adjusted_difference,
        denominator=control_mean,
        var_numerator=var_adjusted_difference,
        var_denominator=control_variance / control_units,
        covariance=-(control_variance - theta * control_covariance_xy) / control_units,
    )


def _finite(value: float) -> bool:
    return math.isfinite(value)


def fieller_relative_interval(
    numerator: float,
    denominator: float,
    var_numerator: float,
    var_denominator: float,
    covariance: float,
    critical_value: float,
) -> RatioInterval:
    """Fieller's interval for numerator/denominator at critical value c (e.g. 1.96, or a t).

    Raises StatsInputError for non-finite inputs, negative variances or a negative c.
    """
    a, b, c = numerator, denominator, critical_value
    v_a, v_b, cov = var_numerator, var_denominator, covariance
    values = (a, b, v_a, v_b, cov, c)
    if not all(_finite(v) for v in values) or v_a < 0.0 or v_b < 0.0 or c < 0.0:
        raise StatsInputError(
            {"fieller": "inputs must be finite, with variances and critical value ≥ 0"}
        )
    # A covariance matrix is positive semi-definite; moment sums can miss that by float noise,
    # and then a − r·b could get a negative "variance". Clamp to the Cauchy–Schwarz range.
    limit = math.sqrt(v_a * v_b)
    cov = min(limit, max(-limit, cov))
    # The set is unchanged when a and b are multiplied by s and the (co)variances by s².
    # Measured in units of the denominator (s a power of 2, so exact), the squares below
    # neither underflow to 0 nor overflow: a = 7e-240 over b = 5e-138 would otherwise
    # collapse the interval onto 0.
    a_s, v_a_s = a, v_a
    size = max(abs(b), math.sqrt(v_b))
    if size > 0.0:
        s = math.ldexp(1.0, -math.frexp(size)[1])
        a_s, b, v_a_s, v_b, cov = a * s, b * s, v_a * s * s, v_b * s * s, cov * s * s
    c2 = c * c
    quad = b * b - c2 * v_b
    half_b = -(a_s * b - c2 * cov)
    const = a_s * a_s - c2 * v_a_s
    discriminant = half_b * half_b - quad * const
    if not all(_finite(v) for v in (quad, const, discriminant)):
        # Only for magnitudes near 1e154, where squares overflow: no data set has those.
        return RatioInterval(None, None, OVERFLOW_REASON)
    # The denominator is not significantly away from 0: the set is not a bounded interval.
    if quad <= 0.0:
        return RatioInterval(None, None, UNBOUNDED_REASON)
    # Mathematically ≥ 0 (r = a/b is always in the set); clamp cancellation noise.
    discriminant = max(0.0, discriminant)
    # Roots of quad·r² + 2·half_b·r + const, in the form that avoids cancelling the larger
    # one against √discriminant: q = −(half_b + sign·√disc), roots q/quad and const/q.
    q = -(half_b + math.copysign(math.sqrt(discriminant), half_b))
    # q = 0 needs half_b = 0 and disc = 0, so const = 0 too: the interval is the point 0.
    roots = (0.0, 0.0) if q == 0.0 else (q / quad, const / q)
    low, high = min(roots), max(roots)
    if not (_finite(low) and _finite(high)):
        return RatioInterval(None, None, OVERFLOW_REASON)
    # 0 is inside exactly when the absolute interval a ± c·√V_a holds 0, computed as that
    # interval is; the roots can miss it by a rounding error only, so move the nearer bound.
    zero_inside = abs(a) <= c * math.sqrt(v_a)
    if zero_inside:
        low, high = min(low, 0.0), max(high, 0.0)
    elif low <= 0.0 <= high:
        # The set lies on the side of its point estimate a/b, which is always inside it.
        if (a > 0.0) == (b > 0.0):
            low = math.nextafter(0.0, 1.0)
            high = max(high, low)
        else:
            high = math.nextafter(0.0, -1.0)
            low = min(low, high)
    return RatioInterval(low, high)
