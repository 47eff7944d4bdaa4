"""The decision rule: one function from a look at the data (and the looks before it) to verdicts.

Snapshots, ``POST /stats``, the simulations in ``benchmarks/type1.py`` and everything that acts
on a result (summary text, dashboard, exports, alerts, rollbacks) go through ``decide_look``.
It is pure: the caller passes the experiment's settings, each metric's sufficient statistics at
this look and the ``DecisionState`` the previous look returned, and stores the new state.

The rule (docs/statistics.md tells it in words):

- ``significant`` ⟺ the deciding interval excludes 0 ⟺ the deciding p-value ≤ α. Without a
  correction the deciding interval is the reported one; with one (two or more comparisons in
  the primary + secondary family) it is ``adjusted_ci``, the interval at the comparison's
  effective level α' (Holm: α/(m−k+1) for a rejected rank k, α/(m−j+1) from the first
  non-rejected rank j on; Benjamini–Hochberg: α·R/m, or α/m when nothing is rejected).
- The relative interval is Fieller's interval at the deciding interval's critical value, so it
  excludes 0 exactly when that interval does; unbounded → null with ``relative_unbounded``.
- ``win``/``loss`` come from the side of 0 the deciding interval lies on and the direction.
- ``not_ready`` until both arms have ``min_units_per_variant`` analysed units, until a fixed
  test's planned sample size is reached, and (for metrics that ask for it, under always-valid
  tests) until the difference of means is nearly symmetric (|skewness of Δ| ≤ 0.1,
  ``difference_skewness``; Kohavi et al.'s n ≥ 355·g² rule in the form of Δ, calibrated by
  simulation).
- Sequential: running minimum p and running intersection of confidence sequences, at every
  level a correction may need, so that the duality p ≤ α' ⟺ interval excludes 0 holds for the
  running values too. Sequential intervals at α' keep ρ² of the nominal α (and N*).
- Group sequential: a look when the information fraction t = analysed units / planned first
  reaches the next planned fraction k/K; α spent at the fractions actually reached; a crossing
  or t = 1 is final; snapshots between looks repeat the last look.
- Fixed: analysed once, at the first look at or after the planned sample size, then repeated.
- Guardrails, whatever the method: one-sided always-valid harm test at guardrail_alpha shared
  (Bonferroni) by all guardrail × treatment pairs; ``harm`` is sticky and is the only trigger
  of alerts and automatic actions.
- SRM: Pearson's χ² for information, and a sequential Dirichlet–multinomial test whose flag,
  once raised, stays.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from scipy import special

from analysis.stats.analyze import (
    Comparison,
    Decision,
    MetricEstimates,
    VariantSummary,
    metric_estimates,
)
from analysis.stats.fieller import fieller_relative_interval
from analysis.stats.fixed import EffectEstimate
from analysis.stats.group_sequential import _spending_boundaries, group_sequential_p_value
from analysis.stats.inputs import StatsInputError, VariantStats, check_variants
from analysis.stats.moments import Undefined
from analysis.stats.multiple_testing import CORRECTIONS
from analysis.stats.sequential import DEFAULT_SEQUENTIAL_TUNING, mixture_rho_squared
from analysis.stats.srm import SRMResult, sample_ratio_mismatch, sequential_srm_p_value

DEFAULT_MIN_UNITS_PER_VARIANT = 100
DEFAULT_PLANNED_LOOKS = 5
DEFAULT_GUARDRAIL_ALPHA = 0.05
# Kohavi, Tang & Xu (2020), ch. 17: the normal approximation of a mean needs n > 355·g²,
# g the skewness of the per-unit values.
HEAVY_TAIL_FACTOR = 355.0
# The always-valid gate asks |skewness of Δ| ≤ this. The 355·g² rule asked of Δ would be
# 1/√355 ≈ 0.053; with lognormal σ = 2 revenue capped at p99 that held 0.8/0.2 splits back
# for weeks (4 % of simulated experiments decidable within 15 days) while 0.1 keeps the
# sequential A/A error under α at 0.5/0.5, 0.8/0.2 and 0.9/0.1 (docs/statistics.md).
HEAVY_TAIL_MAX_DIFFERENCE_SKEWNESS = 0.1
GUARDRAIL = "guardrail"


@dataclass(frozen=True, slots=True)
class DecisionSettings:
    method: str = "sequential"
    alpha: float = 0.05
    sequential_tuning: float | None = None
    planned_sample_size: int | None = None
    planned_looks: int = DEFAULT_PLANNED_LOOKS
    correction: str = "holm"
    min_units_per_variant: int = DEFAULT_MIN_UNITS_PER_VARIANT
    guardrail_alpha: float = DEFAULT_GUARDRAIL_ALPHA
    srm_threshold: float = 0.001

    @property
    def tuning(self) -> float:
        """N* of the confidence sequences: the setting, else the planned size, else 5000."""
        return float(
            self.sequential_tuning or self.planned_sample_size or DEFAULT_SEQUENTIAL_TUNING
        )


@dataclass(frozen=True, slots=True)
class MetricInput:
    """One metric at this look: its role and sufficient statistics (control first)."""

    key: str
    metric_type: str
    variants: tuple[VariantStats, ...]
    role: str = "primary"
    direction: str = "increase"
    cuped: bool = True
    # Guardrails: harm only beyond this relative change in the harmful direction (≥ 0).
    harm_margin: float | None = None
    # Wait for each arm to reach 355·g² units before deciding (sum/mean metrics).
    gate_heavy_tail: bool = False


@dataclass(slots=True)
class RunningInterval:
    """A running intersection of one comparison's intervals at one level."""

    absolute: tuple[float, float] | None = None
    relative: tuple[float, float] | None = None
    # A look's relative interval was unbounded while its absolute one excluded 0: the
    # intersection of the bounded ones alone could contradict the verdict.
    relative_gap: bool = False
    conflict: bool = False

    def to_json(self) -> list[Any]:
        return [self.absolute, self.relative, self.relative_gap, self.conflict]

    @classmethod
    def from_json(cls, data: Sequence[Any]) -> RunningInterval:
        return cls(_pair(data[0]), _pair(data[1]), bool(data[2]), bool(data[3]))


@dataclass(slots=True)
class ComparisonState:
    """What one metric × treatment carries from look to look."""

    looks: int = 0
    min_p: float | None = None
    intervals: dict[str, RunningInterval] = field(default_factory=dict)
    harm: bool = False
    # Fixed and group sequential: the decision repeated until the next look.
    repeated: Comparison | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "looks": self.looks,
            "min_p": self.min_p,
            "intervals": {level: i.to_json() for level, i in self.intervals.items()},
            "harm": self.harm,
            "repeated": None if self.repeated is None else self.repeated.to_dict(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ComparisonState:
        repeated = data.get("repeated")
        return cls(
            looks=int(data.get("looks", 0)),
            min_p=data.get("min_p"),
            intervals={
                level: RunningInterval.from_json(value)
                for level, value in (data.get("intervals") or {}).items()
            },
            harm=bool(data.get("harm")),
            repeated=None if repeated is None else Comparison.from_dict(repeated),
        )


@dataclass(slots=True)
class DecisionState:
    """Everything a look leaves for the next one; JSON-serialisable (``to_json``)."""

    comparisons: dict[str, ComparisonState] = field(default_factory=dict)
    look_fractions: list[float] = field(default_factory=list)
    # Planned fractions k/K reached so far (group sequential).
    fractions_reached: int = 0
    final: bool = False
    fixed_analysed: bool = False
    srm_min_p: float | None = None
    srm_flagged_at: str | None = None
    snapshots: int = 0
    # After a rollback the SRM test restarts on the units first exposed since then
    # (docs/api.md §7): the time it counts from, so a new rollback can restart it again.
    srm_since: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "comparisons": {key: c.to_json() for key, c in self.comparisons.items()},
            "look_fractions": list(self.look_fractions),
            "fractions_reached": self.fractions_reached,
            "final": self.final,
            "fixed_analysed": self.fixed_analysed,
            "srm_min_p": self.srm_min_p,
            "srm_flagged_at": self.srm_flagged_at,
            "snapshots": self.snapshots,
            "srm_since": self.srm_since,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> DecisionState:
        if not data:
            return cls()
        return cls(
            comparisons={
                key: ComparisonState.from_json(value)
                for key, value in (data.get("comparisons") or {}).items()
            },
            look_fractions=[float(f) for f in data.get("look_fractions") or []],
            fractions_reached=int(data.get("fractions_reached", 0)),
            final=bool(data.get("final")),
            fixed_analysed=bool(data.get("fixed_analysed")),
            srm_min_p=data.get("srm_min_p"),
            srm_flagged_at=data.get("srm_flagged_at"),
            snapshots=int(data.get("snapshots", 0)),
            srm_since=data.get("srm_since"),
        )


@dataclass(frozen=True, slots=True)
class Look:
    number: int
    information_fraction: float | None
    z_boundary: float | None
    final: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "information_fraction": self.information_fraction,
            "z_boundary": self.z_boundary,
            "final": self.final,
        }


@dataclass(frozen=True, slots=True)
class Warning:
    code: str
    message: str
    metric: str | None = None

    def to_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.metric is not None:
            result["metric"] = self.metric
        return result


@dataclass(frozen=True, slots=True)
class MetricResult:
    key: str
    metric_type: str
    role: str
    direction: str
    cuped: bool
    variants: tuple[VariantSummary, ...]
    comparisons: tuple[Comparison, ...]
    notes: tuple[str, ...] = ()


GUARDRAIL_STATUS_TEXT = {
    "no_guardrails": "No guardrails",
    "not_enough_data": "Guardrails: not enough data yet",
    "no_harm_detected": "Guardrails: no harm detected",
    "harm_detected": "Guardrails: harm detected",
}


@dataclass(frozen=True, slots=True)
class LookResult:
    """The decisions at one look, for every metric, with the experiment-level findings."""

    method: str
    alpha: float
    correction: str
    look: Look
    metrics: tuple[MetricResult, ...]
    srm: SRMResult
    warnings: tuple[Warning, ...]

    @property
    def harms(self) -> list[tuple[str, str]]:
        """(metric, variant) of every guardrail comparison with harm: what may act."""
        return [
            (m.key, c.variant)
            for m in self.metrics
            if m.role == GUARDRAIL
            for c in m.comparisons
            if c.harm
        ]

    @property
    def guardrail_status(self) -> str:
        guardrails = [c for m in self.metrics if m.role == GUARDRAIL for c in m.comparisons]
        if not guardrails:
            return "no_guardrails"
        if any(c.harm for c in guardrails):
            return "harm_detected"
        if any(c.decision == "not_ready" for c in guardrails):
            return "not_enough_data"
        return "no_harm_detected"


# ---------------------------------------------------------------------------- critical values


def level_key(level: float) -> str:
    return f"{level:.12g}"


def sequential_critical_value(
    total_units: float, alpha: float, level: float, tuning: float
) -> float:
    """c with half-width c·√V of the confidence sequence at ``level`` (ρ² from ``alpha``).

    The mSPRT p-value (a function of ρ² only) is ≤ level exactly when |Δ|/√V ≥ c.
    """
    rho2 = mixture_rho_squared(alpha, tuning)
    n = float(total_units)
    n_rho2_plus_1 = n * rho2 + 1.0
    radius = 2.0 * n_rho2_plus_1 / (n * rho2) * math.log(math.sqrt(n_rho2_plus_1) / level)
    return math.sqrt(radius)


def sequential_p_value(estimate: EffectEstimate, alpha: float, tuning: float) -> float:
    rho2 = mixture_rho_squared(alpha, tuning)
    n = float(estimate.total_units)
    n_rho2_plus_1 = n * rho2 + 1.0
    z2 = estimate.absolute * estimate.absolute / estimate.variance
    log_p = 0.5 * math.log(n_rho2_plus_1) - rho2 * n * z2 / (2.0 * n_rho2_plus_1)
    return min(1.0, math.exp(min(0.0, log_p)))


def fixed_critical_value(df: float, level: float) -> float:
    return float(special.stdtrit(df, 1.0 - level / 2.0))


def fixed_p_value(estimate: EffectEstimate) -> float:
    statistic = estimate.absolute / math.sqrt(estimate.variance)
    return min(1.0, max(0.0, float(2.0 * special.stdtr(estimate.df, -abs(statistic)))))


def group_sequential_boundary(fractions: Sequence[float], level: float) -> float:
    return _spending_boundaries(tuple(fractions), level)[-1]


# ---------------------------------------------------------------------------- corrections


def effective_levels(
    p_values: Sequence[float | None], correction: str, alpha: float
) -> list[tuple[float | None, float]]:
    """(adjusted p, effective level α') per comparison, in input order (docs/api.md §7).

    Undefined p-values count in the family size m (as never rejected) and stay None.
    """
    m = len(p_values)
    if correction == "none" or m < 2:
        return [(p, alpha) for p in p_values]
    order = sorted(range(m), key=lambda i: (1.0 if p_values[i] is None else p_values[i], i))
    ranked = [1.0 if p_values[i] is None else float(p_values[i]) for i in order]  # type: ignore[arg-type]
    adjusted = [0.0] * m
    levels = [0.0] * m
    if correction == "holm":
        running = 0.0
        first_kept = m
        for rank, p in enumerate(ranked):
            running = max(running, min(1.0, (m - rank) * p))
            adjusted[rank] = running
            if first_kept == m and p > alpha / (m - rank):
                first_kept = rank
        for rank in range(m):
            levels[rank] = alpha / (m - min(rank, first_kept))
    else:
        running = 1.0
        for rank in range(m - 1, -1, -1):
            running = min(running, m / (rank + 1) * ranked[rank])
            adjusted[rank] = min(1.0, running)
        rejections = max(
            (rank + 1 for rank, p in enumerate(ranked) if p <= alpha * (rank + 1) / m),
            default=0,
        )
        levels = [alpha * max(rejections, 1) / m] * m
    result: list[tuple[float | None, float]] = [(None, alpha)] * m
    for rank, index in enumerate(order):
        result[index] = (None if p_values[index] is None else adjusted[rank], levels[rank])
    return result


def candidate_levels(family_size: int, correction: str, alpha: float) -> list[float]:
    """Every level ``effective_levels`` can hand out for this family, nominal α first."""
    if correction == "none" or family_size < 2:
        return [alpha]
    if correction == "holm":
        others = [alpha / j for j in range(2, family_size + 1)]
    else:
        others = [alpha * j / family_size for j in range(1, family_size)]
    return [alpha, *others]


# ---------------------------------------------------------------------------- intervals


def _pair(value: Any) -> tuple[float, float] | None:
    if value is None or value[0] is None or value[1] is None:
        return None
    return (float(value[0]), float(value[1]))


def _excludes_zero(interval: tuple[float, float] | None) -> bool:
    return interval is not None and (interval[0] > 0.0 or interval[1] < 0.0)


def _look_intervals(
    estimate: EffectEstimate, critical: float
) -> tuple[tuple[float, float], tuple[float, float] | None, bool]:
    """Absolute interval, Fieller's relative interval (None when unbounded), and whether an
    unbounded relative interval hides an absolute one that excludes 0."""
    half = critical * math.sqrt(estimate.variance)
    absolute = (estimate.absolute - half, estimate.absolute + half)
    relative: tuple[float, float] | None = None
    if estimate.baseline is not None and estimate.baseline_variance is not None:
        ratio = fieller_relative_interval(
            estimate.absolute,
            estimate.baseline,
            estimate.variance,
            estimate.baseline_variance,
            estimate.covariance or 0.0,
            critical,
        )
        if ratio.low is not None and ratio.high is not None:
            relative = (ratio.low, ratio.high)
    return absolute, relative, relative is None and _excludes_zero(absolute)


def _intersect(
    previous: tuple[float, float] | None, new: tuple[float, float] | None
) -> tuple[tuple[float, float] | None, bool]:
    """Running intersection; an empty one keeps the previous interval if it excludes 0,
    else takes the new one (both then exclude 0), and reports the conflict."""
    if previous is None or new is None:
        return (new if previous is None else previous), False
    low, high = max(previous[0], new[0]), min(previous[1], new[1])
    if low <= high:
        return (low, high), False
    return (previous if _excludes_zero(previous) else new), True


def _fold(
    running: RunningInterval | None, estimate: EffectEstimate, critical: float
) -> RunningInterval:
    absolute, relative, gap = _look_intervals(estimate, critical)
    running = running or RunningInterval()
    new_absolute, absolute_conflict = _intersect(running.absolute, absolute)
    new_relative, relative_conflict = _intersect(running.relative, relative)
    return RunningInterval(
        absolute=new_absolute,
        relative=new_relative,
        relative_gap=running.relative_gap or gap,
        conflict=absolute_conflict or relative_conflict,
    )


def _consistent_relative(
    deciding: tuple[float, float] | None, relative: tuple[float, float] | None, gap: bool
) -> tuple[tuple[float, float] | None, str | None]:
    """The relative interval only when it cannot contradict the deciding one."""
    if relative is None:
        return None, "relative_unbounded"
    if gap and _excludes_zero(relative) != _excludes_zero(deciding):
        return None, "relative_unbounded"
    return relative, None


def _decision(deciding: tuple[float, float] | None, direction: str) -> Decision:
    if not _excludes_zero(deciding):
        return "inconclusive"
    assert deciding is not None
    up = deciding[0] > 0.0
    return "win" if up == (direction == "increase") else "loss"


def _harmful(running: RunningInterval, direction: str, margin: float | None) -> bool:
    """The interval lies wholly on the harmful side (of the relative margin, when set)."""
    if margin:
        relative = running.relative
        if relative is None:
            return False
        return relative[1] < -margin if direction == "increase" else relative[0] > margin
    absolute = running.absolute
    if absolute is None:
        return False
    return absolute[1] < 0.0 if direction == "increase" else absolute[0] > 0.0


# ---------------------------------------------------------------------------- readiness


def _central_moments(variant: VariantStats) -> tuple[float, float] | None:
    """(m₂, m₃), the second and third central moments, from Σy, Σy², Σy³."""
    n = variant.n
    if variant.sum_cubes is None or variant.sum_squares is None or n < 3:
        return None
    mean = variant.sum / n
    m2 = variant.sum_squares / n - mean * mean
    if m2 <= 1e-12 * max(1.0, variant.sum_squares / n):
        return None
    m3 = variant.sum_cubes / n - 3.0 * mean * variant.sum_squares / n + 2.0 * mean**3
    return m2, m3


def skewness(variant: VariantStats) -> float | None:
    """Sample skewness g = m₃/m₂^{3/2} (None when undefined)."""
    moments = _central_moments(variant)
    return None if moments is None else moments[1] / moments[0] ** 1.5


def difference_skewness(control: VariantStats, treatment: VariantStats) -> float | None:
    """Skewness of Δ = ȳ_T − ȳ_C: (m₃T/n_T² − m₃C/n_C²) / (m₂T/n_T + m₂C/n_C)^{3/2}.

    One arm's mean has skewness g/√n, so Kohavi's n ≥ 355·g² asks |g/√n| ≤ 1/√355. Asked of Δ,
    such a rule spares balanced splits, where equal skews cancel, and falls back to the small
    arm's size when the split is unequal.
    """
    c, t = _central_moments(control), _central_moments(treatment)
    if c is None or t is None:
        return None
    variance = t[0] / treatment.n + c[0] / control.n
    return float((t[1] / treatment.n**2 - c[1] / control.n**2) / variance**1.5)


def heavy_tail_units(variant: VariantStats) -> float | None:
    """Units the arm needs by the 355·g² rule, or None when its skewness is unknown."""
    g = skewness(variant)
    return None if g is None else HEAVY_TAIL_FACTOR * g * g


def _not_ready(
    control: VariantStats, treatment: VariantStats, metric: MetricInput, settings: DecisionSettings
) -> str | None:
    if min(control.n, treatment.n) < max(2, settings.min_units_per_variant):
        return "too_few_units"
    # Always-valid tests look from the first units on, where a skewed arm's mean is far from
    # normal; fixed and group sequential tests look at planned, large samples.
    always_valid = metric.role == GUARDRAIL or settings.method == "sequential"
    if metric.gate_heavy_tail and always_valid:
        gamma = difference_skewness(control, treatment)
        if gamma is not None and abs(gamma) > HEAVY_TAIL_MAX_DIFFERENCE_SKEWNESS:
            return "heavy_tail"
    return None


# ---------------------------------------------------------------------------- the look


@dataclass(slots=True)
class _Pending:
    """One comparison while a look is being decided."""

    metric: MetricInput
    index: int
    treatment: VariantStats
    estimate: EffectEstimate | Undefined
    not_ready: str | None
    state: ComparisonState

    @property
    def key(self) -> str:
        return f"{self.metric.key}|{self.treatment.key}"

    @property
    def control(self) -> str:
        return self.metric.variants[0].key


def _base_comparison(item: _Pending, reason: str | None = None) -> Comparison:
    estimate = item.estimate
    defined = isinstance(estimate, EffectEstimate)
    return Comparison(
        variant=item.treatment.key,
        baseline=item.control,
        absolute_effect=estimate.absolute if defined else None,  # type: ignore[union-attr]
        absolute_ci=None,
        relative_effect=estimate.relative if defined else None,  # type: ignore[union-attr]
        relative_ci=None,
        p_value=None,
        adjusted_p_value=None,
        significant=False,
        decision="not_ready" if reason in _NOT_READY_REASONS else "inconclusive",
        reason=reason,
        direction=item.metric.direction,
        statistic=(
            estimate.absolute / math.sqrt(estimate.variance)  # type: ignore[union-attr]
            if defined
            else None
        ),
        variance=estimate.variance if defined else None,  # type: ignore[union-attr]
        total_units=estimate.total_units if defined else None,  # type: ignore[union-attr]
    )


_NOT_READY_REASONS = ("too_few_units", "plan_not_reached", "heavy_tail", "awaiting_first_look")


def _finish(
    item: _Pending,
    *,
    p_value: float | None,
    adjusted_p: float | None,
    level: float,
    nominal: tuple[float, float] | None,
    deciding: tuple[float, float] | None,
    relative: tuple[float, float] | None,
    relative_gap: bool,
    alpha: float,
    z_boundary: float | None = None,
) -> Comparison:
    relative, relative_reason = _consistent_relative(deciding, relative, relative_gap)
    significant = adjusted_p is not None and adjusted_p <= alpha
    # Only float ties at the boundary could separate the two; the interval is what users see.
    significant = significant and _excludes_zero(deciding)
    base = _base_comparison(item)
    return replace(
        base,
        absolute_ci=nominal,
        relative_ci=relative,
        p_value=p_value,
        adjusted_p_value=adjusted_p,
        significant=significant,
        decision=_decision(deciding, item.metric.direction) if significant else "inconclusive",
        reason=relative_reason
        or (item.estimate.relative_reason if isinstance(item.estimate, EffectEstimate) else None),
        z_boundary=z_boundary,
        adjusted_ci=deciding,
        effective_alpha=level,
    )


def _sequential_family(
    items: list[_Pending], settings: DecisionSettings, alpha: float, family_levels: list[float]
) -> dict[str, Comparison]:
    """Fold this look into each comparison's running state; decide from the running values."""
    tuning = settings.tuning
    for item in items:
        if item.not_ready is None and isinstance(item.estimate, EffectEstimate):
            estimate = item.estimate
            p = sequential_p_value(estimate, alpha, tuning)
            state = item.state
            state.min_p = p if state.min_p is None else min(state.min_p, p)
            state.looks += 1
            for level in family_levels:
                critical = sequential_critical_value(estimate.total_units, alpha, level, tuning)
                key = level_key(level)
                state.intervals[key] = _fold(state.intervals.get(key), estimate, critical)
    return _decide_running(items, settings.correction, alpha)


def _decide_running(items: list[_Pending], correction: str, alpha: float) -> dict[str, Comparison]:
    levels = effective_levels([i.state.min_p for i in items], correction, alpha)
    decided: dict[str, Comparison] = {}
    for item, (adjusted_p, level) in zip(items, levels, strict=True):
        state = item.state
        if state.looks == 0:
            reason = item.not_ready or (
                item.estimate.reason if isinstance(item.estimate, Undefined) else "undefined"
            )
            decided[item.key] = _base_comparison(item, reason)
            continue
        running = state.intervals[level_key(level)]
        nominal = state.intervals[level_key(alpha)].absolute
        decided[item.key] = _finish(
            item,
            p_value=state.min_p,
            adjusted_p=adjusted_p,
            level=level,
            nominal=nominal,
            deciding=running.absolute,
            relative=running.relative,
            relative_gap=running.relative_gap,
            alpha=alpha,
        )
    return decided


def _single_look_family(
    items: list[_Pending],
    correction: str,
    alpha: float,
    p_value_of: Any,
    critical_of: Any,
    boundary: bool = False,
) -> dict[str, Comparison]:
    """Fixed and group sequential: one look's p-values, corrected, and intervals at α'."""
    testable = [i for i in items if i.not_ready is None and isinstance(i.estimate, EffectEstimate)]
    p_values = [p_value_of(i.estimate) for i in testable]
    levels = effective_levels(p_values, correction, alpha)
    decided: dict[str, Comparison] = {}
    for item in items:
        if item not in testable:
            reason = item.not_ready or (
                item.estimate.reason if isinstance(item.estimate, Undefined) else "undefined"
            )
            decided[item.key] = _base_comparison(item, reason)
    for item, p_value, (adjusted_p, level) in zip(testable, p_values, levels, strict=True):
        estimate = item.estimate
        assert isinstance(estimate, EffectEstimate)
        critical = critical_of(estimate, level)
        deciding, relative, gap = _look_intervals(estimate, critical)
        nominal, _, _ = _look_intervals(estimate, critical_of(estimate, alpha))
        decided[item.key] = _finish(
            item,
            p_value=p_value,
            adjusted_p=adjusted_p,
            level=level,
            nominal=nominal,
            deciding=deciding,
            relative=relative,
            relative_gap=gap,
            alpha=alpha,
            z_boundary=critical if boundary else None,
        )
    return decided


def _guardrail_family(items: list[_Pending], settings: DecisionSettings) -> dict[str, Comparison]:
    """One-sided always-valid harm tests at guardrail_alpha / (number of guardrail pairs).

    The two-sided confidence sequence at that level is used one-sidedly, which keeps each
    harm test's error at or below its share (conservatively).
    """
    alpha = settings.guardrail_alpha
    m = max(1, len(items))
    level = alpha / m
    tuning = settings.tuning
    decided: dict[str, Comparison] = {}
    for item in items:
        state = item.state
        if item.not_ready is None and isinstance(item.estimate, EffectEstimate):
            estimate = item.estimate
            p = sequential_p_value(estimate, alpha, tuning)
            state.min_p = p if state.min_p is None else min(state.min_p, p)
            state.looks += 1
            critical = sequential_critical_value(estimate.total_units, alpha, level, tuning)
            key = level_key(level)
            state.intervals[key] = _fold(state.intervals.get(key), estimate, critical)
            state.harm = state.harm or _harmful(
                state.intervals[key], item.metric.direction, item.metric.harm_margin
            )
        if state.looks == 0:
            reason = item.not_ready or (
                item.estimate.reason if isinstance(item.estimate, Undefined) else "undefined"
            )
            decided[item.key] = replace(_base_comparison(item, reason), harm=False)
            continue
        running = state.intervals[level_key(level)]
        assert state.min_p is not None
        adjusted_p = min(1.0, state.min_p * m)
        comparison = _finish(
            item,
            p_value=state.min_p,
            adjusted_p=adjusted_p,
            level=level,
            nominal=running.absolute,
            deciding=running.absolute,
            relative=running.relative,
            relative_gap=running.relative_gap,
            alpha=alpha,
        )
        decided[item.key] = replace(
            comparison, harm=state.harm, decision="loss" if state.harm else "inconclusive"
        )
    return decided


def check_settings(settings: DecisionSettings) -> None:
    errors: dict[str, str] = {}
    if settings.method not in ("fixed", "sequential", "group_sequential"):
        errors["method"] = "must be fixed, sequential or group_sequential"
    if not 0.0 < settings.alpha < 1.0:
        errors["alpha"] = "must be strictly between 0 and 1"
    if not 0.0 < settings.guardrail_alpha < 1.0:
        errors["guardrail_alpha"] = "must be strictly between 0 and 1"
    if settings.correction not in CORRECTIONS:
        errors["correction"] = f"must be one of {', '.join(CORRECTIONS)}"
    if settings.method == "group_sequential" and not settings.planned_sample_size:
        errors["planned_sample_size"] = "group_sequential needs a planned sample size"
    if settings.planned_sample_size is not None and settings.planned_sample_size < 1:
        errors["planned_sample_size"] = "must be a positive number of units"
    if not 1 <= settings.planned_looks <= 100:
        errors["planned_looks"] = "must be between 1 and 100"
    if settings.min_units_per_variant < 0:
        errors["min_units_per_variant"] = "must not be negative"
    if settings.sequential_tuning is not None and not settings.sequential_tuning > 0:
        errors["sequential_tuning"] = "must be a positive number of units"
    if errors:
        raise StatsInputError(errors)


def decide_look(
    settings: DecisionSettings,
    metrics: Sequence[MetricInput],
    state: DecisionState | None = None,
    *,
    analysed_units: int | None = None,
    observed_units: Mapping[str, int] | None = None,
    expected_weights: Sequence[float] | None = None,
    at: str | None = None,
) -> tuple[LookResult, DecisionState]:
    """Decide every comparison at this look; return the result and the state for the next.

    ``analysed_units`` (exposed units less multi-variant ones) drives the plan; it defaults to
    the largest metric's total. ``observed_units`` per variant feeds the SRM checks.
    """
    check_settings(settings)
    state = DecisionState.from_json(state.to_json()) if state is not None else DecisionState()
    state.snapshots += 1
    estimates: list[tuple[MetricInput, MetricEstimates]] = []
    warnings: list[Warning] = []
    for metric in metrics:
        check_variants(metric.metric_type, metric.variants)
        measured = metric_estimates(metric.metric_type, metric.variants, cuped=metric.cuped)
        estimates.append((metric, measured))
        warnings.extend(_heavy_tail_warnings(metric))
    if analysed_units is None:
        analysed_units = max((sum(v.n for v in m.variants) for m in metrics), default=0)

    main: list[_Pending] = []
    guardrails: list[_Pending] = []
    for metric, measured in estimates:
        control = metric.variants[0]
        for index, (treatment, estimate) in enumerate(
            zip(metric.variants[1:], measured.estimates, strict=True), start=1
        ):
            key = f"{metric.key}|{treatment.key}"
            item = _Pending(
                metric=metric,
                index=index,
                treatment=treatment,
                estimate=estimate,
                not_ready=_not_ready(control, treatment, metric, settings),
                state=state.comparisons.setdefault(key, ComparisonState()),
            )
            (guardrails if metric.role == GUARDRAIL else main).append(item)

    decided: dict[str, Comparison] = {}
    look = _decide_main(settings, state, main, analysed_units, decided)
    decided.update(_guardrail_family(guardrails, settings))
    for item in main + guardrails:
        if item.state.intervals and any(r.conflict for r in item.state.intervals.values()):
            warnings.append(
                Warning(
                    "interval_conflict",
                    "A new look's interval missed the running one; the interval that excludes "
                    "0 is kept.",
                    item.metric.key,
                )
            )
            for running in item.state.intervals.values():
                running.conflict = False

    srm = _srm(settings, state, observed_units, expected_weights, metrics, at)
    metric_results = tuple(
        MetricResult(
            key=metric.key,
            metric_type=metric.metric_type,
            role=metric.role,
            direction=metric.direction,
            cuped=measured.cuped,
            variants=measured.variants,
            comparisons=tuple(decided[f"{metric.key}|{t.key}"] for t in metric.variants[1:]),
            notes=measured.notes,
        )
        for metric, measured in estimates
    )
    result = LookResult(
        method=settings.method,
        alpha=settings.alpha,
        correction=settings.correction,
        look=look,
        metrics=metric_results,
        srm=srm,
        warnings=tuple(warnings),
    )
    return result, state


def _decide_main(
    settings: DecisionSettings,
    state: DecisionState,
    items: list[_Pending],
    analysed_units: int,
    decided: dict[str, Comparison],
) -> Look:
    alpha, correction = settings.alpha, settings.correction
    planned = settings.planned_sample_size
    fraction = None if not planned else min(1.0, analysed_units / planned)
    if settings.method == "sequential":
        levels = candidate_levels(len(items), correction, alpha)
        decided.update(_sequential_family(items, settings, alpha, levels))
        looks = max((i.state.looks for i in items), default=0)
        return Look(looks, fraction, None, False)

    if settings.method == "fixed":
        if planned is None:
            # /stats without a plan: a plain fixed-horizon test of these numbers.
            decided.update(
                _single_look_family(
                    items, correction, alpha, fixed_p_value,
                    lambda e, level: fixed_critical_value(e.df, level),
                )
            )  # fmt: skip
            return Look(1, None, None, True)
        if not state.fixed_analysed and analysed_units >= planned:
            now = _single_look_family(
                items, correction, alpha, fixed_p_value,
                lambda e, level: fixed_critical_value(e.df, level),
            )  # fmt: skip
            for item in items:
                item.state.repeated = now[item.key]
            state.fixed_analysed = True
        if not state.fixed_analysed:
            for item in items:
                reason = item.not_ready or "plan_not_reached"
                decided[item.key] = _base_comparison(item, reason)
            return Look(0, fraction, None, False)
        for item in items:
            decided[item.key] = item.state.repeated or _base_comparison(item, "undefined")
        return Look(1, 1.0, None, True)

    # Group sequential: looks at the planned information fractions actually reached.
    assert planned is not None and fraction is not None
    looks_planned = settings.planned_looks
    reached = looks_planned if fraction >= 1.0 else math.floor(fraction * looks_planned + 1e-12)
    if not state.final and reached > state.fractions_reached:
        state.fractions_reached = reached
        state.look_fractions.append(1.0 if reached >= looks_planned else fraction)
        fractions = list(state.look_fractions)
        number = len(fractions)
        now = _single_look_family(
            items,
            correction,
            alpha,
            lambda e: group_sequential_p_value(
                e.absolute / math.sqrt(e.variance), number, fractions
            ),
            lambda e, level: group_sequential_boundary(fractions, level),
            boundary=True,
        )
        for item in items:
            item.state.repeated = now[item.key]
        crossed = any(
            c.significant for i in items if i.metric.role == "primary" for c in [now[i.key]]
        )
        state.final = crossed or reached >= looks_planned
    number = len(state.look_fractions)
    if number == 0:
        for item in items:
            decided[item.key] = _base_comparison(item, item.not_ready or "awaiting_first_look")
        return Look(0, fraction, None, False)
    for item in items:
        decided[item.key] = item.state.repeated or _base_comparison(item, "undefined")
    return Look(
        number,
        state.look_fractions[-1],
        group_sequential_boundary(state.look_fractions, alpha),
        state.final,
    )


def _heavy_tail_warnings(metric: MetricInput) -> list[Warning]:
    warnings = []
    for variant in metric.variants:
        needed = heavy_tail_units(variant)
        if needed is not None and variant.n < needed:
            warnings.append(
                Warning(
                    "heavy_tail",
                    f"{variant.key} has {variant.n} units; its skewness asks for "
                    f"{math.ceil(needed)} before the normal approximation can be trusted.",
                    metric.key,
                )
            )
    return warnings


def _srm(
    settings: DecisionSettings,
    state: DecisionState,
    observed_units: Mapping[str, int] | None,
    expected_weights: Sequence[float] | None,
    metrics: Sequence[MetricInput],
    at: str | None,
) -> SRMResult:
    if observed_units is None:
        first = metrics[0].variants if metrics else ()
        observed_units = {v.key: v.n for v in first}
    chi2 = sample_ratio_mismatch(observed_units, expected_weights, settings.srm_threshold)
    counts = [int(observed_units[k]) for k in observed_units]
    weights = list(chi2.expected_weights.values())
    if len(counts) >= 2 and sum(counts) > 0:
        p = sequential_srm_p_value(counts, weights)
        state.srm_min_p = p if state.srm_min_p is None else min(state.srm_min_p, p)
    flagged = state.srm_flagged_at is not None
    if not flagged and state.srm_min_p is not None and state.srm_min_p < settings.srm_threshold:
        state.srm_flagged_at = at or f"look {state.snapshots}"
        flagged = True
    return replace(
        chi2,
        flagged=flagged,
        sequential_p_value=state.srm_min_p,
        first_flagged_at=state.srm_flagged_at,
    )
