"""A fast, seeded slice of ``benchmarks/type1.py``: the decision rule over repeated looks.

Each simulated experiment calls ``decide_look`` at every hourly snapshot with cumulative
sufficient statistics and the previous look's state round-tripped through JSON, as the
snapshot service does. Fewer looks than the benchmark (4 days of hourly looks, the plan reached
at hour 64) but the same code, so the plan and look bookkeeping are exercised: a group
sequential rule that tested every snapshot against the final boundary, or a fixed test that
decided before its plan or more than once, fails here.
"""

from __future__ import annotations

import pytest

from tests.analysis.stats.helpers import load_benchmark

HOURS = 96
UNITS_PER_HOUR = 100
PLANNED = 64 * UNITS_PER_HOUR  # reached at hour 64
SIMS = 200


type1 = load_benchmark("type1")
pytestmark = pytest.mark.slow


def _config(name: str, **changes: object):
    settings: dict[str, object] = {
        "hours": HOURS,
        "units_per_hour": UNITS_PER_HOUR,
        "planned": PLANNED,
        "guardrail": False,
    }
    return type1.Config(name=name, **{**settings, **changes})


@pytest.fixture(scope="module")
def summaries() -> dict:
    configs = [
        _config(
            "aa_sequential_normal_80_20", method="sequential", split=(0.8, 0.2), guardrail=True
        ),
        _config("aa_group_sequential_bernoulli", method="group_sequential", metric="bernoulli"),
        _config("aa_fixed_normal", method="fixed", sims=60),
        _config("power_sequential_normal_5pct", method="sequential", effect=0.05, sims=60),
    ]
    return {s.config.name: s for s in type1.run_configs(configs, SIMS, processes=1)}


def _upper(summary) -> float:
    return type1.ALPHA + type1.binomial_margin(type1.ALPHA, summary.sims)


def test_sequential_aa__normal_80_20__false_positives_at_most_alpha(summaries) -> None:
    summary = summaries["aa_sequential_normal_80_20"]
    assert summary.sims == SIMS
    assert summary.rate <= _upper(summary)
    assert summary.harm <= _upper(summary)
    assert summary.covered_always >= 1 - _upper(summary)


def test_group_sequential_aa__bernoulli_50_50__false_positives_at_most_alpha(summaries) -> None:
    summary = summaries["aa_group_sequential_bernoulli"]
    assert summary.rate <= _upper(summary)
    # The first look is taken when t first reaches 1/K: hour 13 (1,300 of 6,400 units).
    assert summary.ready == 1.0 and summary.median_ready_hour == 13


def test_fixed__no_decision_before_the_plan(summaries) -> None:
    summary = summaries["aa_fixed_normal"]
    # Every experiment was not_ready (and never significant) until hour 64, decided there
    # once and repeated that decision (checked at every look, counted as violations).
    assert summary.ready == 1.0 and summary.median_ready_hour == 64
    assert summary.violations == 0


def test_every_look__rule_holds(summaries) -> None:
    examples = [e for s in summaries.values() for e in s.examples]
    assert sum(s.violations for s in summaries.values()) == 0, examples


def test_sequential__clear_effect__detected(summaries) -> None:
    summary = summaries["power_sequential_normal_5pct"]
    # +5 % on a mean of 10 (sd 5) with 9,600 units: z ≈ 4.9 at the end.
    assert summary.rate >= 0.9
    assert summary.coverage_abs >= 0.95
