"""The decision rule of docs/api.md §7 (``analysis.stats.decisions``) against independent oracles.

Every expected number is computed here from raw data or from the contract's formulas
(statsmodels' ``multipletests``, scipy's Welch test and skewness, the mSPRT and confidence
sequence written out), never read back from the module under test. Looks are fed one by one,
with the state round-tripped through JSON as the snapshot service stores it.
"""

from __future__ import annotations

import gc
import json
import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pytest
from scipy import special
from scipy import stats as scipy_stats
from statsmodels.stats.multitest import multipletests

from analysis.stats.analyze import Comparison
from analysis.stats.decisions import (
    DecisionSettings,
    DecisionState,
    LookResult,
    MetricInput,
    candidate_levels,
    decide_look,
    effective_levels,
    sequential_critical_value,
    sequential_p_value,
    skewness,
)
from analysis.stats.fixed import EffectEstimate
from analysis.stats.group_sequential import obrien_fleming_boundaries
from analysis.stats.inputs import VariantStats
from analysis.stats.sequential import confidence_sequence_half_width

ALPHA = 0.05
TUNING = 5000.0


@pytest.fixture(autouse=True)
def _fast_statsmodels_holm(monkeypatch: pytest.MonkeyPatch) -> None:
    """statsmodels' Holm runs gc.collect() on every call (~0.2 s here): a no-op meanwhile."""
    monkeypatch.setattr(gc, "collect", lambda *args: 0)


# ---------------------------------------------------------------------------- helpers


def arm(key: str, values: np.ndarray) -> VariantStats:
    """Sufficient statistics (with Σy³) of raw per-unit values."""
    values = np.asarray(values, dtype=float)
    return VariantStats(
        key=key,
        n=int(values.size),
        sum=float(values.sum()),
        sum_squares=float((values**2).sum()),
        sum_cubes=float((values**3).sum()),
    )


def moments_arm(key: str, n: int, mean: float, sd: float) -> VariantStats:
    """An arm with exactly this mean and sample standard deviation (ddof=1)."""
    return VariantStats(
        key=key, n=n, sum=n * mean, sum_squares=(n - 1) * sd * sd + n * mean * mean
    )


def mean_metric(key: str, variants: Sequence[VariantStats], **options: Any) -> MetricInput:
    return MetricInput(
        key=key, metric_type="mean", variants=tuple(variants), cuped=False, **options
    )


def roundtrip(state: DecisionState) -> DecisionState:
    return DecisionState.from_json(json.loads(json.dumps(state.to_json())))


def welch_moments(control: VariantStats, treatment: VariantStats) -> tuple[float, float, int]:
    """Δ, V = s²_T/n_T + s²_C/n_C and N, from the totals (the §6 definitions)."""

    def mean_var(v: VariantStats) -> tuple[float, float]:
        assert v.sum_squares is not None
        mean = v.sum / v.n
        return mean, (v.sum_squares - v.sum * v.sum / v.n) / (v.n - 1)

    mc, vc = mean_var(control)
    mt, vt = mean_var(treatment)
    return mt - mc, vt / treatment.n + vc / control.n, control.n + treatment.n


def raw_welch(control: np.ndarray, treatment: np.ndarray) -> tuple[float, float, int]:
    delta = float(treatment.mean() - control.mean())
    variance = float(treatment.var(ddof=1) / treatment.size + control.var(ddof=1) / control.size)
    return delta, variance, int(control.size + treatment.size)


def rho_squared(alpha: float, tuning: float) -> float:
    return (-2 * math.log(alpha) + math.log(1 - 2 * math.log(alpha))) / tuning


def oracle_half_width(
    variance: float, n: float, alpha: float, level: float, tuning: float
) -> float:
    """docs/api.md §6 half-width, with α' = ``level`` in the log term and ρ² from ``alpha``."""
    rho2 = rho_squared(alpha, tuning)
    return math.sqrt(variance * n) * math.sqrt(
        2 * (n * rho2 + 1) / (n * n * rho2) * math.log(math.sqrt(n * rho2 + 1) / level)
    )


def oracle_msprt_p(delta: float, variance: float, n: float, alpha: float, tuning: float) -> float:
    rho2 = rho_squared(alpha, tuning)
    return min(
        1.0,
        math.sqrt(n * rho2 + 1) * math.exp(-rho2 * n * delta**2 / (variance * 2 * (n * rho2 + 1))),
    )


def excludes_zero(interval: Sequence[float] | None) -> bool:
    return interval is not None and (interval[0] > 0 or interval[1] < 0)


def oracle_intersect(
    previous: tuple[float, float] | None, new: tuple[float, float]
) -> tuple[tuple[float, float], bool]:
    """Running intersection with §7's rule for an empty one; (interval, conflict)."""
    if previous is None:
        return new, False
    low, high = max(previous[0], new[0]), min(previous[1], new[1])
    if low <= high:
        return (low, high), False
    return (previous if excludes_zero(previous) else new), True


def holm_oracle(p_values: Sequence[float], alpha: float) -> tuple[list[float], list[float]]:
    """statsmodels' Holm adjusted p-values, and the levels of §7 from its rejections:
    α/(m−k+1) for a rejected rank k, α/(m−j+1) at and after the first non-rejected rank j."""
    m = len(p_values)
    reject, adjusted, _, _ = multipletests(p_values, alpha=alpha, method="holm")
    order = sorted(range(m), key=lambda i: (p_values[i], i))
    levels = [0.0] * m
    first_kept = None
    for rank0, index in enumerate(order):
        rank = rank0 + 1
        if first_kept is None and not reject[index]:
            first_kept = rank
        levels[index] = alpha / (m - (rank if first_kept is None else first_kept) + 1)
    return list(adjusted), levels


def holm_oracle_levels(p_values: Sequence[float], alpha: float) -> list[float]:
    return holm_oracle(p_values, alpha)[1]


def bh_oracle_level(p_values: Sequence[float], alpha: float) -> float:
    rejections = int(multipletests(p_values, alpha=alpha, method="fdr_bh")[0].sum())
    return alpha * rejections / len(p_values) if rejections else alpha / len(p_values)


def run(
    settings: DecisionSettings,
    looks: Iterable[list[MetricInput]],
    state: DecisionState | None = None,
    **per_look: Any,
) -> list[tuple[LookResult, DecisionState]]:
    """Feed the looks in order, the state through JSON between them as snapshots store it."""
    out = []
    for metrics in looks:
        result, state = decide_look(settings, metrics, state, **per_look)
        state = roundtrip(state)
        out.append((result, state))
    return out


def only(result: LookResult, metric: str | None = None) -> Comparison:
    chosen = [m for m in result.metrics if metric is None or m.key == metric]
    return chosen[0].comparisons[0]


def random_p_values(rng: np.random.Generator, m: int) -> list[float]:
    """A mix of nulls and effects, so every number of rejections occurs."""
    effects = rng.random(m) < rng.random()
    return [float(rng.uniform(0, 0.02) if effect else rng.uniform(0, 1)) for effect in effects]


# ---------------------------------------------------------------------------- effective levels


@pytest.mark.parametrize(("correction", "method"), [("holm", "holm"), ("bh", "fdr_bh")])
def test_effective_levels__random_p_sets__adjusted_p_equals_statsmodels(
    correction: str, method: str
) -> None:
    # Given 400 seeded families of 2–12 p-values
    rng = np.random.default_rng(20261128)
    for _ in range(400):
        m = int(rng.integers(2, 13))
        p_values = random_p_values(rng, m)
        # When corrected
        got = effective_levels(p_values, correction, ALPHA)
        # Then the adjusted p-values are statsmodels' for the same method
        expected = multipletests(p_values, alpha=ALPHA, method=method)[1]
        assert [a for a, _ in got] == pytest.approx(list(expected), rel=1e-12, abs=1e-15)


def test_effective_levels__holm__level_per_contract_rank_rule() -> None:
    # Given seeded families
    rng = np.random.default_rng(7)
    for _ in range(400):
        m = int(rng.integers(2, 13))
        p_values = random_p_values(rng, m)
        # When corrected with Holm / Then α/(m−k+1) before the first kept rank, α/(m−j+1) after
        levels = [level for _, level in effective_levels(p_values, "holm", ALPHA)]
        assert levels == pytest.approx(holm_oracle_levels(p_values, ALPHA), rel=1e-12)


def test_effective_levels__bh__level_is_alpha_r_over_m_or_alpha_over_m() -> None:
    # Given seeded families, some with no rejection at all
    rng = np.random.default_rng(8)
    seen_zero = seen_some = False
    for _ in range(400):
        m = int(rng.integers(2, 13))
        p_values = random_p_values(rng, m)
        expected = bh_oracle_level(p_values, ALPHA)
        rejections = multipletests(p_values, alpha=ALPHA, method="fdr_bh")[0].sum()
        seen_zero |= rejections == 0
        seen_some |= rejections > 0
        # When corrected with BH / Then every comparison gets α·R/m (α/m when R = 0)
        levels = [level for _, level in effective_levels(p_values, "bh", ALPHA)]
        assert levels == pytest.approx([expected] * m, rel=1e-12)
    assert seen_zero and seen_some


@pytest.mark.parametrize("correction", ["holm", "bh", "none"])
def test_effective_levels__every_comparison__adjusted_p_le_alpha_iff_p_le_level(
    correction: str,
) -> None:
    # Given seeded families, including p-values right at α/m·k boundaries
    rng = np.random.default_rng(9)
    families = [random_p_values(rng, int(rng.integers(1, 13))) for _ in range(500)]
    families += [[ALPHA / 3, ALPHA / 2, ALPHA], [ALPHA / 3 * 1.0001, 0.5, 0.9], [0.01, 0.02]]
    for p_values in families:
        # When corrected
        for p, (adjusted, level) in zip(
            p_values, effective_levels(p_values, correction, ALPHA), strict=True
        ):
            # Then the duality the decision rule rests on holds for each comparison
            assert adjusted is not None
            assert (adjusted <= ALPHA) == (p <= level), (p_values, p, adjusted, level)


@pytest.mark.parametrize(("correction", "method"), [("holm", "holm"), ("bh", "fdr_bh")])
def test_effective_levels__none_p_values__count_in_m_and_stay_none(
    correction: str, method: str
) -> None:
    # Given a family where two comparisons are undefined
    p_values = [0.004, None, 0.03, 0.011, None]
    # When corrected
    got = effective_levels(p_values, correction, ALPHA)
    # Then the undefined stay None and the rest are adjusted as in a family of m = 5
    # (undefined p-values counted as never rejected, i.e. p = 1)
    as_ones = [1.0 if p is None else p for p in p_values]
    _, expected, _, _ = multipletests(as_ones, alpha=ALPHA, method=method)
    assert got[1][0] is None and got[4][0] is None
    for index in (0, 2, 3):
        assert got[index][0] == pytest.approx(expected[index], rel=1e-12)
    defined_levels = [got[i][1] for i in (0, 2, 3)]
    if correction == "holm":
        oracle = holm_oracle_levels(as_ones, ALPHA)
        assert defined_levels == pytest.approx([oracle[i] for i in (0, 2, 3)])
    else:
        assert defined_levels == pytest.approx([bh_oracle_level(as_ones, ALPHA)] * 3)
    # And a family of m = 5 is stricter than the 3 defined ones alone would be
    assert got[0][0] == pytest.approx(0.004 * 5)


def test_candidate_levels__every_level_effective_levels_hands_out__is_a_candidate() -> None:
    # Given seeded families / When corrected / Then the level is among the precomputed ones
    rng = np.random.default_rng(10)
    for correction in ("holm", "bh"):
        for _ in range(300):
            m = int(rng.integers(2, 10))
            candidates = candidate_levels(m, correction, ALPHA)
            assert candidates[0] == ALPHA
            for _, level in effective_levels(random_p_values(rng, m), correction, ALPHA):
                assert any(math.isclose(level, c, rel_tol=1e-12) for c in candidates)


# ---------------------------------------------------------------------------- critical values


@pytest.mark.parametrize("total", [10, 200, 5000, 123_457])
@pytest.mark.parametrize("alpha", [0.01, 0.05, 0.2])
@pytest.mark.parametrize("tuning", [1000.0, 5000.0, 80_000.0])
def test_sequential_critical_value__at_nominal_level__is_confidence_sequence_half_width(
    total: int, alpha: float, tuning: float
) -> None:
    # Given a variance V / When the critical value is taken at level = α
    variance = 0.0037
    c = sequential_critical_value(total, alpha, alpha, tuning)
    # Then c·√V is the confidence sequence half-width, and the contract's formula
    expected = confidence_sequence_half_width(variance, total, alpha, tuning)
    assert c * math.sqrt(variance) == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(
        oracle_half_width(variance, total, alpha, alpha, tuning), rel=1e-12
    )


@pytest.mark.parametrize("level", [0.05, 0.025, 0.05 / 3, 0.001, 0.03])
@pytest.mark.parametrize("total", [150, 4000, 60_000])
def test_sequential_critical_value__other_level__msprt_p_le_level_iff_z_reaches_c(
    level: float, total: int
) -> None:
    # Given ρ² fixed by α = 0.05 and N* = 5000, and α' = level
    variance = 0.002
    c = sequential_critical_value(total, ALPHA, level, TUNING)
    # When |Δ|/√V sits on a grid around c
    for factor in (0.9, 0.999, 0.999_999, 1.000_001, 1.001, 1.1):
        for sign in (1, -1):
            delta = sign * factor * c * math.sqrt(variance)
            p = oracle_msprt_p(delta, variance, total, ALPHA, TUNING)
            # Then the mSPRT p-value (ρ² of α) is ≤ α' exactly when |Δ|/√V ≥ c
            assert (p <= level) == (factor >= 1.0), (factor, p, level)
            # And the engine's p-value is the contract's
            estimate = EffectEstimate(delta, variance, 100.0, total)
            assert sequential_p_value(estimate, ALPHA, TUNING) == pytest.approx(p, rel=1e-12)


# ---------------------------------------------------------------------------- group sequential

PLANNED = 1000
GS = DecisionSettings(
    method="group_sequential",
    planned_sample_size=PLANNED,
    planned_looks=5,
    min_units_per_variant=10,
)


def gs_look(units: int, control_mean: float, treatment_mean: float) -> list[MetricInput]:
    half = units // 2
    return [
        mean_metric(
            "revenue",
            [
                moments_arm("control", half, control_mean, 1.0),
                moments_arm("treatment", units - half, treatment_mean, 1.0),
            ],
        )
    ]


def test_decide_look__group_sequential_hourly__one_look_per_planned_fraction_reached() -> None:
    # Given hourly snapshots whose analysed units jump over fractions, then pass the plan
    units = [60, 150, 500, 550, 620, 700, 810, 900, 1200, 1300]
    # (number, information fraction, final) expected from t = units/N against k/5
    expected = [
        (0, None, False),
        (0, None, False),
        (1, 0.5, False),  # 0.2 and 0.4 crossed at once: one look
        (1, 0.5, False),
        (2, 0.62, False),
        (2, 0.62, False),
        (3, 0.81, False),
        (3, 0.81, False),
        (4, 1.0, True),  # t capped at 1: the last look, final
        (4, 1.0, True),
    ]
    looks = [gs_look(u, 10.0, 10.01) for u in units]  # |z| < 0.3 throughout: no crossing
    # When each snapshot is decided in turn
    results = run(GS, looks)
    last_look: dict[str, Any] | None = None
    fractions: list[float] = []
    for u, (result, _), (number, fraction, final) in zip(units, results, expected, strict=True):
        comparison = only(result)
        # Then a look is taken only when the next planned fraction is reached
        assert result.look.number == number, u
        assert result.look.final is final
        if number == 0:
            assert comparison.decision == "not_ready"
            assert comparison.reason == "awaiting_first_look"
            assert not comparison.significant and result.look.z_boundary is None
            continue
        assert result.look.information_fraction == pytest.approx(fraction)
        new_look = not fractions or fractions[-1] != fraction
        if new_look:
            fractions.append(fraction)
            # And the boundary is Lan–DeMets O'Brien–Fleming at the fractions actually reached
            boundary = obrien_fleming_boundaries(len(fractions), ALPHA, fractions).z_boundaries[-1]
            assert result.look.z_boundary == pytest.approx(boundary, rel=1e-9)
            assert comparison.z_boundary == pytest.approx(boundary, rel=1e-9)
            delta, variance, _ = welch_moments(*looks[units.index(u)][0].variants)
            assert comparison.statistic == pytest.approx(delta / math.sqrt(variance), rel=1e-9)
            assert comparison.absolute_ci == pytest.approx(
                (delta - boundary * math.sqrt(variance), delta + boundary * math.sqrt(variance)),
                rel=1e-9,
            )
            assert not comparison.significant and comparison.decision == "inconclusive"
            last_look = comparison.to_dict()
        else:
            # And a snapshot between looks repeats the last look exactly
            assert comparison.to_dict() == last_look
    assert fractions == pytest.approx([0.5, 0.62, 0.81, 1.0])


def test_decide_look__group_sequential_steady_growth__at_most_planned_looks() -> None:
    # Given snapshots every 100 units up to 2.5 times the plan
    units = list(range(100, 2600, 100))
    results = run(GS, [gs_look(u, 10.0, 10.02) for u in units])
    numbers = [r.look.number for r, _ in results]
    # Then looks 1..5 happen at 200, 400, 600, 800, 1000 units and never a sixth
    assert max(numbers) == 5
    assert [units[numbers.index(k)] for k in range(1, 6)] == [200, 400, 600, 800, 1000]
    assert all(r.look.final for r, _ in results[units.index(1000) :])
    final = results[-1][0]
    assert final.look.information_fraction == 1.0
    expected = obrien_fleming_boundaries(5, ALPHA).z_boundaries[-1]
    assert final.look.z_boundary == pytest.approx(expected, rel=1e-9)


def test_decide_look__group_sequential_repeated_p__is_alpha_whose_boundary_equals_z() -> None:
    # Given moderate effects at uneven looks
    units = [230, 470, 650, 900, 1000]
    results = run(GS, [gs_look(u, 10.0, 10.0 + 0.09) for u in units])
    checked = 0
    fractions: list[float] = []
    for u, (result, _) in zip(units, results, strict=True):
        comparison = only(result)
        fractions.append(min(1.0, u / PLANNED))
        z = abs(comparison.statistic)
        # Then p ≤ α exactly when |z| reaches the boundary
        assert comparison.significant == (z >= result.look.z_boundary)
        assert (comparison.p_value <= ALPHA) == (z >= result.look.z_boundary)
        if 1e-10 < comparison.p_value < 1:
            # And the boundary of a design at α = p passes through |z| (repeated p-value)
            at_p = obrien_fleming_boundaries(len(fractions), comparison.p_value, fractions)
            assert at_p.z_boundaries[-1] == pytest.approx(z, rel=1e-5)
            checked += 1
    assert checked >= 3


def test_decide_look__group_sequential_crossing__final_and_repeated_despite_new_data() -> None:
    # Given a first look at t = 0.2 with |z| ≈ 7 > 4.877 (a crossing)
    looks = [
        gs_look(200, 10.0, 11.0),
        gs_look(400, 10.0, 9.0),  # new data that would be a loss
        gs_look(1500, 10.0, 10.0),  # and data with no effect past the plan
    ]
    # When three snapshots are decided
    results = run(GS, looks)
    first = results[0][0]
    # Then the crossing is final and a win
    assert first.look.number == 1 and first.look.final
    assert first.look.z_boundary == pytest.approx(4.877, abs=1e-3)
    assert only(first).significant and only(first).decision == "win"
    # And later snapshots repeat it, look included
    for result, _ in results[1:]:
        assert result.look == first.look
        assert only(result).to_dict() == only(first).to_dict()


def test_decide_look__group_sequential_final_look_without_crossing__repeated_after() -> None:
    # Given the look at t = 1 (inconclusive), then a later snapshot with a huge effect
    results = run(GS, [gs_look(1000, 10.0, 10.0), gs_look(1400, 10.0, 12.0)])
    # Then the t = 1 look is final and repeated
    (final, _), (later, _) = results
    assert final.look.number == 1 and final.look.final
    assert final.look.information_fraction == 1.0
    assert later.look == final.look
    assert only(later).to_dict() == only(final).to_dict()
    assert only(later).decision == "inconclusive"


# ---------------------------------------------------------------------------- fixed


FIXED = DecisionSettings(method="fixed", planned_sample_size=PLANNED)


def test_decide_look__fixed__not_ready_before_plan_then_welch_once_then_repeated() -> None:
    # Given raw data arriving over snapshots, the plan reached at 1050 units
    rng = np.random.default_rng(31)
    control, treatment = rng.normal(5.0, 2.0, 2000), rng.normal(5.3, 2.5, 2000)
    sizes = [200, 400, 525, 800]

    def look(n: int, shift: float = 0.0) -> list[MetricInput]:
        return [
            mean_metric(
                "m", [arm("control", control[:n]), arm("treatment", treatment[:n] + shift)]
            )
        ]

    looks = [look(n) for n in sizes] + [look(1000, shift=-3.0)]
    units = [2 * n for n in sizes] + [2000]
    # When each is decided with its analysed units
    results = []
    state = None
    for metrics, analysed in zip(looks, units, strict=True):
        result, state = decide_look(FIXED, metrics, state, analysed_units=analysed)
        state = roundtrip(state)
        results.append(result)
    # Then before the plan: not_ready, plan_not_reached (too_few_units first), look 0
    assert only(results[0]).reason == "plan_not_reached"
    assert only(results[1]).reason == "plan_not_reached"
    for result in results[:2]:
        assert only(result).decision == "not_ready" and not only(result).significant
        assert result.look.number == 0 and not result.look.final
    # And at the first snapshot at or after the plan: Welch's test on these data
    analysed = only(results[2])
    c, t = control[:525], treatment[:525]
    welch = scipy_stats.ttest_ind_from_stats(
        t.mean(), t.std(ddof=1), t.size, c.mean(), c.std(ddof=1), c.size, equal_var=False
    )
    assert analysed.p_value == pytest.approx(welch.pvalue, rel=1e-9)
    raw = scipy_stats.ttest_ind(t, c, equal_var=False).confidence_interval(0.95)
    assert analysed.absolute_ci == pytest.approx((raw.low, raw.high), rel=1e-9)
    assert analysed.significant == (welch.pvalue <= ALPHA)
    assert results[2].look.number == 1 and results[2].look.final
    # And later snapshots repeat it although their data differ (a large loss at the end)
    for result in results[3:]:
        assert only(result).to_dict() == analysed.to_dict()
        assert result.look == results[2].look


def test_decide_look__fixed_plan__driven_by_analysed_units_not_metric_totals() -> None:
    # Given metric totals past the plan but fewer analysed units (multi-variant units removed)
    metrics = [
        mean_metric("m", [moments_arm("c", 600, 1.0, 1.0), moments_arm("t", 600, 1.5, 1.0)])
    ]
    # When decided
    result, _ = decide_look(FIXED, metrics, analysed_units=999)
    # Then the plan is not reached
    assert only(result).reason == "plan_not_reached" and only(result).decision == "not_ready"


def test_decide_look__fixed_too_few_units_before_plan__too_few_units_reason() -> None:
    metrics = [mean_metric("m", [moments_arm("c", 60, 1.0, 1.0), moments_arm("t", 60, 1.5, 1.0)])]
    result, _ = decide_look(FIXED, metrics, analysed_units=120)
    assert only(result).reason == "too_few_units" and only(result).decision == "not_ready"


def test_decide_look__fixed_without_plan__plain_welch_test() -> None:
    # Given raw data and no plan (as POST /stats without planned_sample_size)
    rng = np.random.default_rng(32)
    c, t = rng.exponential(3.0, 700), rng.exponential(3.4, 650)
    result, _ = decide_look(
        DecisionSettings(method="fixed"), [mean_metric("m", [arm("c", c), arm("t", t)])]
    )
    comparison = only(result)
    # Then p and the interval are scipy's Welch test
    welch = scipy_stats.ttest_ind(t, c, equal_var=False)
    ci = welch.confidence_interval(0.95)
    assert comparison.p_value == pytest.approx(welch.pvalue, rel=1e-9)
    assert comparison.absolute_ci == pytest.approx((ci.low, ci.high), rel=1e-9)
    assert comparison.significant == (welch.pvalue <= ALPHA)
    assert result.look.number == 1


# ---------------------------------------------------------------------------- sequential


def walk(
    seed: int, effects: Sequence[float], looks: int, per_look: int, sd: float = 1.0
) -> list[list[np.ndarray]]:
    """Cumulative raw data per arm (control first) at each look."""
    rng = np.random.default_rng(seed)
    total = looks * per_look
    arms = [rng.normal(10.0 + e, sd, total) for e in (0.0, *effects)]
    return [[a[: (k + 1) * per_look] for a in arms] for k in range(looks)]


@pytest.mark.parametrize(("seed", "effect"), [(1, 0.0), (5, 0.0), (3, 0.12), (4, -0.12)])
def test_decide_look__sequential_long_walk__running_min_p_and_intersection_per_oracle(
    seed: int, effect: float
) -> None:
    # Given 80 hourly looks of cumulative data, 40 units per arm per hour
    data = walk(seed, [effect], looks=80, per_look=40)
    settings = DecisionSettings()  # sequential, α = 0.05, N* = 5000, 100 units per arm
    running_p = None
    running_ci: tuple[float, float] | None = None
    state = None
    seen_significant = False
    for k, (c, t) in enumerate(data):
        metrics = [mean_metric("m", [arm("control", c), arm("treatment", t)])]
        # When each look is decided
        result, state = decide_look(settings, metrics, state, at=f"h{k}")
        state = roundtrip(state)
        comparison = only(result)
        if c.size < 100:
            assert comparison.decision == "not_ready" and comparison.reason == "too_few_units"
            assert comparison.p_value is None
            continue
        delta, variance, n = raw_welch(c, t)
        p = oracle_msprt_p(delta, variance, n, ALPHA, TUNING)
        running_p = p if running_p is None else min(running_p, p)
        half = oracle_half_width(variance, n, ALPHA, ALPHA, TUNING)
        running_ci, _ = oracle_intersect(running_ci, (delta - half, delta + half))
        # Then the running minimum p and the running intersection are reported
        assert comparison.p_value == pytest.approx(running_p, rel=1e-9)
        assert comparison.absolute_ci == pytest.approx(running_ci, rel=1e-9, abs=1e-12)
        assert comparison.adjusted_ci == pytest.approx(running_ci, rel=1e-9, abs=1e-12)
        # And significant ⟺ the interval excludes 0 ⟺ p ≤ α, at every look
        assert comparison.significant == excludes_zero(comparison.adjusted_ci)
        assert comparison.significant == (comparison.adjusted_p_value <= ALPHA)
        assert comparison.significant == excludes_zero(running_ci)
        if comparison.relative_ci is not None:
            assert excludes_zero(comparison.relative_ci) == excludes_zero(comparison.adjusted_ci)
        expected = (
            "inconclusive"
            if not excludes_zero(running_ci)
            else ("win" if running_ci[0] > 0 else "loss")
        )
        assert comparison.decision == expected
        seen_significant |= comparison.significant
    assert seen_significant == (effect != 0.0)  # the seeds: A/A stays quiet, effects are found


def test_decide_look__sequential_holm_3_arms__adjusted_ci_running_intersection_at_level() -> None:
    # Given control + 3 treatments (no effect, small, larger) over 60 looks
    effects = [0.0, 0.09, 0.16]
    data = walk(11, effects, looks=60, per_look=30)
    settings = DecisionSettings(correction="holm")
    levels = [ALPHA, ALPHA / 2, ALPHA / 3]
    running: dict[tuple[int, float], tuple[float, float] | None] = {
        (j, level): None for j in range(3) for level in levels
    }
    min_p: list[float | None] = [None, None, None]
    state = None
    seen_levels: set[float] = set()
    for arms in data:
        variants = [arm("control", arms[0])] + [
            arm(f"t{j}", arms[j + 1]) for j in range(len(effects))
        ]
        # When each look is decided
        result, state = decide_look(settings, [mean_metric("m", variants)], state)
        state = roundtrip(state)
        comparisons = result.metrics[0].comparisons
        if arms[0].size < 100:
            assert all(c.decision == "not_ready" for c in comparisons)
            continue
        for j in range(3):
            delta, variance, n = raw_welch(arms[0], arms[j + 1])
            p = oracle_msprt_p(delta, variance, n, ALPHA, TUNING)
            min_p[j] = p if min_p[j] is None else min(min_p[j], p)
            for level in levels:
                half = oracle_half_width(variance, n, ALPHA, level, TUNING)
                running[(j, level)], _ = oracle_intersect(
                    running[(j, level)], (delta - half, delta + half)
                )
        adjusted, oracle_levels = holm_oracle(min_p, ALPHA)
        for j, comparison in enumerate(comparisons):
            level = oracle_levels[j]
            seen_levels.add(round(level, 12))
            # Then p is the running minimum and adjusted p is Holm's over the running minima
            assert comparison.p_value == pytest.approx(min_p[j], rel=1e-9)
            assert comparison.adjusted_p_value == pytest.approx(adjusted[j], rel=1e-9)
            # And the deciding interval is the running intersection at the effective level
            assert comparison.effective_alpha == pytest.approx(level, rel=1e-12)
            assert comparison.adjusted_ci == pytest.approx(running[(j, level)], rel=1e-9)
            assert comparison.absolute_ci == pytest.approx(running[(j, ALPHA)], rel=1e-9)
            # And significant ⟺ adjusted_ci excludes 0 ⟺ adjusted p ≤ α
            assert comparison.significant == excludes_zero(comparison.adjusted_ci)
            assert comparison.significant == (comparison.adjusted_p_value <= ALPHA)
            if comparison.relative_ci is not None:
                assert excludes_zero(comparison.relative_ci) == excludes_zero(
                    comparison.adjusted_ci
                )
    # (the walk moves through several of Holm's levels)
    assert len(seen_levels) >= 2
    assert any(c.significant for c in comparisons) and not comparisons[0].significant


@pytest.mark.parametrize(
    ("direction", "shift", "decision"),
    [
        ("decrease", -1.0, "win"),
        ("decrease", 1.0, "loss"),
        ("increase", -1.0, "loss"),
        ("increase", 1.0, "win"),
    ],
)
def test_decide_look__significant_effect__decision_from_interval_side_and_direction(
    direction: str, shift: float, decision: str
) -> None:
    # Given a clearly significant effect of this sign on a metric with this direction
    variants = [moments_arm("c", 2000, 20.0, 3.0), moments_arm("t", 2000, 20.0 + shift, 3.0)]
    for settings in (
        DecisionSettings(),
        DecisionSettings(method="fixed"),
        DecisionSettings(method="fixed", planned_sample_size=4000),
    ):
        # When decided
        result, _ = decide_look(settings, [mean_metric("m", variants, direction=direction)])
        comparison = only(result)
        # Then the verdict follows the interval's side and the direction
        assert comparison.significant
        assert (comparison.adjusted_ci[0] > 0) == (shift > 0)
        assert comparison.decision == decision


def test_decide_look__positive_estimate_interval_spans_zero__inconclusive() -> None:
    # Given a positive point estimate whose interval includes 0
    variants = [moments_arm("c", 300, 20.0, 3.0), moments_arm("t", 300, 20.3, 3.0)]
    result, _ = decide_look(DecisionSettings(), [mean_metric("m", variants)])
    comparison = only(result)
    # Then no verdict from the point estimate alone
    assert comparison.absolute_effect > 0 and not excludes_zero(comparison.adjusted_ci)
    assert comparison.decision == "inconclusive" and not comparison.significant


# ---------------------------------------------------------------------------- readiness


@pytest.mark.parametrize("method", ["sequential", "fixed"])
def test_decide_look__arm_below_min_units__not_ready_too_few_units(method: str) -> None:
    # Given a huge effect but 99 units in the treatment arm
    small = [moments_arm("c", 5000, 1.0, 1.0), moments_arm("t", 99, 5.0, 1.0)]
    enough = [moments_arm("c", 5000, 1.0, 1.0), moments_arm("t", 100, 5.0, 1.0)]
    settings = DecisionSettings(method=method)
    # When decided / Then not ready until both arms have 100 units (the default)
    result, _ = decide_look(settings, [mean_metric("m", small)])
    assert only(result).decision == "not_ready" and only(result).reason == "too_few_units"
    assert not only(result).significant and only(result).p_value is None
    result, _ = decide_look(settings, [mean_metric("m", enough)])
    assert only(result).significant and only(result).decision == "win"
    # And the threshold follows the setting
    custom = DecisionSettings(method=method, min_units_per_variant=150)
    result, _ = decide_look(custom, [mean_metric("m", enough)])
    assert only(result).reason == "too_few_units"


def test_skewness__from_sums__equals_scipy_biased_skew() -> None:
    # Given skewed raw values of several shapes
    rng = np.random.default_rng(41)
    for values in (
        rng.lognormal(0.0, 1.0, 3000),
        rng.exponential(2.0, 500),
        rng.normal(3.0, 1.0, 400),
        -rng.gamma(2.0, 2.0, 800),
    ):
        # When the skewness is computed from Σy, Σy², Σy³ / Then it is scipy's (bias=True)
        assert skewness(arm("a", values)) == pytest.approx(
            scipy_stats.skew(values, bias=True), rel=1e-6, abs=1e-9
        )


def _difference_skewness_oracle(c: np.ndarray, t: np.ndarray) -> float:
    """Skewness of ȳ_T − ȳ_C from scipy's central moments: (m₃T/n_T² − m₃C/n_C²)/V^{3/2}."""
    m3 = scipy_stats.moment(t, 3) / len(t) ** 2 - scipy_stats.moment(c, 3) / len(c) ** 2
    variance = np.var(t) / len(t) + np.var(c) / len(c)
    return float(m3 / variance**1.5)


def test_decide_look__gate_heavy_tail__not_ready_while_the_difference_is_skewed() -> None:
    # Given exponential revenue (skewness ≈ 2) split 0.9/0.1: the small arm's skew dominates Δ
    rng = np.random.default_rng(42)
    control, treatment = rng.exponential(10.0, 54_000), rng.exponential(13.0, 6000)
    settings = DecisionSettings()
    outcomes = []
    for n in (100, 300, 1000, 6000):
        c, t = control[: 9 * n], treatment[:n]
        gamma = _difference_skewness_oracle(c, t)
        metrics = [mean_metric("rev", [arm("c", c), arm("t", t)], gate_heavy_tail=True)]
        # When decided
        result, _ = decide_look(settings, metrics)
        comparison = only(result)
        # Then heavy_tail (not_ready) exactly while |skewness of Δ| > 0.1 (Kohavi's rule in
        # the form of the difference, at the documented threshold)
        skewed = abs(gamma) > 0.1
        outcomes.append(skewed)
        if skewed:
            assert comparison.decision == "not_ready" and comparison.reason == "heavy_tail"
            assert not comparison.significant
        else:
            assert comparison.reason != "heavy_tail" and comparison.decision != "not_ready"
        # And the per-arm heavy_tail warning names the metric while an arm is below 355·g²
        small = [x for x in (c, t) if len(x) < 355 * scipy_stats.skew(x, bias=True) ** 2]
        warned = [w for w in result.warnings if w.code == "heavy_tail"]
        assert len(warned) == len(small)
        assert all(w.metric == "rev" for w in warned)
    # (the sizes straddle the threshold)
    assert outcomes[0] and not outcomes[-1]


def test_decide_look__gate_heavy_tail__balanced_split_cancels_equal_skew() -> None:
    # Given the same skewed distribution in two equal arms of 400 (each below 355·g²)
    rng = np.random.default_rng(44)
    c, t = rng.exponential(10.0, 400), rng.exponential(10.0, 400)
    assert 355 * scipy_stats.skew(c, bias=True) ** 2 > 400
    metrics = [mean_metric("rev", [arm("c", c), arm("t", t)], gate_heavy_tail=True)]
    # When decided
    result, _ = decide_look(DecisionSettings(), metrics)
    # Then the difference is nearly symmetric and the comparison is decided, with a warning
    assert abs(_difference_skewness_oracle(c, t)) <= 0.1
    assert only(result).decision != "not_ready"
    assert any(w.code == "heavy_tail" for w in result.warnings)


def test_decide_look__heavy_tail_without_gate__warning_only() -> None:
    rng = np.random.default_rng(43)
    c, t = rng.exponential(10.0, 500), rng.exponential(10.0, 500)
    result, _ = decide_look(DecisionSettings(), [mean_metric("rev", [arm("c", c), arm("t", t)])])
    assert only(result).decision != "not_ready"
    assert [w.code for w in result.warnings].count("heavy_tail") >= 1


# ---------------------------------------------------------------------------- guardrails


def guardrail(
    key: str, variants: Sequence[VariantStats], direction: str = "increase", **options: Any
) -> MetricInput:
    return mean_metric(key, variants, role="guardrail", direction=direction, **options)


@pytest.mark.parametrize(
    ("direction", "shift", "harm"),
    [
        ("increase", -0.5, True),
        ("increase", 0.5, False),
        ("decrease", 0.5, True),
        ("decrease", -0.5, False),
    ],
)
def test_decide_look__guardrail_clear_effect__harm_only_on_harmful_side(
    direction: str, shift: float, harm: bool
) -> None:
    # Given a guardrail with a clear effect of this sign, under a fixed experiment before plan
    variants = [moments_arm("c", 3000, 10.0, 2.0), moments_arm("t", 3000, 10.0 + shift, 2.0)]
    settings = DecisionSettings(method="fixed", planned_sample_size=100_000)
    metrics = [
        mean_metric("main", variants),
        guardrail("latency", variants, direction=direction),
    ]
    # When decided
    result, _ = decide_look(settings, metrics)
    comparison = only(result, "latency")
    # Then harm and loss only on the harmful side, whatever the main method
    assert comparison.harm is harm
    assert comparison.decision == ("loss" if harm else "inconclusive")
    assert result.harms == ([("latency", "t")] if harm else [])
    assert result.guardrail_status == ("harm_detected" if harm else "no_harm_detected")
    assert only(result, "main").decision == "not_ready"  # the fixed plan is not reached


def test_decide_look__guardrail_walk__harm_iff_running_interval_at_bonferroni_level_harmful() -> (
    None
):
    # Given two treatments, one slightly harmful, on a guardrail, over 70 looks
    data = walk(21, [0.0, -0.07], looks=70, per_look=40)
    settings = DecisionSettings(guardrail_alpha=0.1)
    level = 0.1 / 2  # two guardrail × treatment pairs
    running: list[tuple[float, float] | None] = [None, None]
    sticky = [False, False]
    state = None
    for arms in data:
        variants = [arm("c", arms[0]), arm("t1", arms[1]), arm("t2", arms[2])]
        result, state = decide_look(settings, [guardrail("g", variants)], state)
        state = roundtrip(state)
        comparisons = result.metrics[0].comparisons
        if arms[0].size < 100:
            assert result.guardrail_status == "not_enough_data"
            assert all(c.harm is False and c.decision == "not_ready" for c in comparisons)
            continue
        for j, comparison in enumerate(comparisons):
            delta, variance, n = raw_welch(arms[0], arms[j + 1])
            half = oracle_half_width(variance, n, 0.1, level, TUNING)
            running[j], _ = oracle_intersect(running[j], (delta - half, delta + half))
            sticky[j] = sticky[j] or running[j][1] < 0
            # Then harm ⟺ the running interval at guardrail_alpha/m is (or was) below 0
            assert comparison.adjusted_ci == pytest.approx(running[j], rel=1e-9)
            assert comparison.harm is sticky[j]
            assert (comparison.decision == "loss") is sticky[j]
        status = "harm_detected" if any(sticky) else "no_harm_detected"
        assert result.guardrail_status == status
    assert sticky == [False, True]


def test_decide_look__guardrail_harm__sticky_when_later_data_look_fine() -> None:
    # Given harm at the first look, then data with a positive effect
    harmful = [moments_arm("c", 3000, 10.0, 2.0), moments_arm("t", 3000, 9.5, 2.0)]
    fine = [moments_arm("c", 30_000, 10.0, 2.0), moments_arm("t", 30_000, 10.2, 2.0)]
    results = run(DecisionSettings(), [[guardrail("g", harmful)], [guardrail("g", fine)]])
    # Then harm stays, and so does the loss
    for result, _ in results:
        assert only(result).harm is True and only(result).decision == "loss"
        assert result.guardrail_status == "harm_detected"


@pytest.mark.parametrize(("treatment_mean", "harm"), [(9.5, False), (7.0, True)])
def test_decide_look__guardrail_harm_margin__harm_only_beyond_relative_margin(
    treatment_mean: float, harm: bool
) -> None:
    # Given a 10% harm margin; a −5% change (clearly below 0) and a −30% change
    variants = [moments_arm("c", 20_000, 10.0, 2.0), moments_arm("t", 20_000, treatment_mean, 2.0)]
    result, _ = decide_look(DecisionSettings(), [guardrail("g", variants, harm_margin=0.10)])
    comparison = only(result)
    # Then harm only when the relative interval lies wholly below −10%
    assert comparison.adjusted_ci[1] < 0  # both are significant decreases
    assert comparison.relative_ci is not None
    assert (comparison.relative_ci[1] < -0.10) is harm
    assert comparison.harm is harm
    assert comparison.decision == ("loss" if harm else "inconclusive")


def test_look_result__guardrail_status__four_words() -> None:
    base = [moments_arm("c", 3000, 10.0, 2.0), moments_arm("t", 3000, 10.0, 2.0)]
    harmful = [moments_arm("c", 3000, 10.0, 2.0), moments_arm("t", 3000, 9.0, 2.0)]
    tiny = [moments_arm("c", 50, 10.0, 2.0), moments_arm("t", 50, 9.0, 2.0)]
    cases = [
        ([mean_metric("main", base)], "no_guardrails"),
        ([mean_metric("main", base), guardrail("g", tiny)], "not_enough_data"),
        ([guardrail("g", base)], "no_harm_detected"),
        ([guardrail("g", base), guardrail("h", harmful)], "harm_detected"),
        ([guardrail("g", tiny), guardrail("h", harmful)], "harm_detected"),
    ]
    for metrics, status in cases:
        result, _ = decide_look(DecisionSettings(), metrics)
        assert result.guardrail_status == status


# ---------------------------------------------------------------------------- SRM


def oracle_srm_p(counts: Sequence[int], weights: Sequence[float], c: float = 1000.0) -> float:
    """Lindon & Malek's Dirichlet–multinomial Bayes factor, written out."""
    a = [c * w for w in weights]
    n = sum(counts)
    log_bf = (
        special.gammaln(sum(a))
        - special.gammaln(sum(a) + n)
        + sum(
            special.gammaln(ai + x) - special.gammaln(ai) for ai, x in zip(a, counts, strict=True)
        )
        - sum(x * math.log(w) for x, w in zip(counts, weights, strict=True))
    )
    return min(1.0, math.exp(-log_bf))


def test_decide_look__srm__flag_sticky_with_first_flagged_at_kept() -> None:
    # Given unit counts that drift into a mismatch, then look balanced again
    counts = [(500, 510), (1000, 1040), (2000, 2400), (3000, 3100), (20_000, 20_000)]
    metric = [mean_metric("m", [moments_arm("c", 500, 1, 1), moments_arm("t", 500, 1, 1)])]
    state = None
    running = None
    flagged_at = None
    for hour, (c, t) in enumerate(counts):
        # When each look is decided with its time
        result, state = decide_look(
            DecisionSettings(),
            metric,
            state,
            observed_units={"c": c, "t": t},
            expected_weights=[0.5, 0.5],
            at=f"2026-11-28T{hour:02d}:00:00+00:00",
        )
        state = roundtrip(state)
        p = oracle_srm_p([c, t], [0.5, 0.5])
        running = p if running is None else min(running, p)
        if flagged_at is None and running < 0.001:
            flagged_at = f"2026-11-28T{hour:02d}:00:00+00:00"
        # Then the sequential p is the running minimum; the flag and its time stick
        assert result.srm.sequential_p_value == pytest.approx(running, rel=1e-6)
        assert result.srm.flagged is (flagged_at is not None)
        assert result.srm.first_flagged_at == flagged_at
    assert flagged_at == "2026-11-28T02:00:00+00:00"
    assert oracle_srm_p(counts[-1], [0.5, 0.5]) > 0.5  # the last look alone looks healthy


# ---------------------------------------------------------------------------- interval conflict


def test_decide_look__sequential_disjoint_new_interval__previous_kept_with_warning() -> None:
    # Given a look with an interval clearly above 0, then one clearly below it (disjoint)
    up = [mean_metric("m", [moments_arm("c", 1000, 10.0, 1.0), moments_arm("t", 1000, 10.5, 1.0)])]
    down = [
        mean_metric("m", [moments_arm("c", 2000, 10.0, 1.0), moments_arm("t", 2000, 9.5, 1.0)])
    ]
    again = [
        mean_metric("m", [moments_arm("c", 2100, 10.0, 1.0), moments_arm("t", 2100, 10.5, 1.0)])
    ]
    (first, _), (second, _), (third, _) = run(DecisionSettings(), [up, down, again])
    kept = only(first).adjusted_ci
    delta, variance, n = welch_moments(*down[0].variants)
    half = oracle_half_width(variance, n, ALPHA, ALPHA, TUNING)
    assert delta + half < kept[0]  # the constructed intervals really are disjoint
    # Then the previous interval (which excludes 0) is kept, with an interval_conflict warning
    assert only(second).adjusted_ci == pytest.approx(kept)
    assert excludes_zero(only(second).adjusted_ci)
    assert only(second).significant and only(second).decision == "win"
    conflicts = [w for w in second.warnings if w.code == "interval_conflict"]
    assert len(conflicts) == 1 and conflicts[0].metric == "m"
    assert not [w for w in first.warnings if w.code == "interval_conflict"]
    # And the warning belongs to that look only
    assert not [w for w in third.warnings if w.code == "interval_conflict"]


def test_decide_look__running_interval_with_zero_then_disjoint__new_interval_taken() -> None:
    # Given a running interval around 0, then a look whose interval lies wholly above it
    flat = [
        mean_metric("m", [moments_arm("c", 1000, 10.0, 1.0), moments_arm("t", 1000, 10.0, 1.0)])
    ]
    jump = [
        mean_metric("m", [moments_arm("c", 4000, 10.0, 1.0), moments_arm("t", 4000, 10.6, 1.0)])
    ]
    (first, _), (second, _) = run(DecisionSettings(), [flat, jump])
    delta, variance, n = welch_moments(*jump[0].variants)
    half = oracle_half_width(variance, n, ALPHA, ALPHA, TUNING)
    assert delta - half > only(first).adjusted_ci[1]
    # Then the new look's interval (which excludes 0) is taken, with the warning
    assert only(second).adjusted_ci == pytest.approx((delta - half, delta + half), rel=1e-9)
    assert only(second).significant and only(second).decision == "win"
    assert [w.code for w in second.warnings].count("interval_conflict") == 1


def test_decide_look__group_sequential_holm_three_arms__deciding_interval_at_level_boundary() -> (
    None
):
    # Given three treatments at a look at t = 0.6 of the plan (two looks taken)
    settings = DecisionSettings(
        method="group_sequential", planned_sample_size=8000, planned_looks=5, correction="holm"
    )
    first = [
        moments_arm(k, 400, 10.0 + e, 1.0) for k, e in (("c", 0), ("a", 0), ("b", 0.1), ("d", 0.3))
    ]
    second = [
        moments_arm(k, 1200, 10.0 + e, 1.0)
        for k, e in (("c", 0), ("a", 0.01), ("b", 0.15), ("d", 0.2))
    ]
    results = run(settings, [[mean_metric("m", first)], [mean_metric("m", second)]])
    result = results[-1][0]
    fractions = [0.2, 0.6]
    assert result.look.number == 2
    assert result.look.information_fraction == pytest.approx(0.6)
    comparisons = result.metrics[0].comparisons
    p_values = [c.p_value for c in comparisons]
    adjusted, levels = holm_oracle(p_values, ALPHA)
    for comparison, variant, adjusted_p, level in zip(
        comparisons, second[1:], adjusted, levels, strict=True
    ):
        delta, variance, _ = welch_moments(second[0], variant)
        boundary = obrien_fleming_boundaries(2, level, fractions).z_boundaries[-1]
        nominal = obrien_fleming_boundaries(2, ALPHA, fractions).z_boundaries[-1]
        # Then the adjusted p is Holm's, and the deciding interval uses the boundary at α'
        assert comparison.adjusted_p_value == pytest.approx(adjusted_p, rel=1e-9)
        assert comparison.effective_alpha == pytest.approx(level, rel=1e-12)
        half = boundary * math.sqrt(variance)
        assert comparison.adjusted_ci == pytest.approx((delta - half, delta + half), rel=1e-7)
        half = nominal * math.sqrt(variance)
        assert comparison.absolute_ci == pytest.approx((delta - half, delta + half), rel=1e-7)
        # And significant ⟺ |z| reaches that boundary ⟺ adjusted p ≤ α
        assert comparison.significant == (abs(delta) / math.sqrt(variance) >= boundary)
        assert comparison.significant == (comparison.adjusted_p_value <= ALPHA)
    assert [c.significant for c in comparisons] == [False, True, True]


def test_decide_look__same_state_replayed__same_result_and_input_state_untouched() -> None:
    # Given the state after two sequential looks
    data = walk(51, [0.1], looks=6, per_look=60)
    looks = [[mean_metric("m", [arm("c", c), arm("t", t)])] for c, t in data]
    results = run(DecisionSettings(), looks[:-1])
    state = results[-1][1]
    before = json.dumps(state.to_json(), sort_keys=True)
    # When the next look is decided twice from it (a retried snapshot)
    once, state_once = decide_look(DecisionSettings(), looks[-1], state)
    twice, state_twice = decide_look(DecisionSettings(), looks[-1], state)
    # Then both give the same result and state, and the input state is unchanged
    assert once == twice
    assert state_once.to_json() == state_twice.to_json()
    assert json.dumps(state.to_json(), sort_keys=True) == before
