"""Simulated A/A and A/B experiments with peeking: the reason the sequential methods exist.

1,000 experiments per scenario, looked at 20 times (sequential, naive fixed) or 5 times (group
sequential). Seeded, vectorised data generation; each look goes through the engine itself.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from analysis.stats import (
    EffectEstimate,
    VariantStats,
    analyze,
    arm_moments,
    difference_estimate,
    obrien_fleming_boundaries,
    sequential_state_update,
)

EXPERIMENTS = 1000
LOOKS = 20
PER_LOOK = 100  # units per arm between looks
ALPHA = 0.05
# False positive rate allowed above α: three binomial standard errors over 1,000 experiments.
MARGIN = 3 * math.sqrt(ALPHA * (1 - ALPHA) / EXPERIMENTS)


def _cumulative_totals(
    values: np.ndarray, looks: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """values: (experiments, 2 arms, units) → n, Σy, Σy² at each look, (experiments, 2, looks)."""
    experiments, arms, units = values.shape
    blocks = values.reshape(experiments, arms, looks, units // looks)
    sums = np.cumsum(blocks.sum(axis=3), axis=2)
    squares = np.cumsum((blocks**2).sum(axis=3), axis=2)
    n = np.broadcast_to(np.arange(1, looks + 1) * (units // looks), sums.shape)
    return n, sums, squares


def _generate(kind: str, effect: float, seed: int, looks: int, per_look: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = (EXPERIMENTS, 2, looks * per_look)
    if kind == "normal":
        values = rng.normal(0.0, 1.0, shape)
        values[:, 1] += effect
        return values
    rates = np.array([0.3, 0.3 + effect])[None, :, None]
    return (rng.random(shape) < rates).astype(float)


def _peeking_rejections(kind: str, effect: float, seed: int) -> dict[str, float]:
    """Share of experiments declared significant at any of the 20 looks, per method."""
    metric_type = "mean" if kind == "normal" else "proportion"
    n, sums, squares = _cumulative_totals(_generate(kind, effect, seed, LOOKS, PER_LOOK), LOOKS)
    tuning = 2 * LOOKS * PER_LOOK  # N*: the planned total of both arms
    rejected = {"sequential": 0, "fixed": 0}
    for e in range(EXPERIMENTS):
        state = None
        fixed_hit = False
        for k in range(LOOKS):
            variants = [
                VariantStats(arm, int(n[e, a, k]), float(sums[e, a, k]), float(squares[e, a, k]))
                for a, arm in enumerate(("control", "treatment"))
            ]
            sequential = analyze(
                metric_type, "sequential", variants, sequential_tuning=tuning, cuped=False
            ).comparisons[0]
            state = sequential_state_update(state, sequential.p_value, sequential.absolute_ci)
            fixed = analyze(metric_type, "fixed", variants, cuped=False).comparisons[0]
            fixed_hit = fixed_hit or fixed.significant
        rejected["sequential"] += state is not None and (state.p_value or 1.0) <= ALPHA
        rejected["fixed"] += fixed_hit
    return {method: count / EXPERIMENTS for method, count in rejected.items()}


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "seed"), [("normal", 101), ("bernoulli", 202)])
def test_sequential__aa_with_20_peeks__false_positives_at_most_alpha_naive_fixed_exceeds(
    kind: str, seed: int
) -> None:
    # Given 1,000 A/A experiments, each peeked at 20 times
    # When every look is analysed with the confidence sequence and with the naive fixed test
    rates = _peeking_rejections(kind, effect=0.0, seed=seed)
    print(f"A/A {kind}: false positive rates under peeking {rates}")
    # Then the sequential method stays at or below α (plus binomial noise)
    assert rates["sequential"] <= ALPHA + MARGIN
    # And the fixed-horizon test, misused by peeking, is far above α
    assert rates["fixed"] > 2 * ALPHA


@pytest.mark.slow
@pytest.mark.parametrize(
    ("kind", "effect", "seed"), [("normal", 0.2, 303), ("bernoulli", 0.07, 404)]
)
def test_sequential__large_real_effect__detected_with_high_power(
    kind: str, effect: float, seed: int
) -> None:
    # Given 1,000 A/B experiments with a large effect (z ≈ 6 and ≈ 4.8 at the end)
    # When analysed at 20 looks
    rates = _peeking_rejections(kind, effect=effect, seed=seed)
    print(f"A/B {kind} effect {effect}: power {rates}")
    # Then the sequential method finds it in nearly every experiment
    assert rates["sequential"] >= 0.9


def _group_sequential_rejections(kind: str, effect: float, seed: int) -> float:
    looks, per_look = 5, 400
    n, sums, squares = _cumulative_totals(_generate(kind, effect, seed, looks, per_look), looks)
    boundaries = np.array(obrien_fleming_boundaries(looks, ALPHA).z_boundaries)
    metric_type = "mean" if kind == "normal" else "proportion"
    rejected = 0
    for e in range(EXPERIMENTS):
        for k in range(looks):
            control, treatment = (
                arm_moments(
                    metric_type,
                    VariantStats(
                        arm, int(n[e, a, k]), float(sums[e, a, k]), float(squares[e, a, k])
                    ),
                )
                for a, arm in enumerate(("control", "treatment"))
            )
            estimate = difference_estimate(control, treatment)  # type: ignore[arg-type]
            assert isinstance(estimate, EffectEstimate)
            if abs(estimate.absolute) / math.sqrt(estimate.variance) >= boundaries[k]:
                rejected += 1
                break
    return rejected / EXPERIMENTS


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "seed"), [("normal", 505), ("bernoulli", 606)])
def test_group_sequential__aa_with_5_looks__false_positives_near_alpha(
    kind: str, seed: int
) -> None:
    # Given 1,000 A/A experiments with five planned looks / When tested against the boundaries
    rate = _group_sequential_rejections(kind, 0.0, seed)
    print(f"group sequential A/A {kind}: false positive rate {rate}")
    # Then the rate is α up to binomial noise, on both sides
    assert abs(rate - ALPHA) <= MARGIN


@pytest.mark.slow
def test_group_sequential__moderate_effect__power_close_to_fixed_design() -> None:
    # Given a normal effect of 0.1σ with 2,000 units per arm at the end (fixed power ≈ 88%)
    rate = _group_sequential_rejections("normal", 0.1, 707)
    print(f"group sequential power at 0.1σ: {rate}")
    # Then the group sequential design keeps almost all of it
    assert rate >= 0.8
