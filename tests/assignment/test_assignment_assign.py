"""assign(): one test per reason (docs/api.md §2, steps 1-6), shipped variants, determinism."""

import dataclasses
import math
from collections import Counter

import pytest

from assignment.engine import (
    Assignment,
    ExperimentConfig,
    VariantConfig,
    assign,
    bucket_ranges,
    choose_variant,
    hash_unit,
    in_namespace,
)

CONTROL = VariantConfig(key="control", weight=0.5, is_control=True, payload={"model": "v1"})
TREATMENT = VariantConfig(key="treatment", weight=0.5, is_control=False, payload={"model": "v2"})


def make_config(**overrides: object) -> ExperimentConfig:
    fields: dict[str, object] = {
        "key": "ranker",
        "status": "running",
        "seed": "ranker-seed",
        "hash_version": 2,
        "coverage": 1.0,
        "variants": (CONTROL, TREATMENT),
        "condition": {},
        "layer": None,
        "forced": {},
    }
    fields.update(overrides)
    return ExperimentConfig(**fields)  # type: ignore[arg-type]


def _unit_where(predicate: object, prefix: str = "user-") -> str:
    return next(f"{prefix}{i}" for i in range(10_000) if predicate(f"{prefix}{i}"))  # type: ignore[operator]


@pytest.mark.parametrize("status", ["draft", "paused", "stopped"])
def test_assign__not_running__control_not_in_experiment(status: str) -> None:
    # Given an experiment that is not running
    config = make_config(status=status)
    # When any unit asks
    result = assign(config, "user-1", {})
    # Then it sees control, outside the experiment
    assert result == Assignment("control", {"model": "v1"}, False, "not_running")


def test_assign__stopped_with_shipped_variant__serves_shipped_variant() -> None:
    # Given a stopped experiment whose treatment was shipped
    config = make_config(status="stopped", shipped_variant="treatment")
    # When any unit asks
    result = assign(config, "user-1", {"country": "US"})
    # Then everyone sees the shipped variant, not counted in the experiment (docs/api.md §13)
    assert result == Assignment("treatment", {"model": "v2"}, False, "shipped")


def test_assign__paused_with_shipped_variant__still_control() -> None:
    # Given a paused (not stopped) experiment that names a shipped variant
    config = make_config(status="paused", shipped_variant="treatment")
    # When / Then: only a stopped experiment serves its shipped variant
    assert assign(config, "user-1", {}) == Assignment(
        "control", {"model": "v1"}, False, "not_running"
    )


def test_assign__forced_unit__forced_variant_not_in_experiment() -> None:
    # Given a QA unit forced into treatment, outside the targeting condition
    config = make_config(forced={"qa-1": "treatment"}, condition={"country": "US"})
    # When it asks
    result = assign(config, "qa-1", {"country": "FR"})
    # Then it sees treatment but is never analysed
    assert result == Assignment("treatment", {"model": "v2"}, False, "forced")


def test_assign__forced_to_unknown_variant__ignored() -> None:
    # Given a forced entry naming a variant the experiment does not have
    config = make_config(forced={"qa-1": "gone"})
    # When / Then: the unit is assigned normally
    assert assign(config, "qa-1", {}).reason == "assigned"


def test_assign__condition_false__control_not_targeted() -> None:
    # Given an experiment targeting US users
    config = make_config(condition={"country": {"$in": ["US", "CA"]}})
    # When a French user asks
    result = assign(config, "user-1", {"country": "FR"})
    # Then they see control, outside the experiment
    assert result == Assignment("control", {"model": "v1"}, False, "not_targeted")


def test_assign__outside_layer_range__control_not_in_layer() -> None:
    # Given an experiment holding [0, 0.3) of layer "search" and a unit outside that slice
    layer = ("search", 0.0, 0.3)
    unit = _unit_where(lambda u: not in_namespace(u, layer))
    config = make_config(layer=layer)
    # When it asks
    result = assign(config, unit, {})
    # Then it sees control, outside the experiment
    assert result == Assignment("control", {"model": "v1"}, False, "not_in_layer")


def test_assign__inside_layer_range__assigned() -> None:
    # Given a unit inside the experiment's layer slice
    layer = ("search", 0.0, 0.3)
    unit = _unit_where(lambda u: in_namespace(u, layer))
    # When / Then: the layer does not stop it
    assert assign(make_config(layer=layer), unit, {}).reason == "assigned"


def test_assign__outside_coverage__control_not_in_traffic() -> None:
    # Given 20% coverage and a unit whose point falls in no variant's range
    ranges = bucket_ranges(2, 0.2, [0.5, 0.5])
    unit = _unit_where(lambda u: choose_variant(hash_unit("ranker-seed", u), ranges) == -1)
    config = make_config(coverage=0.2)
    # When it asks
    result = assign(config, unit, {})
    # Then it sees control, outside the experiment
    assert result == Assignment("control", {"model": "v1"}, False, "not_in_traffic")


def test_assign__unknown_hash_version__control_not_in_traffic() -> None:
    # Given a hash version the engine does not know
    config = make_config(hash_version=99)
    # When / Then: no unit enters the experiment
    assert assign(config, "user-1", {}).reason == "not_in_traffic"


def test_assign__eligible_unit__hashed_variant_in_experiment() -> None:
    # Given a running, targeted, fully covered experiment
    config = make_config(condition={"country": "US"})
    expected = choose_variant(hash_unit("ranker-seed", "user-7"), bucket_ranges(2))
    # When an eligible unit asks
    result = assign(config, "user-7", {"country": "US"})
    # Then it gets the variant its hash picks, in the experiment
    variant = config.variants[expected]
    assert result == Assignment(variant.key, variant.payload, True, "assigned")


def test_assign__same_inputs__same_variant() -> None:
    # Given one experiment and a set of units
    config = make_config()
    units = [f"user-{i}" for i in range(200)]
    # When each unit asks twice, the second time with an equal but new config
    first = [assign(config, u, {}).variant for u in units]
    again = [assign(dataclasses.replace(config), u, {}).variant for u in units]
    # Then every answer repeats, and both variants occur
    assert first == again
    assert set(first) == {"control", "treatment"}


def test_assign__many_units__split_matches_weights_chi_square() -> None:
    # Given a 20/30/50 split
    variants = (
        VariantConfig("a", 0.2, True, {}),
        VariantConfig("b", 0.3, False, {}),
        VariantConfig("c", 0.5, False, {}),
    )
    config = make_config(variants=variants, seed="split-check")
    n = 20_000
    # When many distinct units are assigned
    counts = Counter(assign(config, f"unit-{i}", {}).variant for i in range(n))
    # Then the counts fit the weights: chi-square with 2 degrees of freedom below its 0.999
    # quantile (13.82), so this fails by chance about once in a thousand seeds
    chi_square = sum((counts[v.key] - n * v.weight) ** 2 / (n * v.weight) for v in variants)
    assert chi_square < -2 * math.log(0.001)
