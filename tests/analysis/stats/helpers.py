"""Raw data in, sufficient statistics out: the same totals the database side builds."""

from __future__ import annotations

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
