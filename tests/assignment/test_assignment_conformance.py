"""GrowthBook's published cross-SDK vectors (tests/fixtures/growthbook) against the engine."""

import json
from pathlib import Path
from typing import Any

import pytest

from assignment.engine import (
    ExperimentConfig,
    ExperimentSet,
    VariantConfig,
    assign,
    bucket_ranges,
    choose_variant,
    compile_condition,
    evaluate_condition,
    hash_unit,
    in_namespace,
)

# Part of the repository (source, version and licence in its README): a missing file is an
# error of the checkout, so the run fails instead of losing the compatibility check silently.
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
CASES_PATH = FIXTURES / "growthbook" / "growthbook-cases.json"


def _load_cases() -> dict[str, Any]:
    if not CASES_PATH.is_file():
        raise FileNotFoundError(
            f"GrowthBook conformance vectors missing at {CASES_PATH}: restore "
            "tests/fixtures/growthbook/ from the repository (see its README)."
        )
    return json.loads(CASES_PATH.read_text(encoding="utf-8"))


def _cases(section: str) -> list[Any]:
    cases = _load_cases()[section]
    return [pytest.param(case, id=_case_id(section, i, case)) for i, case in enumerate(cases)]


def _case_id(section: str, index: int, case: list[Any]) -> str:
    label = f"{case[0]!r}/{case[1]!r}/v{case[2]}" if section == "hash" else str(case[0])
    return f"{index}-{label}"


def _uses_saved_groups(case: list[Any]) -> bool:
    return (
        len(case) > 4 or "$inGroup" in json.dumps(case[1]) or "$notInGroup" in json.dumps(case[1])
    )


@pytest.mark.parametrize("case", _cases("hash"))
def test_hash_unit__growthbook_vector__matches(case: list[Any]) -> None:
    # Given a seed, a unit id, a hash version and GrowthBook's expected point
    seed, unit_id, version, expected = case
    # When the unit is hashed
    point = hash_unit(seed, unit_id, version)
    # Then it is the same point (None for an unknown version)
    assert point == expected


@pytest.mark.parametrize("case", _cases("getBucketRange"))
def test_bucket_ranges__growthbook_vector__match_within_tolerance(case: list[Any]) -> None:
    # Given a variant count, a coverage and weights (possibly invalid)
    _name, (n_variants, coverage, weights), expected = case
    # When the ranges are built
    ranges = bucket_ranges(n_variants, coverage, weights)
    # Then each range matches GrowthBook's to float tolerance
    assert len(ranges) == len(expected)
    for (low, high), (want_low, want_high) in zip(ranges, expected, strict=True):
        assert low == pytest.approx(want_low, abs=1e-9)
        assert high == pytest.approx(want_high, abs=1e-9)


@pytest.mark.parametrize("case", _cases("chooseVariation"))
def test_choose_variant__growthbook_vector__picks_same_index(case: list[Any]) -> None:
    # Given a point and a list of ranges
    _name, point, ranges, expected = case
    # When / Then: the chosen index is GrowthBook's (-1 outside every range)
    assert choose_variant(point, [tuple(r) for r in ranges]) == expected


@pytest.mark.parametrize("case", _cases("inNamespace"))
def test_in_namespace__growthbook_vector__same_membership(case: list[Any]) -> None:
    # Given a unit id and a namespace (layer id, start, end)
    _name, unit_id, (layer_id, start, end), expected = case
    # When / Then: membership is GrowthBook's
    assert in_namespace(unit_id, (layer_id, start, end)) is expected


@pytest.mark.parametrize("case", _cases("evalCondition"))
def test_evaluate_condition__growthbook_vector__same_result(case: list[Any]) -> None:
    # Given a condition and attributes (saved groups are outside docs/api.md §2)
    if _uses_saved_groups(case):
        pytest.skip("saved groups ($inGroup/$notInGroup) are out of scope (docs/api.md §2)")
    _name, condition, attributes, expected = case[:4]
    # When / Then: the condition holds exactly when GrowthBook says it does
    assert evaluate_condition(condition, attributes) is expected
    # And its precompiled form (what assignment runs) agrees
    compiled = compile_condition(condition)
    assert (compiled is None or compiled(attributes)) is expected


# GrowthBook experiment fields that Variantlab experiments have (docs/api.md §1-§2); cases using
# others (force, filters, explicit ranges, hashAttribute, QA mode, URLs) are outside the model.
_RUN_FIELDS = {"key", "variations", "weights", "coverage", "condition", "namespace", "seed"}
_RUN_FIELDS |= {"hashVersion", "active"}


def _run_case_skip_reason(case: list[Any]) -> str | None:
    _name, context, experiment = case[:3]
    if not set(experiment) <= _RUN_FIELDS or not set(context) <= {"attributes"}:
        return "uses GrowthBook features outside Variantlab's experiment model"
    unit_id = context.get("attributes", {}).get("id")
    if not isinstance(unit_id, str) or not unit_id:
        return "no unit id: /assign refuses one (400) and the client answers fallback"
    if len(experiment["variations"]) < 2:
        return "Variantlab experiments have at least two variants"
    return None


@pytest.mark.parametrize("case", _cases("run"))
def test_assign__growthbook_run_vector__same_variation_and_in_experiment(case: list[Any]) -> None:
    # Given a GrowthBook experiment that Variantlab can express, as an ExperimentConfig
    reason = _run_case_skip_reason(case)
    if reason:
        pytest.skip(reason)
    _name, context, experiment, expected_value, expected_in, _hash_used = case[:6]
    variations = experiment["variations"]
    config = ExperimentConfig(
        key=experiment["key"],
        status="running" if experiment.get("active", True) else "paused",
        seed=experiment.get("seed", experiment["key"]),
        hash_version=experiment.get("hashVersion", 1),  # GrowthBook's default for experiments
        coverage=experiment.get("coverage", 1.0),
        variants=tuple(
            VariantConfig(f"v{i}", w, i == 0, {"value": value})
            for i, (value, w) in enumerate(
                zip(variations, experiment.get("weights") or [0.0] * len(variations), strict=True)
            )
        ),
        condition=experiment.get("condition") or {},
        layer=tuple(experiment["namespace"]) if experiment.get("namespace") else None,
        forced={},
    )
    attributes = context["attributes"]
    # When the unit is assigned, alone and through an ExperimentSet
    got = assign(config, attributes["id"], attributes)
    together = ExperimentSet([config]).assign(attributes["id"], attributes)[config.key]
    # Then it gets GrowthBook's variation (control when not in the experiment), and is in the
    # experiment exactly when GrowthBook says so
    assert got.payload == {"value": expected_value}
    assert got.in_experiment is expected_in
    assert together == got
