"""One call from sufficient statistics to the contract's comparisons, decisions and SRM check.

``analyze`` takes the variants of one metric (the first is the control) and:

1. turns each variant's totals into an estimate and per-unit variance (``moments``);
2. applies CUPED when every variant carries covariate sums (``cuped``);
3. compares each treatment with the control: Δ, relative Δ, intervals and p-value by the
   chosen method (``fixed`` Welch, ``sequential`` confidence sequence, ``group_sequential``
   Lan–DeMets boundary at a planned look);
4. corrects the treatments' p-values (Holm by default), marks ``significant`` when the
   adjusted p ≤ α and decides win / loss / inconclusive in the metric's direction;
5. checks the split of units for a sample ratio mismatch.

Undefined cases give None fields and a ``reason``; only impossible inputs or settings raise
StatsInputError (with field names). ``correct_comparisons`` re-corrects comparisons of several
metrics at once (the snapshot service's primary + secondary family).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from analysis.stats.cuped import cuped_adjusted_moments, cuped_theta, pooled_covariate_mean
from analysis.stats.fixed import EffectEstimate, IntervalTest, difference_estimate, welch_test
from analysis.stats.group_sequential import (
    GroupSequentialBoundaries,
    check_information_fractions,
    equal_information_fractions,
    group_sequential_test,
    obrien_fleming_boundaries,
)
from analysis.stats.inputs import METRIC_TYPES, StatsInputError, VariantStats, check_variants
from analysis.stats.moments import ArmMoments, Undefined, arm_moments, sample_covariance
from analysis.stats.multiple_testing import CORRECTIONS, adjust_p_values
from analysis.stats.sequential import DEFAULT_SEQUENTIAL_TUNING, sequential_test
from analysis.stats.srm import DEFAULT_SRM_THRESHOLD, SRMResult, sample_ratio_mismatch

Method = Literal["fixed", "sequential", "group_sequential"]
METHODS: tuple[str, ...] = ("fixed", "sequential", "group_sequential")
DIRECTIONS: tuple[str, ...] = ("increase", "decrease")
Decision = Literal["win", "loss", "inconclusive", "not_ready"]


def json_float(value: float | None) -> float | None:
    """JSON has no NaN or infinity: map them to null (the engine should never produce them)."""
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def _json_interval(interval: tuple[float, float] | None) -> list[float | None] | None:
    if interval is None:
        return None
    return [json_float(interval[0]), json_float(interval[1])]


@dataclass(frozen=True, slots=True)
class VariantSummary:
    """One variant as reported: units, unadjusted estimate and per-unit variance."""

    variant: str
    units: int
    mean: float | None
    variance: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "variant": self.variant,
            "units": self.units,
            "mean": json_float(self.mean),
            "variance": json_float(self.variance),
        }


@dataclass(frozen=True, slots=True)
class Comparison:
    """A treatment against the baseline (control), shaped as the contract's §8 comparison."""

    variant: str
    baseline: str
    absolute_effect: float | None
    absolute_ci: tuple[float, float] | None
    relative_effect: float | None
    relative_ci: tuple[float, float] | None
    p_value: float | None
    adjusted_p_value: float | None
    significant: bool
    decision: Decision
    reason: str | None = None
    direction: str = "increase"
    # Δ/√V: the t (fixed) or z (sequential, group sequential) statistic.
    statistic: float | None = None
    # Group sequential: the |statistic| needed at this look.
    z_boundary: float | None = None
    # The deciding interval (docs/api.md §7): at the comparison's effective level under a
    # correction, else equal to absolute_ci.
    adjusted_ci: tuple[float, float] | None = None
    # The level the deciding interval and the relative interval are computed at.
    effective_alpha: float | None = None
    # Guardrails only: the one-sided always-valid harm test's verdict.
    harm: bool | None = None
    # This look's variance of Δ and total units: with absolute_effect, enough to recompute
    # the look's intervals at any level.
    variance: float | None = None
    total_units: int | None = None

    def to_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {
            "variant": self.variant,
            "baseline": self.baseline,
            "absolute_effect": json_float(self.absolute_effect),
            "absolute_ci": _json_interval(self.absolute_ci),
            "relative_effect": json_float(self.relative_effect),
            "relative_ci": _json_interval(self.relative_ci),
            "p_value": json_float(self.p_value),
            "adjusted_p_value": json_float(self.adjusted_p_value),
            "significant": self.significant,
            "decision": self.decision,
            "reason": self.reason,
            "direction": self.direction,
            "statistic": json_float(self.statistic),
            "adjusted_ci": _json_interval(self.adjusted_ci),
            "effective_alpha": json_float(self.effective_alpha),
            "variance": json_float(self.variance),
            "total_units": self.total_units,
        }
        if self.z_boundary is not None:
            result["z_boundary"] = json_float(self.z_boundary)
        if self.harm is not None:
            result["harm"] = self.harm
        return result

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Comparison:
        """Inverse of to_dict (a decision repeated from an earlier look is stored as JSON)."""

        def pair(value: Any) -> tuple[float, float] | None:
            if value is None or value[0] is None or value[1] is None:
                return None
            return (float(value[0]), float(value[1]))

        return cls(
            variant=data["variant"],
            baseline=data["baseline"],
            absolute_effect=data.get("absolute_effect"),
            absolute_ci=pair(data.get("absolute_ci")),
            relative_effect=data.get("relative_effect"),
            relative_ci=pair(data.get("relative_ci")),
            p_value=data.get("p_value"),
            adjusted_p_value=data.get("adjusted_p_value"),
            significant=bool(data.get("significant")),
            decision=data.get("decision", "inconclusive"),
            reason=data.get("reason"),
            direction=data.get("direction", "increase"),
            statistic=data.get("statistic"),
            z_boundary=data.get("z_boundary"),
            adjusted_ci=pair(data.get("adjusted_ci")),
            effective_alpha=data.get("effective_alpha"),
            harm=data.get("harm"),
            variance=data.get("variance"),
            total_units=data.get("total_units"),
        )


@dataclass(frozen=True, slots=True)
class AnalysisResult:
    metric_type: str
    method: str
    alpha: float
    cuped: bool
    variants: list[VariantSummary]
    comparisons: list[Comparison]
    srm: SRMResult
    correction: str = "holm"
    sequential_tuning: float | None = None
    boundaries: GroupSequentialBoundaries | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {
            "metric_type": self.metric_type,
            "method": self.method,
            "alpha": self.alpha,
            "cuped": self.cuped,
            "correction": self.correction,
            "variants": [v.to_dict() for v in self.variants],
            "comparisons": [c.to_dict() for c in self.comparisons],
            "srm": self.srm.to_dict(),
            "notes": list(self.notes),
        }
        if self.sequential_tuning is not None:
            result["sequential_tuning"] = self.sequential_tuning
        if self.boundaries is not None:
            result["boundaries"] = self.boundaries.to_dict()
        return result


def decide(significant: bool, effect: float | None, direction: str) -> Decision:
    """Win when significant and the effect goes the metric's way, loss when the other way."""
    if not significant or effect is None or effect == 0.0:
        return "inconclusive"
    improves = effect > 0.0 if direction == "increase" else effect < 0.0
    return "win" if improves else "loss"


def correct_comparisons(
    comparisons: Sequence[Comparison], correction: str = "holm", alpha: float = 0.05
) -> list[Comparison]:
    """Adjust raw p-values over the whole family given; recompute significance and decision.

    Pass the primary and secondary comparisons of every metric together; guardrails alone.
    """
    adjusted = adjust_p_values([c.p_value for c in comparisons], correction)
    corrected: list[Comparison] = []
    for comparison, p in zip(comparisons, adjusted, strict=True):
        significant = p is not None and p <= alpha
        corrected.append(
            replace(
                comparison,
                adjusted_p_value=p,
                significant=significant,
                decision=decide(significant, comparison.absolute_effect, comparison.direction),
            )
        )
    return corrected


def _check_settings(
    metric_type: str,
    method: str,
    alpha: float,
    tuning: float | None,
    direction: str,
    correction: str,
    srm_threshold: float,
) -> None:
    errors: dict[str, str] = {}
    if metric_type not in METRIC_TYPES:
        errors["metric_type"] = f"must be one of {', '.join(METRIC_TYPES)}"
    if method not in METHODS:
        errors["method"] = f"must be one of {', '.join(METHODS)}"
    if not (isinstance(alpha, int | float) and 0.0 < alpha < 1.0):
        errors["alpha"] = "must be strictly between 0 and 1"
    if tuning is not None and not (
        isinstance(tuning, int | float) and math.isfinite(tuning) and tuning > 0
    ):
        errors["sequential_tuning"] = "must be a positive number of units"
    if direction not in DIRECTIONS:
        errors["direction"] = "must be increase or decrease"
    if correction not in CORRECTIONS:
        errors["correction"] = f"must be one of {', '.join(CORRECTIONS)}"
    if not (isinstance(srm_threshold, int | float) and 0.0 < srm_threshold < 1.0):
        errors["srm_threshold"] = "must be strictly between 0 and 1"
    if errors:
        raise StatsInputError(errors)


def _group_sequential_plan(
    alpha: float,
    look: int | None,
    planned_looks: int | None,
    information_fractions: Sequence[float] | None,
) -> GroupSequentialBoundaries:
    errors: dict[str, str] = {}
    fractions: tuple[float, ...] = ()
    if information_fractions is not None:
        try:
            fractions = check_information_fractions(information_fractions)
        except ValueError as error:
            errors["information_fractions"] = str(error)
        if planned_looks is not None and len(fractions) != planned_looks and not errors:
            errors["information_fractions"] = "one fraction per planned look is needed"
    elif planned_looks is None or isinstance(planned_looks, bool) or planned_looks < 1:
        errors["planned_looks"] = "group_sequential needs planned_looks >= 1"
    else:
        fractions = equal_information_fractions(planned_looks)
    if not errors and (look is None or isinstance(look, bool) or not 1 <= look <= len(fractions)):
        errors["look"] = f"group_sequential needs the look number, 1 to {len(fractions)}"
    if errors:
        raise StatsInputError(errors)
    return obrien_fleming_boundaries(len(fractions), alpha, fractions)


def _summary(
    variant: VariantStats, moments: ArmMoments | Undefined, metric_type: str
) -> VariantSummary:
    if isinstance(moments, ArmMoments):
        return VariantSummary(variant.key, variant.n, moments.mean, moments.variance)
    mean: float | None = None
    if variant.n > 0:
        if metric_type == "ratio":
            denominator = variant.denominator_sum or 0.0
            mean = variant.sum / denominator if denominator else None
        else:
            mean = variant.sum / variant.n
    return VariantSummary(variant.key, variant.n, mean, None)


def _cuped_moments(
    metric_type: str,
    variants: Sequence[VariantStats],
    raw: Sequence[ArmMoments | Undefined],
    notes: list[str],
) -> list[ArmMoments | Undefined] | None:
    """CUPED-adjusted moments, or None (with a note saying why) when it cannot apply."""
    any_covariate = any(
        v.covariate_sum is not None or v.covariate_sum_squares is not None for v in variants
    )
    if metric_type == "ratio":
        if any_covariate:
            notes.append("cuped_not_supported_for_ratio")
        return None
    if not any_covariate:
        return None
    theta = cuped_theta(variants)
    if isinstance(theta, Undefined):
        notes.append(theta.reason)
        return None
    x_mean = pooled_covariate_mean(variants)
    return [
        cuped_adjusted_moments(m, v, theta, x_mean) if isinstance(m, ArmMoments) else m
        for v, m in zip(variants, raw, strict=True)
    ]


def _comparison(
    control: VariantStats,
    treatment: VariantStats,
    estimate: EffectEstimate | Undefined,
    test: IntervalTest | None,
    direction: str,
    adjusted_p_value: float | None,
    alpha: float,
) -> Comparison:
    if isinstance(estimate, Undefined) or test is None:
        reason = estimate.reason if isinstance(estimate, Undefined) else "undefined"
        return Comparison(
            treatment.key, control.key, None, None, None, None, None, None, False,
            "inconclusive", reason, direction,
        )  # fmt: skip
    # Same rule as correct_comparisons, applied while building (dataclasses.replace is slow).
    significant = adjusted_p_value is not None and adjusted_p_value <= alpha
    return Comparison(
        variant=treatment.key,
        baseline=control.key,
        absolute_effect=estimate.absolute,
        absolute_ci=test.absolute_ci,
        relative_effect=estimate.relative,
        relative_ci=test.relative_ci,
        p_value=test.p_value,
        adjusted_p_value=adjusted_p_value,
        significant=significant,
        decision=decide(significant, estimate.absolute, direction),
        reason=estimate.relative_reason,
        direction=direction,
        statistic=test.statistic,
        z_boundary=test.z_boundary,
    )


@dataclass(frozen=True, slots=True)
class MetricEstimates:
    """One metric at one look: each arm as reported and each treatment's effect estimate."""

    variants: tuple[VariantSummary, ...]
    # One per treatment (variants[1:]), against the control.
    estimates: tuple[EffectEstimate | Undefined, ...]
    cuped: bool
    notes: tuple[str, ...]


def _cuped_baseline_terms(
    variant: VariantStats, raw: ArmMoments, theta: float
) -> tuple[float, float]:
    """Var(ȳ_C) and Cov(Δ_adj, ȳ_C) for Fieller's interval under CUPED.

    Δ_adj = (ȳ_T − θx̄_T) − (ȳ_C − θx̄_C), so Cov(Δ_adj, ȳ_C) = −(s²_Y − θ·s_XY)/n_C (θ taken
    as fixed, as in the variance of Δ_adj itself).
    """
    assert variant.covariate_sum is not None and variant.cross_sum is not None
    n = variant.n
    cov_xy = sample_covariance(n, variant.covariate_sum, variant.sum, variant.cross_sum)
    return raw.variance / n, -(raw.variance - theta * cov_xy) / n


def metric_estimates(
    metric_type: str, variants: Sequence[VariantStats], *, cuped: bool = True
) -> MetricEstimates:
    """Moments per arm (CUPED-adjusted when possible) and Δ of each treatment vs the control."""
    notes: list[str] = []
    raw = [arm_moments(metric_type, v) for v in variants]
    theta = None
    adjusted = _cuped_moments(metric_type, variants, raw, notes) if cuped else None
    if adjusted is not None:
        theta_value = cuped_theta(variants)
        theta = theta_value if isinstance(theta_value, float) else None
    moments = adjusted if adjusted is not None else raw
    control_raw, control = raw[0], moments[0]
    estimates: list[EffectEstimate | Undefined] = []
    for treatment in moments[1:]:
        if isinstance(control, Undefined) or isinstance(treatment, Undefined):
            undefined = control if isinstance(control, Undefined) else treatment
            assert isinstance(undefined, Undefined)
            estimates.append(undefined)
            continue
        assert isinstance(control_raw, ArmMoments)
        baseline_variance = covariance = None
        if theta is not None and control_raw.units > 1:
            baseline_variance, covariance = _cuped_baseline_terms(variants[0], control_raw, theta)
        estimates.append(
            difference_estimate(
                control,
                treatment,
                control_mean=control_raw.mean,
                baseline_variance=baseline_variance,
                covariance=covariance,
            )
        )
    return MetricEstimates(
        variants=tuple(_summary(v, m, metric_type) for v, m in zip(variants, raw, strict=True)),
        estimates=tuple(estimates),
        cuped=adjusted is not None,
        notes=tuple(notes),
    )


def _finite_test(test: IntervalTest) -> bool:
    numbers = [*test.absolute_ci, test.p_value, test.statistic, *(test.relative_ci or ())]
    return all(math.isfinite(value) for value in numbers)


def analyze(
    metric_type: str,
    method: str,
    variants: Sequence[VariantStats],
    *,
    alpha: float = 0.05,
    sequential_tuning: float | None = None,
    expected_weights: Sequence[float] | None = None,
    srm_threshold: float = DEFAULT_SRM_THRESHOLD,
    cuped: bool = True,
    direction: str = "increase",
    correction: str = "holm",
    look: int | None = None,
    planned_looks: int | None = None,
    information_fractions: Sequence[float] | None = None,
) -> AnalysisResult:
    """Analyse one metric: control = ``variants[0]``, every other variant is compared to it.

    ``sequential_tuning`` is N* in total units (default 5000). ``look`` (1-based) and
    ``planned_looks`` or ``information_fractions`` are needed for ``group_sequential``.
    ``correction`` applies over this metric's treatments; use ``correction="none"`` and then
    ``correct_comparisons`` to correct over several metrics together.
    """
    _check_settings(
        metric_type, method, alpha, sequential_tuning, direction, correction, srm_threshold
    )
    check_variants(metric_type, variants)
    weights = None if expected_weights is None else list(expected_weights)
    srm = sample_ratio_mismatch({v.key: v.n for v in variants}, weights, srm_threshold)
    boundaries = None
    if method == "group_sequential":
        boundaries = _group_sequential_plan(alpha, look, planned_looks, information_fractions)
    tuning = float(sequential_tuning or DEFAULT_SEQUENTIAL_TUNING)

    measured = metric_estimates(metric_type, variants, cuped=cuped)
    notes = list(measured.notes)
    tested: list[tuple[VariantStats, EffectEstimate | Undefined, IntervalTest | None]] = []
    for treatment_stats, estimate in zip(variants[1:], measured.estimates, strict=True):
        test: IntervalTest | None = None
        if isinstance(estimate, EffectEstimate):
            try:
                if method == "fixed":
                    test = welch_test(estimate, alpha)
                elif method == "sequential":
                    test = sequential_test(estimate, alpha, tuning)
                else:
                    assert boundaries is not None and look is not None
                    test = group_sequential_test(
                        estimate, alpha, look, boundaries.information_fractions
                    )
            except (OverflowError, ZeroDivisionError):
                test = None
            # Totals near float limits can still overflow; report that instead of inf/NaN.
            if test is None or not _finite_test(test):
                estimate, test = Undefined("numerical_overflow"), None
        tested.append((treatment_stats, estimate, test))
    adjusted_p = adjust_p_values(
        [None if t is None else t.p_value for _, _, t in tested], correction
    )
    comparisons = [
        _comparison(variants[0], stats, estimate, test, direction, p, alpha)
        for (stats, estimate, test), p in zip(tested, adjusted_p, strict=True)
    ]

    return AnalysisResult(
        metric_type=metric_type,
        method=method,
        alpha=alpha,
        cuped=measured.cuped,
        variants=list(measured.variants),
        comparisons=comparisons,
        srm=srm,
        correction=correction,
        sequential_tuning=tuning if method == "sequential" else None,
        boundaries=boundaries,
        notes=notes,
    )
