"""What the engine takes in: one variant reduced to its sufficient statistics.

A variant is described by running totals over its units, never by rows:

- ``n`` units, ``sum`` = Σy and ``sum_squares`` = Σy² of the per-unit metric value y;
- for CUPED, the pre-exposure covariate x: ``covariate_sum`` = Σx,
  ``covariate_sum_squares`` = Σx² and ``cross_sum`` = Σy·x;
- for ratio metrics (numerator M = y, denominator D): ``denominator_sum`` = ΣD,
  ``denominator_sum_squares`` = ΣD² and ``cross_sum`` = ΣM·D;
- optionally ``sum_cubes`` = Σy³, whose skewness tells when an arm is too small for the
  normal approximation (the ``heavy_tail`` warning).

From these, every mean, variance and covariance the methods need is exact:
mean = Σy/n and sample variance s² = (Σy² − (Σy)²/n)/(n − 1). Totals that no real data set can
produce (negative n, Σy² < (Σy)²/n, a proportion with more successes than units, a covariance
breaking Cauchy–Schwarz) are refused with an error naming the field, so an API can answer 400.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

MetricType = Literal["mean", "proportion", "ratio"]
METRIC_TYPES: tuple[str, ...] = ("mean", "proportion", "ratio")

# Sums arrive from a database in floating point; Σy² − (Σy)²/n loses about n·ε of Σy² to
# cancellation, so "impossible" is judged with a relative tolerance well above that.
_RELATIVE_TOLERANCE = 1e-8

_FLOAT_FIELDS = (
    "sum",
    "sum_squares",
    "covariate_sum",
    "covariate_sum_squares",
    "cross_sum",
    "denominator_sum",
    "denominator_sum_squares",
    "sum_cubes",
)
_COVARIATE_FIELDS = ("covariate_sum", "covariate_sum_squares", "cross_sum")
_RATIO_FIELDS = ("sum_squares", "denominator_sum", "denominator_sum_squares", "cross_sum")


class StatsInputError(ValueError):
    """Inputs no data set can produce. ``fields`` maps a field path to what is wrong with it."""

    def __init__(self, fields: Mapping[str, str]) -> None:
        self.fields = dict(fields)
        super().__init__("; ".join(f"{name}: {message}" for name, message in self.fields.items()))


@dataclass(frozen=True, slots=True)
class VariantStats:
    """Sufficient statistics of one variant (see the module docstring for each total)."""

    key: str
    n: int
    sum: float
    sum_squares: float | None = None
    covariate_sum: float | None = None
    covariate_sum_squares: float | None = None
    cross_sum: float | None = None
    denominator_sum: float | None = None
    denominator_sum_squares: float | None = None
    # Σy³ (as analysed, after capping): optional, for the skewness behind `heavy_tail`.
    sum_cubes: float | None = None

    @property
    def has_covariate(self) -> bool:
        return all(getattr(self, name) is not None for name in _COVARIATE_FIELDS)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VariantStats:
        """Build from a JSON object (unknown keys ignored). Raises StatsInputError on bad types."""
        errors: dict[str, str] = {}
        key = data.get("key")
        if not isinstance(key, str) or not key:
            errors["key"] = "a non-empty string is required"
        n = data.get("n")
        if isinstance(n, float) and n.is_integer():
            n = int(n)
        if isinstance(n, bool) or not isinstance(n, int):
            errors["n"] = "an integer is required"
        values: dict[str, float | None] = {}
        for name in _FLOAT_FIELDS:
            raw = data.get(name)
            if raw is None:
                values[name] = None
            elif isinstance(raw, bool) or not isinstance(raw, int | float):
                errors[name] = "a number is required"
            elif not math.isfinite(raw):
                errors[name] = "must be finite"
            else:
                values[name] = float(raw)
        if values.get("sum") is None and "sum" not in errors:
            errors["sum"] = "a number is required"
        if errors:
            raise StatsInputError(errors)
        return cls(key=key, n=n, **values)  # type: ignore[arg-type]


def variants_from_dicts(items: Sequence[Mapping[str, Any]]) -> list[VariantStats]:
    """Parse a list of JSON objects; errors are keyed ``variants[i].field``."""
    variants: list[VariantStats] = []
    errors: dict[str, str] = {}
    for index, item in enumerate(items):
        if not isinstance(item, Mapping):
            errors[f"variants[{index}]"] = "an object is required"
            continue
        try:
            variants.append(VariantStats.from_dict(item))
        except StatsInputError as error:
            errors.update({f"variants[{index}].{k}": v for k, v in error.fields.items()})
    if errors:
        raise StatsInputError(errors)
    return variants


def _exceeds(lower_bound: float, value: float) -> bool:
    """True when ``value`` is below ``lower_bound`` by more than float noise."""
    scale = max(abs(lower_bound), abs(value), 1.0)
    return value < lower_bound - _RELATIVE_TOLERANCE * scale


def _check_square_total(n: int, total: float, total_sq: float) -> str | None:
    if total_sq < 0:
        return "must not be negative"
    if n == 0:
        return None if total_sq == 0 else "must be 0 when n is 0"
    if _exceeds(total**2 / n, total_sq):
        return "is smaller than sum²/n, which no real data can give"
    return None


def _check_cross_total(
    n: int, sx: float, sxx: float, sy: float, syy: float, sxy: float
) -> str | None:
    """Cauchy–Schwarz: the centred cross product cannot exceed √(Sxx·Syy)."""
    if n == 0:
        return None if sxy == 0 else "must be 0 when n is 0"
    centred_cross = sxy - sx * sy / n
    bound = math.sqrt(max(sxx - sx**2 / n, 0.0) * max(syy - sy**2 / n, 0.0))
    scale = max(abs(sxy), abs(sx * sy / n), bound, 1.0)
    if abs(centred_cross) > bound + _RELATIVE_TOLERANCE * scale:
        return "implies a correlation outside [-1, 1]"
    return None


def _variant_errors(metric_type: str, variant: VariantStats) -> dict[str, str]:
    errors: dict[str, str] = {}
    if isinstance(variant.n, bool) or not isinstance(variant.n, int):
        return {"n": "an integer is required"}
    if variant.n < 0:
        return {"n": "must not be negative"}
    for name in _FLOAT_FIELDS:
        value = getattr(variant, name)
        if value is not None and not math.isfinite(value):
            errors[name] = "must be finite"
    if errors:
        return errors
    n, total = variant.n, variant.sum
    if n == 0 and total != 0:
        errors["sum"] = "must be 0 when n is 0"
    if metric_type == "proportion":
        if not 0 <= total <= n:
            errors["sum"] = "a proportion needs 0 <= sum <= n"
    elif variant.sum_squares is None:
        errors["sum_squares"] = f"required for a {metric_type} metric"
    if variant.sum_squares is not None and "sum" not in errors:
        problem = _check_square_total(n, total, variant.sum_squares)
        if problem:
            errors["sum_squares"] = problem
    if metric_type == "ratio":
        for name in _RATIO_FIELDS:
            if getattr(variant, name) is None:
                errors[name] = "required for a ratio metric"
        if errors:
            return errors
        assert variant.denominator_sum is not None  # checked just above; narrows for mypy
        assert variant.denominator_sum_squares is not None and variant.cross_sum is not None
        assert variant.sum_squares is not None
        problem = _check_square_total(n, variant.denominator_sum, variant.denominator_sum_squares)
        if problem:
            errors["denominator_sum_squares"] = problem
            return errors
        problem = _check_cross_total(
            n,
            total,
            variant.sum_squares,
            variant.denominator_sum,
            variant.denominator_sum_squares,
            variant.cross_sum,
        )
        if problem:
            errors["cross_sum"] = problem
        return errors
    given = [name for name in _COVARIATE_FIELDS if getattr(variant, name) is not None]
    if given and len(given) < len(_COVARIATE_FIELDS):
        for name in _COVARIATE_FIELDS:
            if getattr(variant, name) is None:
                errors[name] = "required with the other CUPED covariate sums"
    elif given and not errors:
        sx, sxx, sxy = variant.covariate_sum, variant.covariate_sum_squares, variant.cross_sum
        assert sx is not None and sxx is not None and sxy is not None
        problem = _check_square_total(n, sx, sxx)
        if problem:
            errors["covariate_sum_squares"] = problem
            return errors
        # A proportion's Σy² equals Σy (y is 0 or 1), which stands in when it is omitted.
        syy = variant.sum_squares if variant.sum_squares is not None else total
        problem = _check_cross_total(n, sx, sxx, total, syy, sxy)
        if problem:
            errors["cross_sum"] = problem
    return errors


def validate_variants(
    metric_type: str, variants: Sequence[VariantStats], *, prefix: str = "variants"
) -> dict[str, str]:
    """Every impossible input, keyed like ``variants[1].sum_squares``; empty when all is well."""
    if metric_type not in METRIC_TYPES:
        return {"metric_type": f"must be one of {', '.join(METRIC_TYPES)}"}
    if len(variants) < 2:
        return {prefix: "at least two variants are needed (the first is the control)"}
    errors: dict[str, str] = {}
    seen: set[str] = set()
    for index, variant in enumerate(variants):
        if variant.key in seen:
            errors[f"{prefix}[{index}].key"] = "duplicate variant key"
        seen.add(variant.key)
        for name, message in _variant_errors(metric_type, variant).items():
            errors[f"{prefix}[{index}].{name}"] = message
    return errors


def check_variants(metric_type: str, variants: Sequence[VariantStats]) -> None:
    """Raise StatsInputError listing every impossible input, or return quietly."""
    errors = validate_variants(metric_type, variants)
    if errors:
        raise StatsInputError(errors)
