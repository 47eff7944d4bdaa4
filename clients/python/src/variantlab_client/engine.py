"""Deterministic experiment assignment: hash a unit to a point, bucket it, pick a variant.

The rules are GrowthBook's published SDK spec (docs/api.md §2), so any GrowthBook SDK given the
same seed, weights and coverage puts a unit in the same variant:

- ``hash_unit`` maps ``(seed, unit id)`` to a point in [0, 1) with 32-bit FNV-1a over UTF-16
  code units. A hash *version* lets the algorithm change without moving existing units.
- ``bucket_ranges`` turns weights and coverage into one half-open range per variant;
  ``choose_variant`` finds the range holding the point (-1: outside coverage).
- ``in_namespace`` places a unit inside a layer's slice so experiments in one layer never share
  a unit.
- ``assign`` applies those steps to one experiment in the contract's order; ``ExperimentSet``
  applies them to several experiments for one unit, sharing the hashing work between them.

Pure standard library, no Django: this is the hottest path of the service.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from variantlab_client.conditions import (
    Predicate,
    compile_condition,
    evaluate_condition,
    validate_condition,
)

__all__ = [
    "Assignment",
    "ExperimentConfig",
    "ExperimentSet",
    "VariantConfig",
    "assign",
    "bucket_ranges",
    "choose_variant",
    "compile_condition",
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


# v2's second pass hashes the decimal digits of the first: FNV from the fixed offset, so the
# state after any 4-digit prefix is a constant, looked up instead of computed (10,000 entries).
_PREFIX_DIGITS = 4


def _digit_prefix_states() -> dict[str, int]:
    states = {"": _FNV_OFFSET}
    for _ in range(_PREFIX_DIGITS):
        states = {
            prefix + digit: ((state ^ ord(digit)) * _FNV_PRIME) & _MASK32
            for prefix, state in states.items()
            for digit in "0123456789"
        }
    return states


_PREFIX_STATES = _digit_prefix_states()


def _second_pass(first: int) -> float:
    """``fnv(str(first)) % 10000 / 10000``, the v2 point of a unit's first hash."""
    return _second_bucket(first) / 10000


def _second_bucket(first: int) -> int:
    """``fnv(str(first)) % 10000``: the v2 point of a unit's first hash, times 10,000."""
    digits = str(first)
    if len(digits) > _PREFIX_DIGITS:
        state = _PREFIX_STATES[digits[:_PREFIX_DIGITS]]
        digits = digits[_PREFIX_DIGITS:]
    else:
        state = _FNV_OFFSET
    for byte in digits.encode("ascii"):
        state = ((state ^ byte) * _FNV_PRIME) & _MASK32
    return state % 10000


# v2 points are multiples of 1/10,000, so each experiment's ranges are read once into a table
# of 10,000 bytes: the range index holding each point (``len(ranges)``: none), found with the
# same float comparisons ``choose_variant`` makes. Step 5 is then one lookup.
_POINTS = 10000


def _first_point_at_or_above(x: float) -> int:
    """The smallest i in [0, 10000] with ``i / 10000 >= x`` (10000 when there is none)."""
    if math.isinf(x):
        return 0 if x < 0 else _POINTS
    i = min(_POINTS, max(0, math.ceil(x * _POINTS)))
    while i > 0 and (i - 1) / _POINTS >= x:
        i -= 1
    while i < _POINTS and i / _POINTS < x:
        i += 1
    return i


def _point_table(ranges: tuple[tuple[float, float], ...]) -> bytes | None:
    """For each v2 point i/10000, the index of the first range holding it; None when the
    ranges are too many for a byte (the loop answers then)."""
    count = len(ranges)
    if count >= 255:
        return None
    table = bytearray([count]) * _POINTS
    for index in range(count - 1, -1, -1):  # backwards: the first range holding a point wins
        low, high = ranges[index]
        if math.isnan(low) or math.isnan(high):
            continue  # no point compares with NaN
        start, end = _first_point_at_or_above(low), _first_point_at_or_above(high)
        if end > start:
            table[start:end] = bytes([index]) * (end - start)
    return bytes(table)


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
    payload: dict[str, Any]
    # docs/api.md §10: a rolled-back treatment keeps its range, and its units are served control.
    rolled_back: bool = False


@dataclass(frozen=True, slots=True)
class Assignment:
    """What one unit gets in one experiment. ``variant`` and ``payload`` are None only for the
    client's ``fallback`` (no configuration ever loaded: the app serves its own default)."""

    variant: str | None
    payload: dict[str, Any] | None
    in_experiment: bool
    # not_running | shipped | forced | not_targeted | not_in_layer | not_in_traffic |
    # rolled_back | assigned | fallback (client only)
    reason: str


@dataclass(frozen=True, slots=True)
class _Answers:
    """Every answer an experiment can give, built once per config: the hot path allocates none
    (frozen, so sharing one object between units is safe)."""

    stopped: Assignment
    forced: dict[str, Assignment]
    not_targeted: Assignment
    not_in_layer: Assignment
    not_in_traffic: Assignment
    by_range: tuple[Assignment, ...]  # step 6 for each range: assigned, or rolled_back


@dataclass(frozen=True, slots=True)
class ExperimentConfig:
    key: str
    # "draft" | "running" | "paused" | "stopped" | "archived": anything but running serves the
    # control (`not_running`), or the shipped variant when stopped with one (`shipped`).
    # Archived experiments are never in a served config; one built by hand gets the control.
    status: str
    seed: str
    hash_version: int
    coverage: float
    variants: tuple[VariantConfig, ...]  # in display order; exactly one is_control
    condition: dict[str, Any]
    layer: tuple[str, float, float] | None  # (layer key, start, end)
    forced: Mapping[str, str]  # unit id -> variant key
    shipped_variant: str | None = None
    # Derived once per config load rather than on every assignment (the hot path).
    ranges: tuple[tuple[float, float], ...] = field(init=False, repr=False, compare=False)
    control: VariantConfig = field(init=False, repr=False, compare=False)
    answers: _Answers = field(init=False, repr=False, compare=False)
    matches: Predicate | None = field(init=False, repr=False, compare=False)
    seed_state: int = field(init=False, repr=False, compare=False)
    # Step 5 for v2 points: `outcomes[point_table[point * 10000]]` (see _point_table).
    point_table: bytes | None = field(init=False, repr=False, compare=False)
    outcomes: tuple[Assignment, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        weights = tuple(v.weight for v in self.variants)
        ranges = tuple(bucket_ranges(len(self.variants), self.coverage, weights))
        control = next((v for v in self.variants if v.is_control), None)
        if control is None and self.variants:
            control = self.variants[0]
        object.__setattr__(self, "ranges", ranges)
        object.__setattr__(self, "control", control)
        object.__setattr__(self, "point_table", _point_table(ranges))
        object.__setattr__(self, "outcomes", ())
        if control is not None:
            answers = _answers_build(self, control)
            object.__setattr__(self, "answers", answers)
            object.__setattr__(self, "outcomes", (*answers.by_range, answers.not_in_traffic))
        object.__setattr__(self, "matches", compile_condition(self.condition))
        object.__setattr__(self, "seed_state", _fnv_update(_FNV_OFFSET, self.seed))

    def variant(self, key: str | None) -> VariantConfig | None:
        return next((v for v in self.variants if v.key == key), None)

    @property
    def shipped(self) -> VariantConfig | None:
        """The variant every unit gets (docs/api.md §13), when stopped with a shipped variant."""
        return self.variant(self.shipped_variant) if self.status == "stopped" else None


def _answer(variant: VariantConfig, reason: str, in_experiment: bool = False) -> Assignment:
    return Assignment(variant.key, variant.payload, in_experiment, reason)


def _answers_build(config: ExperimentConfig, control: VariantConfig) -> _Answers:
    shipped = config.shipped
    rolled_back = _answer(control, "rolled_back")
    return _Answers(
        stopped=_answer(shipped, "shipped") if shipped else _answer(control, "not_running"),
        forced={v.key: _answer(v, "forced") for v in config.variants},
        not_targeted=_answer(control, "not_targeted"),
        not_in_layer=_answer(control, "not_in_layer"),
        not_in_traffic=_answer(control, "not_in_traffic"),
        by_range=tuple(
            rolled_back if v.rolled_back else _answer(v, "assigned", in_experiment=True)
            for v in config.variants
        ),
    )


def assign(config: ExperimentConfig, unit_id: str, attributes: Mapping[str, Any]) -> Assignment:
    """The variant one unit sees, and why (docs/api.md §2, steps 1-6 in order; §10, §13).

    Only ``assigned`` units are in the experiment and get an exposure logged. A forced key that
    names no variant of the experiment is ignored rather than trusted.
    """
    return _decide(config, unit_id, attributes, None, {})


def _decide(
    config: ExperimentConfig,
    unit_id: str,
    attributes: Mapping[str, Any],
    first_pass: int | None,
    layer_points: dict[str, float | None],
    unit_state: int | None = None,
) -> Assignment:
    """``assign``; ``first_pass`` is the v2 hash's first FNV when already computed,
    ``layer_points`` holds the unit's namespace points met so far (one per layer), and
    ``unit_state`` is FNV over the unit id alone when computed (v1 hashes continue from it)."""
    answers = config.answers
    if config.status != "running":
        return answers.stopped
    if config.forced:
        forced = answers.forced.get(config.forced.get(unit_id, ""))
        if forced is not None:
            return forced
    if config.matches is not None and not config.matches(attributes):
        return answers.not_targeted
    layer = config.layer
    if layer is not None:
        if layer[0] in layer_points:
            layer_point = layer_points[layer[0]]
        elif unit_state is not None:
            # v1: fnv(unit_id + "__" + layer) % 1000 / 1000, continued from the unit's state.
            layer_point = layer_points[layer[0]] = (
                _fnv_update(unit_state, "__" + layer[0]) % 1000 / 1000
            )
        else:
            layer_point = layer_points[layer[0]] = hash_unit("__" + layer[0], unit_id, 1)
        if layer_point is None or not layer[1] <= layer_point < layer[2]:
            return answers.not_in_layer
    if config.hash_version == 2:
        if first_pass is None:
            first_pass = _fnv_update(config.seed_state, unit_id)
        bucket = _second_bucket(first_pass)
        table = config.point_table
        if table is not None:
            return config.outcomes[table[bucket]]
        return _bucket(config, bucket / 10000)
    return _bucket(config, hash_unit(config.seed, unit_id, config.hash_version))


def _bucket(config: ExperimentConfig, point: float | None) -> Assignment:
    """Steps 5-6: the variant whose range holds the point (rolled back: control)."""
    if point is not None:
        for index, (low, high) in enumerate(config.ranges):
            if low <= point < high:
                return config.answers.by_range[index]
    return config.answers.not_in_traffic


# --- Several experiments, one unit --------------------------------------------------------------

# The v2 hash starts with FNV over seed + unit id, a byte-at-a-time loop that is most of an
# assignment's cost. Every experiment walks the same unit id bytes from its own seed state, so
# the states of all experiments are packed into one Python int, 64 bits apart, and advanced
# together: XOR the byte into every lane, multiply by the prime, mask each lane to 32 bits. A
# lane never carries into the next (a 32-bit state times the 25-bit prime is under 2^57).
_LANE_BITS = 64


_PLAIN, _TARGETED, _GENERAL = 0, 1, 2


class ExperimentSet:
    """Several experiments assigned together for one unit, each exactly as ``assign`` would."""

    __slots__ = ("_entries", "_initial", "_mask", "_ones", "_spread", "_unit_shift", "configs")

    def __init__(self, configs: Iterable[ExperimentConfig]) -> None:
        self.configs = tuple(configs)
        shifts = []
        initial = mask = ones = lanes = 0
        for config in self.configs:
            if config.status == "running" and config.hash_version == 2:
                shift = lanes * _LANE_BITS
                initial |= config.seed_state << shift
                mask |= _MASK32 << shift
                ones |= 1 << shift
                lanes += 1
                shifts.append(shift)
            else:
                shifts.append(-1)
        # Layers hash v1, fnv(unit id + "__" + layer): one more lane walks the unit id from the
        # offset basis, and each layer's point continues from it over its own short suffix.
        self._unit_shift = -1
        if any(c.status == "running" and c.layer for c in self.configs):
            self._unit_shift = lanes * _LANE_BITS
            initial |= _FNV_OFFSET << self._unit_shift
            mask |= _MASK32 << self._unit_shift
            ones |= 1 << self._unit_shift
        self._entries = tuple(
            (config.key, config, shift, kind, config.point_table or b"", config.outcomes)
            for config, shift in zip(self.configs, shifts, strict=True)
            for kind in (_kind(config, shift),)
        )
        self._initial, self._mask, self._ones = initial, mask, ones
        self._spread = tuple(byte * ones for byte in range(128))

    def assign(self, unit_id: str, attributes: Mapping[str, Any]) -> dict[str, Assignment]:
        state = self._first_pass(unit_id) if self._ones else 0
        unit_state = (state >> self._unit_shift) & _MASK32 if self._unit_shift >= 0 else None
        layer_points: dict[str, float | None] = {}
        result = {}
        prefix_states = _PREFIX_STATES
        for key, config, shift, kind, table, outcomes in self._entries:
            if kind == _GENERAL:
                first = (state >> shift) & _MASK32 if shift >= 0 else None
                result[key] = _decide(config, unit_id, attributes, first, layer_points, unit_state)
                continue
            if kind == _TARGETED and not config.matches(attributes):  # type: ignore[misc]
                result[key] = config.answers.not_targeted
                continue
            # _second_bucket and the table lookup, inlined: this loop is the hot path.
            digits = str((state >> shift) & _MASK32)
            if len(digits) > _PREFIX_DIGITS:
                point = prefix_states[digits[:_PREFIX_DIGITS]]
                digits = digits[_PREFIX_DIGITS:]
            else:
                point = _FNV_OFFSET
            for byte in digits.encode("ascii"):
                point = ((point ^ byte) * _FNV_PRIME) & _MASK32
            result[key] = outcomes[table[point % 10000]]
        return result

    def _first_pass(self, unit_id: str) -> int:
        state, mask = self._initial, self._mask
        if unit_id.isascii():
            spread = self._spread
            for byte in unit_id.encode("ascii"):
                state = ((state ^ spread[byte]) * _FNV_PRIME) & mask
        else:
            ones = self._ones
            for unit in memoryview(unit_id.encode(_UTF16_NATIVE)).cast("H"):
                state = ((state ^ unit * ones) * _FNV_PRIME) & mask
        return state


def _kind(config: ExperimentConfig, shift: int) -> int:
    """How the set evaluates an experiment: a running v2 experiment without QA overrides or
    layer goes straight to its bucket (after its condition, if any): steps 1 and 2 and 4
    cannot change its answer. Anything else takes ``_decide``."""
    if shift < 0 or config.forced or config.layer or config.point_table is None:
        return _GENERAL
    return _PLAIN if config.matches is None else _TARGETED
