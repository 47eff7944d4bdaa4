"""Deterministic experiment assignment: hash a unit to a point, bucket it, pick a variant.

The rules are GrowthBook's published SDK spec (CONTRACT.md §2), so any GrowthBook SDK given the
same seed, weights and coverage puts a unit in the same variant:

- ``hash_unit`` maps ``(seed, unit id)`` to a point in [0, 1) with 32-bit FNV-1a over UTF-16
  code units. A hash *version* lets the algorithm change without moving existing units.
- ``bucket_ranges`` turns weights and coverage into one half-open range per variant;
  ``choose_variant`` finds the range holding the point (-1: outside coverage).
- ``in_namespace`` places a unit inside a layer's slice so experiments in one layer never share
  a unit.
- ``assign`` applies those steps to one experiment in the contract's order.

Pure standard library, no Django: this is the hottest path of the service.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from variantlab_client.conditions import evaluate_condition, validate_condition

__all__ = [
    "Assignment",
    "ExperimentConfig",
    "VariantConfig",
    "assign",
    "bucket_ranges",
    "choose_variant",
    "evaluate_condition",
    "fnv1a32",
    "hash_unit",
    "in_namespace",
    "validate_condition",
]

_FNV_OFFSET = 0x811C9DC5
_FNV_PRIME = 0x01000193
_MASK32 = 0xFFFFFFFF
_UTF16_NATIVE = "utf-16-le" if sys.byteorder == "little" else "utf-16-be"


# --- Hashing ------------------------------------------------------------------------------------


def _fnv_update(state: int, text: str) -> int:
    """Continue FNV-1a 32-bit from ``state`` over the UTF-16 code units of ``text``."""
    if text.isascii():
        # One byte per character is exactly one UTF-16 code unit, and iterating bytes is the
        # fastest loop CPython offers (measured against ord(), memoryview and array variants).
        units: Any = text.encode("ascii")
    else:
        # Native-endian UTF-16 read as unsigned shorts: astral characters become surrogate
        # pairs, exactly the code units JavaScript's charCodeAt walks.
        units = memoryview(text.encode(_UTF16_NATIVE)).cast("H")
    for unit in units:
        state = ((state ^ unit) * _FNV_PRIME) & _MASK32
    return state


def fnv1a32(text: str) -> int:
    """32-bit FNV-1a over the string's UTF-16 code units (offset 0x811C9DC5, prime 0x01000193)."""
    return _fnv_update(_FNV_OFFSET, text)


@lru_cache(maxsize=4096)
def _seed_state(seed: str) -> int:
    # v2 hashes seed + unit id: the seed's share of the work is the same for every unit of an
    # experiment, so it is done once per seed.
    return _fnv_update(_FNV_OFFSET, seed)


def hash_unit(seed: str, unit_id: str, version: int = 2) -> float | None:
    """The unit's point in [0, 1) for an experiment seed; None for an unknown hash version.

    v2: ``fnv(str(fnv(seed + unit_id))) % 10000 / 10000`` (the second pass spreads short ids);
    v1: ``fnv(unit_id + seed) % 1000 / 1000`` (used by namespaces).
    """
    if version == 2:
        first = _fnv_update(_seed_state(seed), unit_id)
        return _fnv_update(_FNV_OFFSET, str(first)) % 10000 / 10000
    if version == 1:
        return _fnv_update(_FNV_OFFSET, unit_id + seed) % 1000 / 1000
    return None


# --- Bucketing ----------------------------------------------------------------------------------


def _valid_weights(n_variants: int, weights: Any) -> bool:
    if weights is None or len(weights) != n_variants:
        return False
    try:
        total = sum(float(w) for w in weights)
    except (TypeError, ValueError):
        return False
    return 0.99 <= total <= 1.01  # False for NaN as well


def bucket_ranges(
    n_variants: int, coverage: float = 1.0, weights: Any = None
) -> list[tuple[float, float]]:
    """One half-open range per variant: ``[c_i, c_i + coverage * w_i)``.

    ``c_i`` is the sum of the earlier weights, so lowering coverage shrinks each range from its
    end and never moves a unit between variants. Coverage is clamped to [0, 1]; missing or
    invalid weights (wrong length, not summing to 1 ± 0.01) fall back to equal weights.

    Range ends are not rounded: GrowthBook's JavaScript SDK and its current Python SDK (4.x)
    keep full floats, and rounding would move v2 points that land on a boundary (e.g. 0.3333
    with three equal weights).
    """
    coverage = 0.0 if coverage < 0 else 1.0 if coverage > 1 else coverage
    if n_variants <= 0:
        return []
    if not _valid_weights(n_variants, weights):
        weights = [1 / n_variants] * n_variants
    ranges = []
    cumulative = 0.0
    for weight in weights:
        start = cumulative
        cumulative += weight
        ranges.append((start, start + coverage * weight))
    return ranges


def choose_variant(point: float, ranges: list[tuple[float, float]]) -> int:
    """Index of the range holding ``point``, or -1 when it falls outside all of them."""
    for index, (low, high) in enumerate(ranges):
        if low <= point < high:
            return index
    return -1


def in_namespace(unit_id: str, namespace: tuple[str, float, float]) -> bool:
    """Whether the unit falls in ``[start, end)`` of the layer's own v1 hash."""
    layer_id, start, end = namespace
    point = hash_unit("__" + layer_id, unit_id, 1)
    return point is not None and start <= point < end


# --- One experiment, one unit -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VariantConfig:
    key: str
    weight: float
    is_control: bool
    payload: dict


@dataclass(frozen=True, slots=True)
class ExperimentConfig:
    key: str
    status: str  # "draft" | "running" | "paused" | "stopped"
    seed: str
    hash_version: int
    coverage: float
    variants: tuple[VariantConfig, ...]  # in display order; exactly one is_control
    condition: dict
    layer: tuple[str, float, float] | None  # (layer key, start, end)
    forced: Mapping[str, str]  # unit id -> variant key
    shipped_variant: str | None = None
    # Derived once per config load rather than on every assignment (the hot path).
    ranges: tuple[tuple[float, float], ...] = field(init=False, repr=False, compare=False)
    control: VariantConfig = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        weights = tuple(v.weight for v in self.variants)
        ranges = tuple(bucket_ranges(len(self.variants), self.coverage, weights))
        control = next((v for v in self.variants if v.is_control), None)
        if control is None and self.variants:
            control = self.variants[0]
        object.__setattr__(self, "ranges", ranges)
        object.__setattr__(self, "control", control)


@dataclass(frozen=True, slots=True)
class Assignment:
    variant: str
    payload: dict
    in_experiment: bool
    reason: str  # not_running | forced | not_targeted | not_in_layer | not_in_traffic | assigned


def _variant_named(config: ExperimentConfig, key: str | None) -> VariantConfig | None:
    for variant in config.variants:
        if variant.key == key:
            return variant
    return None


def _outcome(variant: VariantConfig, reason: str, in_experiment: bool = False) -> Assignment:
    return Assignment(variant.key, variant.payload, in_experiment, reason)


def assign(config: ExperimentConfig, unit_id: str, attributes: Mapping[str, Any]) -> Assignment:
    """The variant one unit sees, and why (CONTRACT.md §2, steps 1-6 in order).

    Only ``assigned`` units are in the experiment and get an exposure logged. A forced key that
    names no variant of the experiment is ignored rather than trusted.
    """
    if config.status != "running":
        shipped = _variant_named(config, config.shipped_variant)
        if config.status == "stopped" and shipped is not None:
            return _outcome(shipped, "not_running")
        return _outcome(config.control, "not_running")
    forced_key = config.forced.get(unit_id) if config.forced else None
    if forced_key is not None:
        forced = _variant_named(config, forced_key)
        if forced is not None:
            return _outcome(forced, "forced")
    if config.condition and not evaluate_condition(config.condition, attributes):
        return _outcome(config.control, "not_targeted")
    if config.layer is not None and not in_namespace(unit_id, config.layer):
        return _outcome(config.control, "not_in_layer")
    point = hash_unit(config.seed, unit_id, config.hash_version)
    index = -1 if point is None else choose_variant(point, config.ranges)
    if index == -1:
        return _outcome(config.control, "not_in_traffic")
    return _outcome(config.variants[index], "assigned", in_experiment=True)
