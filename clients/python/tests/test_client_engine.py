"""The engine's v2 statuses (rolled back, shipped) and its shortcuts against the plain rules."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from variantlab_client.conditions import compile_condition, evaluate_condition
from variantlab_client.config import LoadedConfig
from variantlab_client.engine import (
    Assignment,
    ExperimentConfig,
    ExperimentSet,
    VariantConfig,
    _point_table,
    assign,
    bucket_ranges,
    choose_variant,
    hash_unit,
)
from variantlab_client.growthbook import features_payload

CONTROL = VariantConfig("control", 0.34, True, {"model": "v1"})
GREEN = VariantConfig("green", 0.33, False, {"model": "v2"})
RED = VariantConfig("red", 0.33, False, {"model": "v3"})


def config(**changes: Any) -> ExperimentConfig:
    fields: dict[str, Any] = {
        "key": "ranker",
        "status": "running",
        "seed": "ranker",
        "hash_version": 2,
        "coverage": 1.0,
        "variants": (CONTROL, GREEN, RED),
        "condition": {},
        "layer": None,
        "forced": {},
    }
    return ExperimentConfig(**{**fields, **changes})


def test_assign__rolled_back_variant__its_units_get_control_and_no_other_unit_moves() -> None:
    # Given the same experiment before and after its green arm was rolled back
    before = config()
    after = config(
        variants=(CONTROL, VariantConfig("green", 0.33, False, {"model": "v2"}, True), RED)
    )
    units = [f"user-{i}" for i in range(3000)]
    # When every unit is assigned in both
    pairs = [(assign(before, u, {}), assign(after, u, {})) for u in units]
    # Then green's units are served control, outside the experiment, with reason rolled_back
    moved = [(b, a) for b, a in pairs if b.variant == "green"]
    assert moved, "some units must land in green for this test to mean anything"
    rolled_back = Assignment("control", {"model": "v1"}, False, "rolled_back")
    assert all(a == rolled_back for _, a in moved)
    # And every other unit keeps its variant and reason
    assert all(b == a for b, a in pairs if b.variant != "green")


def test_assign__stopped_with_shipped_variant__shipped_for_everyone_not_in_experiment() -> None:
    # Given a stopped experiment that shipped red, even with a forced QA unit and a condition
    shipped = config(status="stopped", shipped_variant="red", forced={"qa": "green"})
    # When / Then: every unit gets red with reason shipped, never in the experiment
    expected = Assignment("red", {"model": "v3"}, False, "shipped")
    assert [assign(shipped, u, {}) for u in ["qa", "user-1", "user-2"]] == [expected] * 3


def test_assign__stopped_without_shipped_variant__control_not_running() -> None:
    stopped = config(status="stopped", shipped_variant="nope")
    assert assign(stopped, "user-1", {}) == Assignment(
        "control", {"model": "v1"}, False, "not_running"
    )


def test_assign__archived__control_not_running_never_shipped() -> None:
    # An archived experiment is never in a served config; built by hand, it serves nothing
    # it had shipped (docs/api.md §13: archiving ends the shipped variant)
    archived = config(status="archived", shipped_variant="red")
    assert assign(archived, "user-1", {}) == Assignment(
        "control", {"model": "v1"}, False, "not_running"
    )


def _row(key: str, status: str, shipped: str | None = None) -> dict[str, Any]:
    return {
        "key": key,
        "status": status,
        "shipped_variant": shipped,
        "seed": key,
        "hash_version": 2,
        "coverage": 1.0,
        "variants": [
            {"key": "control", "weight": 0.5, "is_control": True, "payload": {"m": 1}},
            {"key": "b", "weight": 0.5, "is_control": False, "payload": {"m": 2}},
        ],
        "condition": {},
        "layer": None,
        "forced_assignments": {},
    }


def test_loaded_config__archived_row__not_served_shipped_row_served() -> None:
    # Given a /config (e.g. a saved file from before the archive) with an archived row
    document = {"experiments": [_row("old", "archived", "b"), _row("won", "stopped", "b")]}
    loaded = LoadedConfig.parse(document, None)
    # When a unit is assigned by default and by name
    # Then only the shipped one is served; the archived one is not known at all
    assert loaded.served.assign("u-1", {}) == {"won": Assignment("b", {"m": 2}, False, "shipped")}
    assert loaded.experiment_set(("old", "won")).assign("u-1", {}).keys() == {"won"}
    # And GrowthBook's payload has no feature for it, and a force rule for the shipped one
    assert features_payload(document["experiments"])["features"] == {
        "won": {"defaultValue": {"m": 1}, "rules": [{"force": {"m": 2}}]}
    }


# No per-example deadline: on a shared machine it would be a timed assertion in disguise.
untimed = settings(deadline=None)

unit_ids = st.one_of(st.text(max_size=40), st.uuids().map(str))
conditions = st.sampled_from(
    [
        {},
        {"country": "US"},
        {"country": {"$in": ["US", "GB", 3]}},
        {"country": {"$nin": ["US"]}},
        {"plan": {"$ne": "free"}},
        {"plan": {"$eq": "pro"}, "country": {"$in": ["US"]}},
        {"app": {"$vgte": "5.2.0"}},
        {"$or": [{"country": "US"}, {"plan": "pro"}]},
    ]
)
attribute_values = st.one_of(
    st.sampled_from(["US", "GB", "FR", "free", "pro", "5.10.0", "5.2.0-beta", "3"]),
    st.text(max_size=6),
    st.integers(-3, 10),
    st.none(),
    st.booleans(),
    st.lists(st.sampled_from(["US", "pro", 3]), max_size=3),
)
attributes = st.dictionaries(st.sampled_from(["country", "plan", "app"]), attribute_values)


@untimed
@given(condition=conditions, attrs=attributes)
def test_compile_condition__random_attributes__same_as_evaluate_condition(
    condition: dict[str, Any], attrs: dict[str, Any]
) -> None:
    compiled = compile_condition(condition)
    assert (compiled is None or compiled(attrs)) is evaluate_condition(condition, attrs)


ROLLED_GREEN = VariantConfig("green", 0.33, False, {"model": "v2"}, True)
experiment_shapes = st.builds(
    lambda i, status, version, coverage, condition, layer, forced, variants: config(
        key=f"exp-{i}",
        seed=f"seed-{i}",
        status=status,
        hash_version=version,
        coverage=coverage,
        condition=condition,
        layer=layer,
        forced=forced,
        variants=variants,
    ),
    i=st.integers(0, 10_000),
    status=st.sampled_from(["running", "running", "running", "paused", "stopped"]),
    version=st.sampled_from([2, 2, 2, 1, 3]),
    coverage=st.floats(0, 1),
    condition=conditions,
    layer=st.sampled_from([None, ("layer-a", 0.0, 0.5), ("layer-a", 0.5, 1.0), ("b", 0.2, 0.9)]),
    forced=st.sampled_from([{}, {"qa": "red"}]),
    variants=st.sampled_from([(CONTROL, GREEN, RED), (CONTROL, ROLLED_GREEN, RED)]),
)


@untimed
@given(
    experiments=st.lists(experiment_shapes, min_size=0, max_size=12, unique_by=lambda c: c.key),
    unit_id=st.one_of(unit_ids, st.just("qa")),
    attrs=attributes,
)
def test_experiment_set__random_experiments__same_as_assign_one_by_one(
    experiments: list[ExperimentConfig], unit_id: str, attrs: dict[str, Any]
) -> None:
    # Given experiments of every shape, and any unit id (astral characters included)
    # When they are assigned together (the shared hashing lanes) and one by one
    together = ExperimentSet(experiments).assign(unit_id, attrs)
    # Then the answers are identical
    assert together == {c.key: assign(c, unit_id, attrs) for c in experiments}


@untimed
@given(seed=st.text(max_size=20), unit_id=unit_ids)
def test_experiment_set__point__equals_hash_unit(seed: str, unit_id: str) -> None:
    # Given a 100-bucket experiment: its variant index reveals the v2 point to 1%
    variants = tuple(VariantConfig(f"v{i}", 0.01, i == 0, {"i": i}) for i in range(100))
    experiment = config(seed=seed, variants=variants)
    answer = ExperimentSet([experiment]).assign(unit_id, {})[experiment.key]
    point = hash_unit(seed, unit_id, 2)
    assert point is not None
    assert answer.variant == f"v{choose_variant(point, bucket_ranges(100))}"


@untimed
@given(
    weights=st.lists(
        st.one_of(st.floats(-0.5, 1.5), st.sampled_from([0.0, 1 / 3, 0.1, 0.7])),
        min_size=1,
        max_size=6,
    ),
    coverage=st.one_of(st.floats(-0.5, 1.5), st.sampled_from([0.0, 1.0, 0.3333, 0.5])),
)
def test_point_table__any_weights_and_coverage__every_point_as_choose_variant(
    weights: list[float], coverage: float
) -> None:
    # Given any ranges the engine can build (weights that do not sum to 1 included)
    ranges = tuple(bucket_ranges(len(weights), coverage, weights))
    table = _point_table(ranges)
    assert table is not None
    # When / Then: each of the 10,000 v2 points finds the range choose_variant finds
    expected = [choose_variant(i / 10000, list(ranges)) for i in range(10000)]
    assert [(-1 if t == len(ranges) else t) for t in table] == expected
