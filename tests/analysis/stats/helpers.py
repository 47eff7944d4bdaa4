"""Raw data in, sufficient statistics out: the same totals the database side builds."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np

from analysis.stats import VariantStats


def variant_from_values(
    key: str,
    values: np.ndarray,
    covariate: np.ndarray | None = None,
    denominator: np.ndarray | None = None,
) -> VariantStats:
    """Σy, Σy² (and Σx, Σx², Σyx or ΣD, ΣD², ΣMD) of per-unit values, as floats."""
    values = np.asarray(values, dtype=float)
    extra: dict[str, float] = {}
    if covariate is not None:
        extra = {
            "covariate_sum": float(covariate.sum()),
            "covariate_sum_squares": float((covariate**2).sum()),
            "cross_sum": float((values * covariate).sum()),
        }
    if denominator is not None:
        extra = {
            "denominator_sum": float(denominator.sum()),
            "denominator_sum_squares": float((denominator**2).sum()),
            "cross_sum": float((values * denominator).sum()),
        }
    return VariantStats(
        key=key,
        n=int(values.size),
        sum=float(values.sum()),
        sum_squares=float((values**2).sum()),
        **extra,
    )


def load_benchmark(name: str) -> ModuleType:
    """benchmarks/<name>.py as a module: the simulation tests run seeded slices of its code."""
    path = Path(__file__).resolve().parents[3] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"variantlab_benchmark_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
