"""Benchmark: analyse 1,000 metric × variant comparisons from sufficient statistics.

    .venv/bin/python benchmarks/stats.py

250 metrics × (control + 4 treatments) = 1,000 comparisons, each metric one ``analyze`` call
(SRM, CUPED where the metric has a covariate, Holm over its treatments, JSON-ready results).
The baseline, measured in the same run on the same inputs, is a bare loop of
``scipy.stats.ttest_ind_from_stats`` (Welch), which computes one p-value and nothing else.
Target: the engine's fixed and sequential runs each under 50 ms in total.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy import stats as scipy_stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.stats import VariantStats, analyze

METRICS = 250
VARIANTS = 5  # control + 4 treatments: 4 comparisons per metric
REPEATS = 7


def _inputs(seed: int = 0) -> list[list[VariantStats]]:
    """Realistic totals: 20–50k units per arm, half the metrics with a CUPED covariate."""
    rng = np.random.default_rng(seed)
    metrics = []
    for m in range(METRICS):
        variants = []
        for v in range(VARIANTS):
            n = int(rng.integers(20_000, 50_000))
            mean, sd = 10.0 + 0.1 * v, 3.0
            total = mean * n + rng.normal(0, sd * n**0.5)
            squares = (sd**2 + mean**2) * n
            extra = {}
            if m % 2 == 0:  # pre-period covariate correlated ~0.6 with the outcome
                x_total = mean * n
                extra = {
                    "covariate_sum": x_total,
                    "covariate_sum_squares": (sd**2 + mean**2) * n,
                    "cross_sum": (0.6 * sd * sd) * n + total * x_total / n,
                }
            variants.append(VariantStats(f"v{v}", n, total, squares, **extra))
        metrics.append(variants)
    return metrics


def _best_of(run: Callable[[], object]) -> tuple[float, float]:
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times) * 1e3, statistics.median(times) * 1e3


def main() -> None:
    metrics = _inputs()
    comparisons = METRICS * (VARIANTS - 1)

    def baseline() -> None:
        for variants in metrics:
            control = variants[0]
            c_mean = control.sum / control.n
            c_sd = ((control.sum_squares - control.sum**2 / control.n) / (control.n - 1)) ** 0.5
            for t in variants[1:]:
                t_mean = t.sum / t.n
                t_sd = ((t.sum_squares - t.sum**2 / t.n) / (t.n - 1)) ** 0.5
                scipy_stats.ttest_ind_from_stats(t_mean, t_sd, t.n, c_mean, c_sd, control.n, False)

    def engine(method: str) -> Callable[[], None]:
        def run() -> None:
            for variants in metrics:
                analyze("mean", method, variants).to_dict()

        return run

    print(f"{comparisons} comparisons ({METRICS} metrics x {VARIANTS - 1} treatments), "
          f"best / median of {REPEATS} runs")  # fmt: skip
    rows = [
        ("baseline scipy ttest_ind_from_stats loop", baseline),
        ("engine analyze(method='fixed') + to_dict", engine("fixed")),
        ("engine analyze(method='sequential') + to_dict", engine("sequential")),
    ]
    for label, run in rows:
        best, median = _best_of(run)
        print(f"{label:<48} {best:8.1f} ms  {median:8.1f} ms  "
              f"({best * 1e3 / comparisons:.1f} us/comparison)")  # fmt: skip


if __name__ == "__main__":
    main()
