"""validate_condition(): the clear refusals the admin and the API show for bad conditions."""

from typing import Any

import pytest

from assignment.engine import evaluate_condition, validate_condition


@pytest.mark.parametrize(
    "condition",
    [
        {},
        {"country": "US"},
        {"country": {"$in": ["US", "CA"]}, "age": {"$gte": 18, "$lt": 65}},
        {"$or": [{"plan": "pro"}, {"tags": {"$elemMatch": {"$eq": "beta"}}}]},
        {"$not": {"email": {"$regex": "@example\\.com$"}}},
        {"app.version": {"$vgte": "2.1.0"}, "tags": {"$size": {"$gt": 0}}},
        {"address": {"city": "Paris"}},
        {"$groups": {"$elemMatch": {"$eq": "a"}}},
        {"hobbies": {"$elemMatch": {"name": {"$regexi": "^ping"}}}},
        {"beta": {"$exists": True, "$type": "boolean"}},
    ],
)
def test_validate_condition__valid__no_problems(condition: dict[str, Any]) -> None:
    # Given a well-formed condition
    # When / Then: nothing is reported
    assert validate_condition(condition) == []


@pytest.mark.parametrize(
    ("condition", "fragment"),
    [
        (None, "must be a JSON object"),
        (["country", "US"], "must be a JSON object, got array"),
        ({"name": {"$regx": "hello"}}, "unknown operator $regx"),
        ({"country": {"$in": "US"}}, "$in needs a list, got string"),
        ({"country": {"$nin": 1}}, "$nin needs a list"),
        ({"name": {"$regex": "/???***[)"}}, "invalid regular expression"),
        ({"name": {"$regex": 5}}, "needs a string pattern"),
        ({"$or": {"a": 1}}, "$or needs a list of conditions"),
        ({"$and": [{"a": {"$bogus": 1}}]}, "unknown operator $bogus"),
        ({"$and": ["a"]}, "condition.$and[0] must be a JSON object"),
        ({"age": {"$gt": [1]}}, "$gt needs a number or a string"),
        ({"v": {"$vgt": 2}}, "needs a version string"),
        ({"a": {"$exists": "yes"}}, "$exists needs true or false"),
        ({"a": {"$type": "integer"}}, "$type needs one of"),
        ({"a": {"$size": "3"}}, "$size needs a whole number"),
        ({"a": {"$elemMatch": 3}}, "$elemMatch needs a non-empty object"),
        ({"a": {"$eq": [1, 2]}}, "$eq compares single values"),
        ({"a": {"$gt": 1, "b": 2}}, "mixes operators"),
        ({"id": {"$inGroup": "beta"}}, "saved groups are not supported"),
        ({"$in": ["US"]}, "must be applied to an attribute"),
        ({"a": {"$or": [{"b": 1}]}}, "logical operators go at the top level"),
        ({"a": {"$not": {"$regex": "("}}}, "invalid regular expression"),
    ],
)
def test_validate_condition__invalid__reports_problem(condition: Any, fragment: str) -> None:
    # Given a malformed condition
    # When it is validated
    problems = validate_condition(condition)
    # Then a problem names what is wrong
    assert any(fragment in p for p in problems), problems


def test_validate_condition__several_problems__reports_each() -> None:
    # Given a condition with two independent mistakes
    condition = {"country": {"$in": "US"}, "age": {"$between": [1, 2]}}
    # When / Then: both are reported, each naming its attribute
    problems = validate_condition(condition)
    assert len(problems) == 2
    assert problems[0].startswith("country:")
    assert problems[1].startswith("age:")


@pytest.mark.parametrize("condition", [None, {}])
def test_evaluate_condition__empty__true(condition: dict[str, Any] | None) -> None:
    # Given no condition / When any attributes are checked / Then the unit is targeted
    assert evaluate_condition(condition, {"country": "FR"}) is True


def test_evaluate_condition__not_an_object__false() -> None:
    # Given a malformed (non-object) condition / When evaluated / Then it fails closed
    assert evaluate_condition(["country"], {"country": "US"}) is False  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("condition", "attributes", "expected"),
    [
        ({"tags.0": "a"}, {"tags": ["a", "b"]}, True),
        ({"tags.01": "a"}, {"tags": ["a", "b"]}, False),
        ({"n": "1"}, {"n": 1.0}, True),
        ({"n": {"$eq": 1}}, {"n": True}, False),
        ({"n": {"$in": [1]}}, {"n": True}, False),
        ({"n": {"$lt": "😀"}}, {"n": "\uffff"}, False),
        ({"obj": {"b": 1, "a": 2}}, {"obj": {"a": 2, "b": 1}}, False),
        ({"obj": {"1": 1, "a": 2}}, {"obj": {"a": 2, "1": 1}}, True),
        ({"nums": {"$elemMatch": {"$eq": 0}}}, {"nums": [0]}, False),
    ],
)
def test_evaluate_condition__javascript_semantics__match_reference(
    condition: dict[str, Any], attributes: dict[str, Any], expected: bool
) -> None:
    # Given edge cases where Python and JavaScript values behave differently (array indexes in
    # paths, 1 vs "1" vs true, UTF-16 string order, JSON key order, $elemMatch skipping falsy)
    # When / Then: the result is the one GrowthBook's JavaScript reference gives
    assert evaluate_condition(condition, attributes) is expected
