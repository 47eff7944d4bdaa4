"""Property tests: the growthbook Python SDK is the oracle for hashing, bucketing and targeting."""

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from assignment.engine import (
    bucket_ranges,
    choose_variant,
    evaluate_condition,
    hash_unit,
    in_namespace,
)

gb_core = pytest.importorskip(
    "growthbook.core", reason="growthbook SDK (the oracle) not installed"
)

# st.text() covers every Unicode plane, so astral characters (surrogate pairs in UTF-16) and
# other non-ASCII ids are drawn alongside plain ASCII ones.
unit_ids = st.one_of(st.text(max_size=60), st.uuids().map(str))
weights_lists = st.lists(st.floats(0, 1, allow_nan=False), min_size=1, max_size=8)


def _normalised(weights: list[float]) -> list[float]:
    total = sum(weights)
    return [w / total for w in weights] if total > 0 else weights


@given(seed=st.text(max_size=40), unit_id=unit_ids, version=st.sampled_from([1, 2, 3]))
def test_hash_unit__random_seed_and_id__equals_growthbook(
    seed: str, unit_id: str, version: int
) -> None:
    # Given any seed and unit id, ASCII or not, and a hash version (3 is unknown)
    # When / Then: the point is exactly the SDK's
    assert hash_unit(seed, unit_id, version) == gb_core.gbhash(seed, unit_id, version)


@given(
    n_variants=st.integers(0, 8),
    coverage=st.floats(-0.5, 1.5, allow_nan=False),
    weights=st.one_of(st.none(), weights_lists, weights_lists.map(_normalised)),
)
def test_bucket_ranges__random_inputs__equal_growthbook(
    n_variants: int, coverage: float, weights: list[float] | None
) -> None:
    # Given a variant count, any coverage and weights that may be missing or invalid
    # When both build the ranges
    ours = bucket_ranges(n_variants, coverage, weights)
    theirs = gb_core.getBucketRanges(n_variants, coverage, weights)
    # Then they agree, range by range
    assert len(ours) == len(theirs)
    for (low, high), (their_low, their_high) in zip(ours, theirs, strict=True):
        assert low == pytest.approx(their_low, abs=1e-12)
        assert high == pytest.approx(their_high, abs=1e-12)


@given(
    point=st.one_of(
        st.floats(0, 1, exclude_max=True), st.integers(0, 9999).map(lambda i: i / 1e4)
    ),
    n_variants=st.integers(1, 6),
    coverage=st.floats(0, 1),
    weights=weights_lists.map(_normalised),
)
def test_choose_variant__random_point__equals_growthbook(
    point: float, n_variants: int, coverage: float, weights: list[float]
) -> None:
    # Given a point and ranges built from random weights and coverage
    ranges = bucket_ranges(n_variants, coverage, weights)
    # When / Then: both pick the same variant (or -1)
    assert choose_variant(point, ranges) == gb_core.chooseVariation(point, ranges)


@given(
    unit_id=unit_ids,
    layer_id=st.text(max_size=20),
    bounds=st.tuples(st.floats(0, 1), st.floats(0, 1)).map(sorted),
)
def test_in_namespace__random_layer__equals_growthbook(
    unit_id: str, layer_id: str, bounds: list[float]
) -> None:
    # Given a unit and a layer slice [start, end)
    start, end = bounds
    # When / Then: membership is the SDK's
    assert in_namespace(unit_id, (layer_id, start, end)) == gb_core.inNamespace(
        unit_id, (layer_id, start, end)
    )


# --- Conditions: a generated grammar of well-typed conditions ----------------------------------
# The SDK (4.x) is stricter than GrowthBook's JavaScript reference on mixed types: it fails three
# published vectors ("comparing numbers and strings", "missing attribute with comparison
# operators") and does not skip falsy array elements in $elemMatch. The engine follows the
# vectors and the reference, so this oracle draws attributes and operands of one JSON type each,
# where both readings agree.

words = st.sampled_from(["US", "us", "CA", "a", "b", "é", "😀", "Mobile"])
versions = st.sampled_from(["1.0.0", "1.2.3", "v1.2.3", "1.2.3-beta", "1.10.0", "2.0.0-rc.1"])
ages = st.integers(1, 80)
TYPE_NAMES = ["string", "number", "boolean", "array", "object", "null"]


def _ops(values: st.SearchStrategy[Any], ordered: bool) -> st.SearchStrategy[dict[str, Any]]:
    value_lists = st.lists(values, max_size=4)
    options = [
        values,
        values.map(lambda v: {"$eq": v}),
        values.map(lambda v: {"$ne": v}),
        st.tuples(st.sampled_from(["$in", "$nin"]), value_lists).map(lambda t: {t[0]: t[1]}),
        st.booleans().map(lambda v: {"$exists": v}),
        st.sampled_from(TYPE_NAMES).map(lambda v: {"$type": v}),
    ]
    if ordered:
        comparisons = st.sampled_from(["$lt", "$lte", "$gt", "$gte"])
        options.append(st.tuples(comparisons, values).map(lambda t: {t[0]: t[1]}))
    leaf = st.one_of(options)
    return st.one_of(leaf, leaf.map(lambda c: {"$not": c}))


string_ops = st.one_of(
    _ops(words, ordered=True),
    st.tuples(st.sampled_from(["$ini", "$nini"]), st.lists(words, max_size=3)).map(
        lambda t: {t[0]: t[1]}
    ),
    st.tuples(
        st.sampled_from(["$regex", "$regexi"]), st.sampled_from(["^U", "s$", "[ab]", "("])
    ).map(lambda t: {t[0]: t[1]}),
)
tag_ops = st.one_of(
    st.lists(words, max_size=3),
    st.tuples(st.sampled_from(["$in", "$nin", "$all", "$alli"]), st.lists(words, max_size=3)).map(
        lambda t: {t[0]: t[1]}
    ),
    st.integers(0, 3).map(lambda n: {"$size": n}),
    st.integers(0, 3).map(lambda n: {"$size": {"$gt": n}}),
    words.map(lambda w: {"$elemMatch": {"$eq": w}}),
    st.sampled_from(["array", "string"]).map(lambda t: {"$type": t}),
)
version_ops = st.tuples(
    st.sampled_from(["$veq", "$vne", "$vgt", "$vgte", "$vlt", "$vlte"]), versions
).map(lambda t: {t[0]: t[1]})
missing_ops = st.one_of(
    st.booleans().map(lambda v: {"$exists": v}),
    st.sampled_from(TYPE_NAMES).map(lambda v: {"$type": v}),
    st.none(),
)

leaf_conditions = st.one_of(
    string_ops.map(lambda c: {"country": c}),
    _ops(ages, ordered=True).map(lambda c: {"age": c}),
    tag_ops.map(lambda c: {"tags": c}),
    version_ops.map(lambda c: {"app.version": c}),
    _ops(st.booleans(), ordered=False).map(lambda c: {"beta": c}),
    missing_ops.map(lambda c: {"plan.tier": c}),
)
conditions = st.recursive(
    leaf_conditions,
    lambda children: st.one_of(
        st.tuples(st.sampled_from(["$and", "$or", "$nor"]), st.lists(children, max_size=3)).map(
            lambda t: {t[0]: t[1]}
        ),
        children.map(lambda c: {"$not": c}),
        st.lists(children, min_size=2, max_size=3).map(
            lambda cs: {k: v for c in cs for k, v in c.items()}
        ),
    ),
    max_leaves=6,
)
attribute_sets = st.fixed_dictionaries(
    {
        "country": words,
        "age": ages,
        "tags": st.lists(words, max_size=4),
        "app": versions.map(lambda v: {"version": v}),
        "beta": st.booleans(),
    }
)


@settings(max_examples=400)
@given(condition=conditions, attributes=attribute_sets)
def test_evaluate_condition__generated_condition__equals_growthbook(
    condition: dict[str, Any], attributes: dict[str, Any]
) -> None:
    # Given a generated condition and attribute set of consistent JSON types
    # When / Then: targeting agrees with the SDK's evalCondition
    assert evaluate_condition(condition, attributes) == gb_core.evalCondition(
        attributes, condition
    )
