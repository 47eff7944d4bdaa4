"""Sequential SRM (Dirichlet–multinomial mixture): exact Bayes factor, no false alarms under
peeking, and enough power to catch a 52/48 split of a 50/50 design."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from scipy import special
from scipy import stats as scipy_stats

from analysis.stats.inputs import StatsInputError
from analysis.stats.srm import (
    DEFAULT_SRM_PRIOR_CONCENTRATION,
    sample_ratio_mismatch,
    sequential_srm_log_bayes_factor,
    sequential_srm_p_value,
    sequential_srm_update,
)

LEVEL = 0.001


@pytest.mark.parametrize(
    ("counts", "weights", "concentration"),
    [
        ([7, 3], [0.5, 0.5], None),
        ([0, 12], [0.8, 0.2], 5.0),
        ([40, 25, 10], [2, 2, 1], 100.0),
        ([1, 0, 0, 2], [0.1, 0.2, 0.3, 0.4], 1.0),
        ([120, 80], [0.5, 0.5], 1000.0),
    ],
)
def test_sequential_srm_log_bayes_factor__small_counts__equals_scipy_pmf_ratio(
    counts, weights, concentration
) -> None:
    # Given counts, design weights (not normalised) and a prior concentration c
    w = np.asarray(weights, dtype=float) / sum(weights)
    c = DEFAULT_SRM_PRIOR_CONCENTRATION if concentration is None else concentration
    # When the log Bayes factor is computed
    ours = float(sequential_srm_log_bayes_factor(counts, weights, concentration))
    # Then it is log DirMult(x | c·w) − log Mult(x | w), each from scipy's own pmf
    n = sum(counts)
    oracle = scipy_stats.dirichlet_multinomial.logpmf(
        counts, c * w, n
    ) - scipy_stats.multinomial.logpmf(counts, n, w)
    assert ours == pytest.approx(oracle, rel=1e-9, abs=1e-9)
    assert sequential_srm_p_value(counts, weights, concentration) == pytest.approx(
        min(1.0, math.exp(-oracle)), rel=1e-9
    )


def test_sequential_srm_p_value__edge_cases__no_units_one_zero_weight_zero() -> None:
    # Given no units, units in a zero-weight arm, and units only in the one weighted arm
    # Then: no evidence (1), certain mismatch (0), and no evidence (a one-arm null is exact)
    assert sequential_srm_p_value([0, 0], [0.5, 0.5]) == 1.0
    assert sequential_srm_p_value([10, 3], [1.0, 0.0]) == 0.0
    assert sequential_srm_p_value([0, 8], [0.0, 1.0]) == 1.0
    assert sequential_srm_p_value([0, 4, 6], [0.0, 0.5, 0.5]) == pytest.approx(
        sequential_srm_p_value([4, 6], [0.5, 0.5])
    )


def test_sequential_srm_p_value__millions_of_units__finite_and_ordered() -> None:
    # Given a perfect split, a 0.05-point and a 0.5-point mismatch of 20 million units
    even = sequential_srm_p_value([10_000_000, 10_000_000], [1, 1])
    slight = sequential_srm_p_value([10_010_000, 9_990_000], [1, 1])
    gross = sequential_srm_p_value([10_100_000, 9_900_000], [1, 1])
    # Then no overflow: no evidence, some evidence, overwhelming evidence
    assert even == 1.0
    assert 0.0 < slight < 1.0
    assert gross < 1e-100


def test_sequential_srm_p_value__bad_inputs__raise_stats_input_error() -> None:
    with pytest.raises(StatsInputError):
        sequential_srm_p_value([1, 2], [1.0, 1.0, 1.0])
    with pytest.raises(StatsInputError):
        sequential_srm_p_value([1, -2], [1.0, 1.0])
    with pytest.raises(StatsInputError):
        sequential_srm_p_value([1, 2], [0.0, 0.0])
    with pytest.raises(StatsInputError):
        sequential_srm_p_value([1, 2], [1.0, 1.0], prior_concentration=0.0)


def test_sequential_srm_update__looks__running_minimum() -> None:
    # Given three looks whose one-look p-values go down then up
    looks = [[500, 520], [1000, 1150], [2000, 2060]]
    singles = [sequential_srm_p_value(x, [1, 1]) for x in looks]
    assert singles[1] < singles[0] and singles[2] > singles[1]
    # When folded into the running state
    running: float | None = None
    history = []
    for x in looks:
        running = sequential_srm_update(running, x, [1, 1])
        history.append(running)
    # Then it is the running minimum, never going back up
    assert history == [singles[0], singles[1], singles[1]]


def test_srm_result__sequential_fields__defaults_and_to_dict() -> None:
    # Given the χ² result, then with the sequential fields filled in by a caller
    plain = sample_ratio_mismatch({"c": 500, "t": 520})
    filled = dataclasses.replace(
        plain, sequential_p_value=0.25, first_flagged_at="2026-11-28T21:00:00Z"
    )
    # Then the χ² part is unchanged and the sequential p is always in the payload
    assert plain.sequential_p_value is None and plain.first_flagged_at is None
    assert plain.to_dict()["sequential_p_value"] is None
    assert "first_flagged_at" not in plain.to_dict()
    assert filled.to_dict()["sequential_p_value"] == 0.25
    assert filled.to_dict()["first_flagged_at"] == "2026-11-28T21:00:00Z"
    assert filled.p_value == plain.p_value


def _cumulative_counts(
    rng: np.random.Generator, split: list[float], runs: int, step: int, looks: int
) -> np.ndarray:
    """Cumulative units per arm after each look: shape (runs, looks, arms)."""
    return rng.multinomial(step, split, size=(runs, looks)).cumsum(axis=1)


@pytest.mark.parametrize("weights", [[0.5, 0.5], [0.8, 0.2], [0.5, 0.3, 0.2]])
def test_sequential_srm__healthy_experiments_peeked_every_50_units__few_false_alarms(
    weights,
) -> None:
    # Given 2,000 healthy experiments, each looked at after every 50 units up to 5,000
    rng = np.random.default_rng(20261128 + len(weights) + int(10 * weights[0]))
    runs = 2000
    counts = _cumulative_counts(rng, weights, runs, step=50, looks=100)
    # When each is flagged as soon as its running minimum sequential p drops below 0.001
    log_bf = sequential_srm_log_bayes_factor(counts, weights)
    sequential_rate = float((log_bf >= -math.log(LEVEL)).any(axis=1).mean())
    # ... and, as the contrast, as soon as any one look's χ² p drops below 0.001
    expected = np.asarray(weights) * counts.sum(axis=-1, keepdims=True)
    chi2 = ((counts - expected) ** 2 / expected).sum(axis=-1)
    chi2_p = special.chdtrc(len(weights) - 1, chi2)
    peeking_chi2_rate = float((chi2_p < LEVEL).any(axis=1).mean())
    # Then the sequential rate stays within 3 binomial standard errors above 0.001
    margin = LEVEL + 3.0 * math.sqrt(LEVEL * (1.0 - LEVEL) / runs)
    assert sequential_rate <= margin, sequential_rate
    # ... while the peeked χ² test overshoots its level well beyond that margin (~1.5%)
    assert peeking_chi2_rate > margin, peeking_chi2_rate
    assert peeking_chi2_rate > 5 * max(sequential_rate, LEVEL)


def test_sequential_srm__52_48_split_of_a_50_50_design__flagged_by_20000_units() -> None:
    # Given 200 experiments designed 50/50 whose units really split 52/48, looked at every 100
    rng = np.random.default_rng(52)
    counts = _cumulative_counts(rng, [0.52, 0.48], runs=200, step=100, looks=200)
    # When each is flagged once its running minimum sequential p drops below 0.001
    log_bf = sequential_srm_log_bayes_factor(counts, [0.5, 0.5])
    flagged = log_bf >= -math.log(LEVEL)
    # Then ≥ 90% are flagged within 20,000 units (simulated: ~95%), most by ~11,000
    power = float(flagged.any(axis=1).mean())
    assert power >= 0.90, power
    first_look = np.where(flagged.any(axis=1), flagged.argmax(axis=1) + 1, np.inf)
    assert float(np.median(first_look)) * 100 <= 12_000
