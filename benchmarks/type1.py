"""Simulations of the decision rule: type-I error, guardrail false harm, coverage and power.

    .venv/bin/python benchmarks/type1.py                    # main grid, 1,000 sims each
    .venv/bin/python benchmarks/type1.py --suite sweep      # lognormal winsorization sweep
    .venv/bin/python benchmarks/type1.py --quick            # 100 sims each, a smoke run

Every simulated experiment is run the way the snapshot service runs a real one: one
``decide_look`` call per hourly snapshot with the cumulative sufficient statistics of every
arm (n, Σy, Σy², Σy³; a proportion's sum is its conversions), the state stored as JSON
(``state.to_json()`` → ``json.dumps``/``loads`` → ``DecisionState.from_json``) and handed to the
next look. Units arrive at a constant rate (40 an hour in total, 360 hourly looks over 15 days)
and each is assigned at random with the configured split (the first arm is the control).
The planned sample size is the number of units by day 10 (9,600): ``fixed`` analyses there,
``group_sequential`` (K = 5 looks) reaches t = 1 there, ``sequential`` uses it as N*.

Each experiment carries, besides its primary metric(s), an independent A/A guardrail metric of
the same type (role ``guardrail``, direction ``decrease``): the guardrail family is separate
from the primary family, so one run measures both the primary type-I error and the guardrail
false-harm rate (in the power rows the guardrail carries a real harm, and the harm column is
the harm-detection power).

Reported per configuration:

- ``rate``: A/A — the false-positive rate, the share of experiments in which a primary
  comparison was ``significant`` (a ``win``/``loss``) at any look; with a real effect — the
  power, the share with a ``win`` at any look (``fixed``: at its one analysis; planner rows: by
  the first look at or after the planned sample size). ``±95%`` is the binomial margin
  1.96·√(r₀(1 − r₀)/n) around the target r₀ (α, or the promised power); ``ok`` is rate ≤ α +
  margin (A/A) or rate ≥ power − margin (planner rows).
- ``harm``: the share of experiments whose guardrail showed ``harm`` at any look.
- coverage: the share of (experiment, look) pairs whose deciding interval ``adjusted_ci``
  (``abs``) and relative interval ``relative_ci`` (``rel``, when bounded) contain the truth (0 in
  A/A), and ``every``: the share of experiments covered at every one of their looks, absolute
  and relative — what an always-valid (or repeated) interval promises (≥ 1 − α).
- ``ready``: the share of experiments whose primary comparison was ever decidable (not
  ``not_ready``), and the median hour it first was.
- ``viol``: violations of the rule (docs/api.md §7) counted over every comparison of every
  look: ``significant`` ⟺ ``adjusted_ci`` excludes 0 ⟺ ``adjusted_p_value`` ≤ α (guardrails:
  ≤ guardrail_alpha); a bounded ``relative_ci`` excludes 0 ⟺ ``adjusted_ci`` does;
  ``win``/``loss`` only when significant, from the interval's side and the direction
  (guardrails: ``loss`` ⟺ ``harm``, harm on the harmful side); ``not_ready`` ⟹ not significant;
  and the look bookkeeping: sequential significance and guardrail harm are sticky, a group
  sequential look is taken exactly when t first reaches the next k/K (number ≤ K, final stays
  final), ``fixed`` is ``not_ready`` before the plan and analyses at most once. Must be 0.

Runtime is dominated by ``decide_look`` (~0.15–0.3 ms a call, two metrics a look in the rows
with a guardrail): the default main grid (36 configurations, 1,000 experiments each — 500 for
the ``fixed`` and power rows — of up to 360 looks) needs about 2,500 CPU-seconds, ~21 minutes on
2 free cores; the sweep (24 configurations × 400) about 1,000 CPU-seconds. On a shared machine
lower ``--sims`` (the table shows each row's count and binomial margin).
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import statistics
import sys
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.stats.decisions import (
    GUARDRAIL,
    DecisionSettings,
    DecisionState,
    MetricInput,
    decide_look,
)
from analysis.stats.inputs import VariantStats
from analysis.stats.power import sample_size

ALPHA = 0.05
GUARDRAIL_ALPHA = 0.05
UNITS_PER_HOUR = 40
HOURS = 15 * 24
PLAN_HOURS = 10 * 24
PLANNED = UNITS_PER_HOUR * PLAN_HOURS  # 9,600 units: the plan is reached on day 10
PLANNED_LOOKS = 5
BASE_SEED = 20261128

# The simulated metrics: control parameters (a treatment multiplies the mean by 1 + effect).
BERNOULLI_P = 0.1
NORMAL_MEAN, NORMAL_SD = 10.0, 5.0
LOGNORMAL_SIGMA = 2.0
METRIC_TYPE = {"bernoulli": "proportion", "normal": "mean", "lognormal": "mean"}
SPLITS = ((0.5, 0.5), (0.8, 0.2), (0.9, 0.1))
DEFAULT_WINSORIZE = 99.0  # the main grid's lognormal rows; the sweep tries the others


@dataclass(frozen=True)
class Config:
    """One simulated configuration (every experiment in it shares these settings)."""

    name: str
    method: str = "sequential"
    metric: str = "normal"
    split: tuple[float, ...] = (0.5, 0.5)
    correction: str = "holm"
    # True relative effect of every treatment on the primary metric (0: A/A).
    effect: float = 0.0
    # True relative change of the guardrail metric in each treatment (> 0: harm, it should
    # decrease).
    guardrail_effect: float = 0.0
    guardrail: bool = True
    winsorize: float | None = None
    gate_heavy_tail: bool = False
    hours: int = HOURS
    units_per_hour: int = UNITS_PER_HOUR
    planned: int | None = PLANNED
    planned_looks: int = PLANNED_LOOKS
    tuning: float | None = None
    # Planner rows: stop at the first look at or after the plan; the power promised there.
    stop_at_plan: bool = False
    promised_power: float | None = None
    sims: int | None = None  # overrides the suite's number of simulations
    share: float = 1.0  # else this share of the suite's number
    section: str = "main"


@dataclass
class SimOutcome:
    """What one simulated experiment leaves for the table."""

    significant: bool = False  # a primary comparison significant at some look
    win: bool = False  # a primary comparison decided `win` at some look
    harm: bool = False  # a guardrail comparison with `harm` at some look
    pairs: int = 0  # (comparison, look) pairs with an interval, for coverage
    covered_abs: int = 0
    pairs_rel: int = 0
    covered_rel: int = 0
    covered_always: bool = True
    first_ready_hour: int | None = None
    violations: int = 0
    examples: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------- data


def _seed(config: Config, sim: int) -> np.random.Generator:
    key = zlib.crc32(config.name.encode())
    return np.random.default_rng([BASE_SEED, key, sim])


def _draw(
    rng: np.random.Generator, metric: str, labels: np.ndarray, effects: np.ndarray
) -> np.ndarray:
    """Per-unit values in arrival order; arm a's mean is the control's × (1 + effects[a])."""
    lift = 1.0 + effects[labels]
    size = labels.size
    if metric == "bernoulli":
        return (rng.random(size) < BERNOULLI_P * lift).astype(np.float64)
    if metric == "normal":
        return NORMAL_MEAN * lift + NORMAL_SD * rng.standard_normal(size)
    if metric == "lognormal":
        return np.exp(LOGNORMAL_SIGMA * rng.standard_normal(size)) * lift
    raise ValueError(metric)


def _true_means(metric: str, effects: np.ndarray) -> np.ndarray:
    base = {
        "bernoulli": BERNOULLI_P,
        "normal": NORMAL_MEAN,
        "lognormal": math.exp(LOGNORMAL_SIGMA**2 / 2.0),
    }[metric]
    return base * (1.0 + effects)


def cumulative_stats(
    values: np.ndarray,
    labels: np.ndarray,
    arms: int,
    ends: np.ndarray,
    winsorize: float | None,
) -> np.ndarray:
    """[look, arm, (n, Σy, Σy², Σy³)] over the first ``ends[look]`` units.

    With ``winsorize`` = q every unit's value is capped at the q-th percentile (numpy's linear
    one, as the SQL's percentile_cont) of all units seen by that look, pooled over the arms,
    before the sums, as the snapshot SQL does.
    """
    out = np.empty((ends.size, arms, 4))
    onehot = labels[None, :] == np.arange(arms)[:, None]  # [arm, unit]
    for power in range(4):
        weighted = np.where(onehot, values[None, :] ** power, 0.0)
        cumulative = np.cumsum(weighted, axis=1)
        out[:, :, power] = cumulative[:, ends - 1].T
    if winsorize is None:
        return out
    # Capping only changes the units above the cap (the top 100 − q %): keep the units seen so
    # far sorted, read the pooled percentile off them, and take (y^p − cap^p) of the units
    # above it away from the raw sums.
    seen = np.empty(0)
    seen_labels = np.empty(0, dtype=labels.dtype)
    start = 0
    for look, end in enumerate(ends):
        order = np.argsort(values[start:end], kind="stable")
        batch = values[start:end][order]
        positions = np.searchsorted(seen, batch)
        seen = np.insert(seen, positions, batch)
        seen_labels = np.insert(seen_labels, positions, labels[start:end][order])
        start = end
        rank = (end - 1) * winsorize / 100.0
        low = math.floor(rank)
        high = min(low + 1, end - 1)
        cap = seen[low] + (rank - low) * (seen[high] - seen[low])
        first = int(np.searchsorted(seen, cap, side="right"))
        above, above_labels = seen[first:], seen_labels[first:]
        for power in (1, 2, 3):
            excess = above**power - cap**power
            out[look, :, power] -= np.bincount(above_labels, weights=excess, minlength=arms)
    return out


def _variants(
    stats: np.ndarray, keys: Sequence[str], metric_type: str
) -> tuple[VariantStats, ...]:
    result = []
    for key, (n, s1, s2, s3) in zip(keys, stats, strict=True):
        if metric_type == "proportion":
            s1 = float(round(s1))
            s2 = s3 = s1
        result.append(
            VariantStats(
                key=key, n=int(n), sum=float(s1), sum_squares=float(s2), sum_cubes=float(s3)
            )
        )
    return tuple(result)


# ---------------------------------------------------------------------------- one experiment


def _excludes_zero(interval: Sequence[float] | None) -> bool:
    return interval is not None and (interval[0] > 0.0 or interval[1] < 0.0)


def _contains(interval: Sequence[float], value: float) -> bool:
    return interval[0] <= value <= interval[1]


def settings_for(config: Config) -> DecisionSettings:
    return DecisionSettings(
        method=config.method,
        alpha=ALPHA,
        sequential_tuning=config.tuning,
        planned_sample_size=config.planned,
        planned_looks=config.planned_looks,
        correction=config.correction,
        guardrail_alpha=GUARDRAIL_ALPHA,
    )


def simulate_experiment(config: Config, sim: int) -> SimOutcome:
    """One seeded experiment: hourly looks, JSON state between them, every rule checked."""
    rng = _seed(config, sim)
    arms = len(config.split)
    keys = ["control"] + [f"treatment{i}" for i in range(1, arms)]
    settings = settings_for(config)
    metric_type = METRIC_TYPE[config.metric]
    total = config.hours * config.units_per_hour
    cumulative_split = np.cumsum(config.split)
    cumulative_split[-1] = 1.0
    labels = np.searchsorted(cumulative_split, rng.random(total), side="right")
    effects = np.array([0.0] + [config.effect] * (arms - 1))
    values = _draw(rng, config.metric, labels, effects)
    ends = np.arange(1, config.hours + 1) * config.units_per_hour
    primary = cumulative_stats(values, labels, arms, ends, config.winsorize)
    guard = None
    if config.guardrail:
        guard_effects = np.array([0.0] + [config.guardrail_effect] * (arms - 1))
        guard_values = _draw(rng, config.metric, labels, guard_effects)
        guard = cumulative_stats(guard_values, labels, arms, ends, config.winsorize)
    means = _true_means(config.metric, effects)
    # The truth the intervals should contain (unknown for capped values with an effect).
    known_truth = config.effect == 0.0 or config.winsorize is None
    truth_abs = [means[a] - means[0] for a in range(1, arms)]
    truth_rel = [effects[a] for a in range(1, arms)]

    out = SimOutcome()
    stored: str | None = None
    was_significant: dict[str, bool] = {}
    was_harm: dict[str, bool] = {}
    gs_reached = 0
    gs_number = 0
    gs_final = False
    fixed_p: dict[str, float | None] = {}
    every_look_covered = True

    def violation(text: str) -> None:
        out.violations += 1
        if len(out.examples) < 3:
            out.examples.append(f"{config.name} sim {sim}: {text}")

    for look in range(config.hours):
        hour = look + 1
        metrics = [
            MetricInput(
                "primary",
                metric_type,
                _variants(primary[look], keys, metric_type),
                gate_heavy_tail=config.gate_heavy_tail,
            )
        ]
        if guard is not None:
            metrics.append(
                MetricInput(
                    "guardrail",
                    metric_type,
                    _variants(guard[look], keys, metric_type),
                    role=GUARDRAIL,
                    direction="decrease",
                    gate_heavy_tail=config.gate_heavy_tail,
                )
            )
        counts = primary[look, :, 0]
        analysed = int(counts.sum())
        state = None if stored is None else DecisionState.from_json(json.loads(stored))
        result, new_state = decide_look(
            settings,
            metrics,
            state,
            analysed_units=analysed,
            observed_units={k: int(c) for k, c in zip(keys, counts, strict=True)},
            expected_weights=list(config.split),
            at=f"hour {hour}",
        )
        stored = json.dumps(new_state.to_json())
        where = f"look {hour}"

        # -- look bookkeeping
        planned = config.planned
        if config.method == "group_sequential":
            assert planned is not None
            t = min(1.0, analysed / planned)
            k = config.planned_looks
            reached = k if t >= 1.0 else math.floor(t * k + 1e-12)
            if not gs_final and reached > gs_reached:
                gs_reached = reached
                gs_number += 1
            if result.look.number != gs_number:
                violation(f"{where}: look number {result.look.number}, expected {gs_number}")
            if gs_final and not result.look.final:
                violation(f"{where}: a final look stopped being final")
            gs_final = gs_final or result.look.final
            if result.look.number > k:
                violation(f"{where}: {result.look.number} looks > K = {k}")
        if config.method == "fixed" and result.look.number > 1:
            violation(f"{where}: fixed analysed {result.look.number} times")

        for metric in result.metrics:
            is_guard = metric.role == GUARDRAIL
            level = GUARDRAIL_ALPHA if is_guard else ALPHA
            for index, c in enumerate(metric.comparisons):
                key = f"{metric.key}|{c.variant}"
                excludes = _excludes_zero(c.adjusted_ci)
                p_small = c.adjusted_p_value is not None and c.adjusted_p_value <= level
                if c.decision == "not_ready" and (c.significant or c.harm):
                    violation(f"{where} {key}: not_ready but significant/harm")
                if not (c.significant == excludes == p_small):
                    violation(
                        f"{where} {key}: significant={c.significant} adjusted_ci={c.adjusted_ci}"
                        f" adjusted_p={c.adjusted_p_value}"
                    )
                if c.relative_ci is not None and _excludes_zero(c.relative_ci) != excludes:
                    violation(
                        f"{where} {key}: relative_ci={c.relative_ci}"
                        f" vs adjusted_ci={c.adjusted_ci}"
                    )
                side = None
                if excludes:
                    up = c.adjusted_ci[0] > 0.0  # type: ignore[index]
                    side = "win" if up == (metric.direction == "increase") else "loss"
                if is_guard:
                    if (c.decision == "loss") != bool(c.harm):
                        violation(f"{where} {key}: decision {c.decision} with harm={c.harm}")
                    if c.harm and not (c.significant and side == "loss"):
                        violation(
                            f"{where} {key}: harm without a harmful interval {c.adjusted_ci}"
                        )
                    if c.decision == "win":
                        violation(f"{where} {key}: a guardrail decided win")
                    if was_harm.get(key) and not c.harm:
                        violation(f"{where} {key}: harm was not sticky")
                    was_harm[key] = bool(c.harm)
                    out.harm = out.harm or bool(c.harm)
                    continue
                if c.significant:
                    if c.decision != side:
                        violation(f"{where} {key}: decision {c.decision}, interval says {side}")
                elif c.decision not in ("inconclusive", "not_ready"):
                    violation(f"{where} {key}: decision {c.decision} while not significant")
                if (
                    config.method == "sequential"
                    and was_significant.get(key)
                    and not c.significant
                ):
                    violation(f"{where} {key}: sequential significance was not sticky")
                was_significant[key] = c.significant
                if config.method == "fixed":
                    if planned is not None and analysed < planned:
                        if c.decision != "not_ready" or c.significant:
                            violation(f"{where} {key}: fixed decided {c.decision} before the plan")
                    elif key in fixed_p and fixed_p[key] != c.p_value:
                        violation(f"{where} {key}: fixed analysed again")
                    else:
                        fixed_p[key] = c.p_value
                out.significant = out.significant or c.significant
                out.win = out.win or c.decision == "win"
                if c.decision != "not_ready" and out.first_ready_hour is None:
                    out.first_ready_hour = hour
                if known_truth and c.adjusted_ci is not None:
                    covered = _contains(c.adjusted_ci, truth_abs[index])
                    out.pairs += 1
                    out.covered_abs += covered
                    if c.relative_ci is not None:
                        covered_rel = _contains(c.relative_ci, truth_rel[index])
                        out.pairs_rel += 1
                        out.covered_rel += covered_rel
                        covered = covered and covered_rel
                    every_look_covered = every_look_covered and covered
        if config.stop_at_plan and planned is not None and analysed >= planned:
            break
    out.covered_always = every_look_covered
    return out


# ---------------------------------------------------------------------------- a configuration


@dataclass
class Summary:
    config: Config
    sims: int
    rate: float
    harm: float
    coverage_abs: float | None
    coverage_rel: float | None
    covered_always: float | None
    ready: float
    median_ready_hour: float | None
    violations: int
    examples: list[str]
    seconds: float

    @property
    def target(self) -> float:
        if self.config.promised_power is not None:
            return self.config.promised_power
        return ALPHA

    @property
    def margin(self) -> float:
        return binomial_margin(self.target, self.sims)

    @property
    def ok(self) -> bool | None:
        if self.config.promised_power is not None:
            return self.rate >= self.target - self.margin
        if self.config.effect == 0.0:
            return self.rate <= ALPHA + self.margin
        return None


def binomial_margin(rate: float, sims: int) -> float:
    """Half-width of the binomial 95% interval around ``rate`` with ``sims`` experiments."""
    return 1.959963984540054 * math.sqrt(rate * (1.0 - rate) / sims)


def _run_chunk(task: tuple[Config, int, int]) -> tuple[str, list[SimOutcome], float]:
    config, start, stop = task
    began = time.perf_counter()
    outcomes = [simulate_experiment(config, sim) for sim in range(start, stop)]
    return config.name, outcomes, time.perf_counter() - began


def summarise(config: Config, outcomes: list[SimOutcome], seconds: float) -> Summary:
    sims = len(outcomes)
    pairs = sum(o.pairs for o in outcomes)
    pairs_rel = sum(o.pairs_rel for o in outcomes)
    known = config.effect == 0.0 or config.winsorize is None
    ready_hours = [o.first_ready_hour for o in outcomes if o.first_ready_hour is not None]
    examples = [e for o in outcomes for e in o.examples][:5]
    rate_of = (lambda o: o.win) if config.effect != 0.0 else (lambda o: o.significant)
    return Summary(
        config=config,
        sims=sims,
        rate=sum(rate_of(o) for o in outcomes) / sims,
        harm=sum(o.harm for o in outcomes) / sims,
        coverage_abs=sum(o.covered_abs for o in outcomes) / pairs if pairs else None,
        coverage_rel=sum(o.covered_rel for o in outcomes) / pairs_rel if pairs_rel else None,
        covered_always=(
            sum(o.covered_always for o in outcomes if o.pairs)
            / max(1, sum(1 for o in outcomes if o.pairs))
            if known and pairs
            else None
        ),
        ready=len(ready_hours) / sims,
        median_ready_hour=statistics.median(ready_hours) if ready_hours else None,
        violations=sum(o.violations for o in outcomes),
        examples=examples,
        seconds=seconds,
    )


def run_configs(
    configs: Sequence[Config],
    sims: int,
    processes: int = 1,
    chunk: int = 25,
    on_done: Callable[[Summary], None] | None = None,
) -> list[Summary]:
    """Simulate every configuration (``config.sims`` or ``sims`` experiments each), in order;
    ``on_done`` gets each configuration's summary as soon as its experiments are in."""
    tasks = []
    expected: dict[str, int] = {}
    for config in configs:
        n = config.sims or max(1, round(sims * config.share))
        expected[config.name] = n
        tasks.extend((config, s, min(n, s + chunk)) for s in range(0, n, chunk))
    by_name = {c.name: c for c in configs}
    results: dict[str, list[SimOutcome]] = {c.name: [] for c in configs}
    seconds: dict[str, float] = {c.name: 0.0 for c in configs}
    summaries: dict[str, Summary] = {}

    def collect(name: str, outcomes: list[SimOutcome], spent: float) -> None:
        results[name].extend(outcomes)
        seconds[name] += spent
        if len(results[name]) == expected[name]:
            summaries[name] = summarise(by_name[name], results[name], seconds[name])
            if on_done is not None:
                on_done(summaries[name])

    if processes > 1:
        with multiprocessing.Pool(processes) as pool:
            for item in pool.imap(_run_chunk, tasks):
                collect(*item)
    else:
        for task in tasks:
            collect(*_run_chunk(task))
    return [summaries[c.name] for c in configs]


def run_config(config: Config, sims: int, processes: int = 1) -> Summary:
    return run_configs([config], sims, processes)[0]


# ---------------------------------------------------------------------------- the suites


def _split_name(split: Sequence[float]) -> str:
    return "/".join(f"{s:g}" for s in split)


def _metric_name(metric: str, winsorize: float | None) -> str:
    if metric == "lognormal":
        return f"lognormal σ=2 (p{winsorize:g})" if winsorize else "lognormal σ=2 (raw)"
    return {"bernoulli": "Bernoulli p=0.1", "normal": "normal 10±5"}[metric]


def planner_configs() -> list[Config]:
    """Plan with ``power.sample_size`` at 80 % for an MDE; simulate at that effect to the plan."""
    configs = []
    specs = [
        ("normal", NORMAL_MEAN, 0.04, NORMAL_SD),
        ("bernoulli", BERNOULLI_P, 0.20, None),
    ]
    for metric, baseline, mde, sd in specs:
        for method in ("fixed", "group_sequential", "sequential"):
            plan = sample_size(
                METRIC_TYPE[metric],
                baseline,
                mde,
                standard_deviation=sd,
                alpha=ALPHA,
                power=0.8,
                method=method,
                planned_looks=PLANNED_LOOKS,
                daily_units=UNITS_PER_HOUR * 24,
            )
            hours = math.ceil(plan.total_units / UNITS_PER_HOUR)
            configs.append(
                Config(
                    name=f"planner {method} {_metric_name(metric, None)} MDE +{mde:.0%}"
                    f" (plan {plan.total_units:,} units, hour {hours})",
                    method=method,
                    metric=metric,
                    effect=mde,
                    guardrail=False,
                    hours=hours,
                    planned=plan.total_units,
                    tuning=plan.sequential_tuning,
                    stop_at_plan=True,
                    promised_power=0.8,
                    section="planner",
                )
            )
    return configs


def main_configs() -> list[Config]:
    configs = []
    for method in ("sequential", "group_sequential"):
        for metric in ("bernoulli", "normal", "lognormal"):
            winsorize = DEFAULT_WINSORIZE if metric == "lognormal" else None
            label = _metric_name(metric, winsorize)
            for split in SPLITS:
                configs.append(
                    Config(
                        name=f"A/A {method} {label} {_split_name(split)}",
                        method=method,
                        metric=metric,
                        split=split,
                        winsorize=winsorize,
                        # As the snapshot service does for sum and mean metrics.
                        gate_heavy_tail=metric != "bernoulli",
                        # The guardrail family does not depend on the method: measured once.
                        guardrail=method == "sequential",
                        section="aa",
                    )
                )
    for metric in ("bernoulli", "normal", "lognormal"):
        winsorize = DEFAULT_WINSORIZE if metric == "lognormal" else None
        configs.append(
            Config(
                name=f"A/A fixed {_metric_name(metric, winsorize)} 0.5/0.5",
                method="fixed",
                metric=metric,
                winsorize=winsorize,
                guardrail=False,
                share=0.5,
                section="aa",
            )
        )
    for method in ("sequential", "group_sequential"):
        for correction in ("holm", "bh"):
            configs.append(
                Config(
                    name=f"A/A 3 arms {method} {correction} normal 10±5 1/3 each",
                    method=method,
                    metric="normal",
                    split=(1 / 3, 1 / 3, 1 / 3),
                    correction=correction,
                    guardrail=False,
                    section="aa",
                )
            )
    for method in ("sequential", "group_sequential", "fixed"):
        configs.append(
            Config(
                name=f"power {method} normal 10±5 +3%"
                + (" (guardrail +3% harm)" if method == "sequential" else ""),
                method=method,
                metric="normal",
                effect=0.03,
                guardrail_effect=0.03,
                guardrail=method == "sequential",
                share=0.5,
                section="power",
            )
        )
    for method in ("sequential", "group_sequential"):
        configs.append(
            Config(
                name=f"power {method} Bernoulli p=0.1 +10%"
                + (" (guardrail +10% harm)" if method == "sequential" else ""),
                method=method,
                metric="bernoulli",
                effect=0.10,
                guardrail_effect=0.10,
                guardrail=method == "sequential",
                share=0.5,
                section="power",
            )
        )
    return configs + planner_configs()


def sweep_configs(sims: int | None = None) -> list[Config]:
    configs = []
    for winsorize in (None, 99.0, 99.5, 99.9):
        for gate in (False, True):
            for split in SPLITS:
                configs.append(
                    Config(
                        name=f"A/A sequential {_metric_name('lognormal', winsorize)}"
                        f" gate_heavy_tail={gate} {_split_name(split)}",
                        method="sequential",
                        metric="lognormal",
                        split=split,
                        winsorize=winsorize,
                        gate_heavy_tail=gate,
                        guardrail=False,
                        sims=sims,
                        section="sweep",
                    )
                )
    return configs


# ---------------------------------------------------------------------------- output


def _pct(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{100 * value:.{digits}f}%"


def markdown_table(summaries: Iterable[Summary]) -> str:
    lines = [
        "| configuration | sims | rate | ±95% | ok | harm | cover abs | cover rel | every look"
        " | ready | ready hour | viol |",
        "|---|---:|---:|---:|:-:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in summaries:
        ok = {True: "yes", False: "**NO**", None: ""}[s.ok]
        hour = "–" if s.median_ready_hour is None else f"{s.median_ready_hour:g}"
        lines.append(
            f"| {s.config.name} | {s.sims} | {_pct(s.rate)} | {_pct(s.margin)} | {ok}"
            f" | {_pct(s.harm)} | {_pct(s.coverage_abs)} | {_pct(s.coverage_rel)}"
            f" | {_pct(s.covered_always)} | {_pct(s.ready, 0)} | {hour} | {s.violations} |"
        )
    return "\n".join(lines)


SECTION_TITLES = {
    "aa": "A/A: false-positive rate (any significant primary comparison at any look) and"
    " guardrail false harm",
    "power": "Power under a real effect (rate = a `win` at any look; harm = guardrail harm"
    " detected)",
    "planner": "The planner's promise: power at the planned sample size (80% promised)",
    "sweep": "Lognormal σ = 2 revenue, sequential, A/A: winsorization percentile ×"
    " gate_heavy_tail",
}


def report(summaries: Sequence[Summary], header: str) -> str:
    parts = [header]
    for section, title in SECTION_TITLES.items():
        rows = [s for s in summaries if s.config.section == section]
        if rows:
            parts += ["", f"### {title}", "", markdown_table(rows)]
    violations = sum(s.violations for s in summaries)
    parts += ["", f"Rule violations (docs/api.md §7, look bookkeeping), all looks: {violations}"]
    for s in summaries:
        for example in s.examples:
            parts.append(f"- {example}")
    return "\n".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sims", type=int, default=1000, help="experiments per configuration")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="100 experiments per configuration")
    parser.add_argument("--suite", choices=("main", "sweep", "all"), default="main")
    parser.add_argument("--sweep-sims", type=int, default=400)
    parser.add_argument("--only", default=None, help="only configurations whose name has this")
    args = parser.parse_args(argv)
    sims = 100 if args.quick else args.sims
    sweep_sims = min(sims, args.sweep_sims)
    configs: list[Config] = []
    if args.suite in ("main", "all"):
        configs += main_configs()
    if args.suite in ("sweep", "all"):
        configs += sweep_configs(sweep_sims)
    if args.only:
        configs = [c for c in configs if args.only in c.name]
    began = time.perf_counter()

    def progress(summary: Summary) -> None:
        row = markdown_table([summary]).splitlines()[-1]
        minutes = (time.perf_counter() - began) / 60
        print(f"[{minutes:5.1f} min] {row}", file=sys.stderr, flush=True)

    summaries = run_configs(configs, sims, args.processes, on_done=progress)
    elapsed = time.perf_counter() - began
    header = (
        f"Decision-rule simulations (`benchmarks/type1.py`, seed {BASE_SEED}): α = {ALPHA},"
        f" guardrail α = {GUARDRAIL_ALPHA}, {UNITS_PER_HOUR} units/hour, hourly looks for"
        f" {HOURS // 24} days ({HOURS} looks), plan {PLANNED:,} units (day 10), K ="
        f" {PLANNED_LOOKS}; "
        + (f"{sims} experiments per configuration" if args.suite != "sweep" else "")
        + (", " if args.suite == "all" else "")
        + (f"{sweep_sims} in the winsorization sweep" if args.suite != "main" else "")
        + f"; {elapsed / 60:.1f} min on {args.processes} processes."
    )
    print(report(summaries, header))
    return 1 if any(s.violations for s in summaries) else 0


if __name__ == "__main__":
    sys.exit(main())
