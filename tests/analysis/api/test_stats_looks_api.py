"""POST /api/v1/stats with ``looks`` (docs/api.md §5): the §7 rule across earlier looks."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from analysis.stats.decisions import DecisionSettings, LookResult, MetricInput, decide_look
from analysis.stats.inputs import VariantStats

pytestmark = pytest.mark.django_db


def totals(key: str, values: np.ndarray) -> dict[str, Any]:
    return {
        "key": key,
        "n": int(values.size),
        "sum": float(values.sum()),
        "sum_squares": float((values**2).sum()),
    }


def cumulative_looks(
    seed: int, effects: list[float], sizes: list[int], sd: float = 1.0
) -> list[list[dict[str, Any]]]:
    """Earlier cumulative looks, oldest first, each one entry per variant (control first)."""
    rng = np.random.default_rng(seed)
    arms = [rng.normal(10.0 + e, sd, max(sizes)) for e in (0.0, *effects)]
    keys = ["control", *[f"t{i}" for i in range(1, len(arms))]]
    return [[totals(k, a[:n]) for k, a in zip(keys, arms, strict=True)] for n in sizes]


def direct(
    settings: DecisionSettings, looks: list[list[dict[str, Any]]], direction: str = "increase"
) -> LookResult:
    """The same looks fed through decide_look, as snapshots are."""
    state = result = None
    for look in looks:
        metric = MetricInput(
            key="metric",
            metric_type="mean",
            variants=tuple(VariantStats(**v) for v in look),
            direction=direction,
        )
        result, state = decide_look(settings, [metric], state)
    return result


def excludes_zero(interval: list[float] | None) -> bool:
    return interval is not None and (interval[0] > 0 or interval[1] < 0)


def body_for(looks: list[list[dict[str, Any]]], **options: Any) -> dict[str, Any]:
    return {"metric_type": "mean", "looks": looks[:-1], "variants": looks[-1], **options}


CASES = [
    pytest.param(
        {"method": "sequential", "correction": "holm"},
        DecisionSettings(method="sequential", correction="holm"),
        id="sequential-holm",
    ),
    pytest.param(
        {"method": "sequential", "correction": "bh", "sequential_tuning": 3000, "alpha": 0.1},
        DecisionSettings(method="sequential", correction="bh", sequential_tuning=3000, alpha=0.1),
        id="sequential-bh",
    ),
    pytest.param(
        {"method": "group_sequential", "planned_sample_size": 4000, "planned_looks": 4},
        DecisionSettings(method="group_sequential", planned_sample_size=4000, planned_looks=4),
        id="group-sequential",
    ),
    pytest.param(
        {"method": "fixed", "planned_sample_size": 3000},
        DecisionSettings(method="fixed", planned_sample_size=3000),
        id="fixed-plan",
    ),
    pytest.param(
        {"method": "fixed", "correction": "none"},
        DecisionSettings(method="fixed", correction="none"),
        id="fixed-no-plan",
    ),
]


@pytest.mark.parametrize(("options", "settings"), CASES)
def test_stats_looks__same_looks__same_comparisons_as_decide_look(
    api, options: dict[str, Any], settings: DecisionSettings
) -> None:
    # Given 8 cumulative looks of a control and three treatments (40 to 1000 units per arm)
    sizes = [40, 120, 250, 400, 520, 700, 850, 1000]
    looks = cumulative_looks(5, [0.0, 0.08, 0.2], sizes)
    # When posted with the earlier looks as history
    response = api.post("/api/v1/stats", body_for(looks, **options), format="json")
    # Then the comparisons and the look are those of the decision rule over the same looks
    assert response.status_code == 200, response.json()
    answer = response.json()
    expected = direct(settings, looks)
    assert answer["comparisons"] == [c.to_dict() for c in expected.metrics[0].comparisons]
    assert answer["look"] == expected.look.to_dict()
    assert answer["warnings"] == [w.to_dict() for w in expected.warnings]
    # And the answer is not just the latest look decided alone (for methods with memory)
    alone = direct(settings, looks[-1:])
    if settings.method == "sequential":
        assert answer["comparisons"] != [c.to_dict() for c in alone.metrics[0].comparisons]


def moments(key: str, n: int, mean: float, sd: float) -> dict[str, Any]:
    return {"key": key, "n": n, "sum": n * mean, "sum_squares": (n - 1) * sd * sd + n * mean**2}


def test_stats_looks__fixed_history_past_plan__earlier_decision_repeated(api) -> None:
    # Given a plan reached at the 2nd look (a win), and a latest look with a large loss
    looks = [
        [moments("c", 100, 10.0, 2.0), moments("t", 100, 10.6, 2.0)],
        [moments("c", 550, 10.0, 2.0), moments("t", 550, 10.6, 2.0)],
        [moments("c", 900, 10.0, 2.0), moments("t", 900, 8.0, 2.0)],
    ]
    body = body_for(looks, method="fixed", planned_sample_size=1000)
    # When posted
    answer = api.post("/api/v1/stats", body, format="json").json()
    # Then the decision is the one taken at the plan (2nd look), a win, not the late loss
    at_plan = direct(DecisionSettings(method="fixed", planned_sample_size=1000), looks[:2])
    assert answer["comparisons"] == [c.to_dict() for c in at_plan.metrics[0].comparisons]
    assert answer["comparisons"][0]["decision"] == "win"
    assert answer["look"]["number"] == 1 and answer["look"]["final"] is True


@pytest.mark.parametrize(("options", "settings"), CASES)
@pytest.mark.parametrize("direction", ["increase", "decrease"])
def test_stats_looks__answer__obeys_decision_rule_equivalences(
    api, options: dict[str, Any], settings: DecisionSettings, direction: str
) -> None:
    # Given looks with a null, a small and a large effect
    looks = cumulative_looks(7, [0.0, 0.1, -0.25], [150, 300, 600, 900, 1200, 1500])
    # When posted
    answer = api.post(
        "/api/v1/stats", body_for(looks, direction=direction, **options), format="json"
    ).json()
    alpha = options.get("alpha", 0.05)
    decided = 0
    for c in answer["comparisons"]:
        if c["decision"] == "not_ready":
            assert c["significant"] is False
            continue
        decided += 1
        deciding = c["adjusted_ci"]
        # Then significant ⟺ the deciding interval excludes 0 ⟺ the deciding p ≤ α
        assert c["significant"] == excludes_zero(deciding)
        assert c["significant"] == (c["adjusted_p_value"] <= alpha)
        # And the relative interval agrees with it when bounded
        if c["relative_ci"] is not None:
            assert excludes_zero(c["relative_ci"]) == excludes_zero(deciding)
        # And the verdict is the interval's side read with the direction
        if not c["significant"]:
            assert c["decision"] == "inconclusive"
        else:
            up = deciding[0] > 0
            assert c["decision"] == ("win" if up == (direction == "increase") else "loss")
    assert decided == 3
    assert any(c["significant"] for c in answer["comparisons"])


@pytest.mark.parametrize("method", ["sequential", "fixed", "group_sequential"])
def test_stats_looks__any_method__look_and_warnings_top_level(api, method: str) -> None:
    looks = cumulative_looks(8, [0.1], [300, 600])
    body = body_for(looks, method=method, planned_sample_size=1000)
    response = api.post("/api/v1/stats", body, format="json")
    assert response.status_code == 200, response.json()
    answer = response.json()
    assert set(answer["look"]) == {"number", "information_fraction", "z_boundary", "final"}
    assert isinstance(answer["warnings"], list)
    assert {"comparisons", "srm"} <= set(answer)


def test_stats_looks__group_sequential_history__look_number_and_boundary(api) -> None:
    # Given looks at t = 0.1, 0.45 and 0.7 of a 2000-unit plan with 5 looks
    looks = cumulative_looks(9, [0.02], [100, 450, 700])
    body = body_for(looks, method="group_sequential", planned_sample_size=2000)
    answer = api.post("/api/v1/stats", body, format="json").json()
    # Then two looks were taken (0.45 crossed 0.2 and 0.4 at once; 0.7 crossed 0.6)
    from analysis.stats.group_sequential import obrien_fleming_boundaries

    boundary = obrien_fleming_boundaries(2, 0.05, [0.45, 0.7]).z_boundaries[-1]
    assert answer["look"]["number"] == 2
    assert answer["look"]["information_fraction"] == pytest.approx(0.7)
    assert answer["look"]["z_boundary"] == pytest.approx(boundary, rel=1e-9)
    assert answer["comparisons"][0]["z_boundary"] == pytest.approx(boundary, rel=1e-9)


def test_stats_looks__group_sequential_without_plan__400_names_planned_sample_size(api) -> None:
    looks = cumulative_looks(10, [0.1], [300, 600])
    response = api.post("/api/v1/stats", body_for(looks, method="group_sequential"), format="json")
    assert response.status_code == 400, response.json()
    assert "planned_sample_size" in response.json()["error"]["fields"]


GOOD = [
    {"key": "c", "n": 200, "sum": 2000.0, "sum_squares": 20400.0},
    {"key": "t", "n": 200, "sum": 2050.0, "sum_squares": 21400.0},
]


def _named(fields: dict[str, Any], prefix: str) -> bool:
    return any(name.startswith(prefix) for name in fields)


@pytest.mark.parametrize(
    ("looks", "prefix"),
    [
        pytest.param([GOOD[:1]], "looks[0]", id="too-few-variants"),
        pytest.param([GOOD, [*GOOD, GOOD[0]]], "looks[1]", id="too-many-variants"),
        pytest.param([[GOOD[0], 7]], "looks[0]", id="entry-not-object"),
        pytest.param([GOOD, "abc"], "looks[1]", id="look-not-list"),
        pytest.param([[{**GOOD[0], "n": "many"}, GOOD[1]]], "looks[0]", id="n-not-number"),
        pytest.param([[GOOD[0], {**GOOD[1], "sum": "x"}]], "looks[0]", id="sum-not-number"),
        pytest.param([GOOD, [{**GOOD[0], "n": -3}, GOOD[1]]], "looks[1]", id="negative-n"),
        pytest.param(
            [[GOOD[0], {**GOOD[1], "sum_squares": 1.0}]], "looks[0]", id="sum-squares-too-small"
        ),
        pytest.param(
            [[{**GOOD[0], "key": "a"}, {**GOOD[1], "key": "b"}]], "looks[0]", id="other-keys"
        ),
    ],
)
def test_stats_looks__malformed_look__400_names_looks_index(
    api, looks: list[Any], prefix: str
) -> None:
    # Given a well-formed latest look and a malformed earlier one
    body = {"metric_type": "mean", "method": "sequential", "variants": GOOD, "looks": looks}
    # When posted
    response = api.post("/api/v1/stats", body, format="json")
    # Then 400 naming the look (not the latest variants)
    assert response.status_code == 400, response.json()
    fields = response.json()["error"]["fields"]
    assert _named(fields, prefix), fields
    assert not _named(fields, "variants"), fields


@pytest.mark.parametrize("looks", [{"0": GOOD}, 5, "abc", {}, ""], ids=repr)
def test_stats_looks__looks_not_a_list__400_names_looks(api, looks: Any) -> None:
    body = {"metric_type": "mean", "method": "sequential", "variants": GOOD, "looks": looks}
    response = api.post("/api/v1/stats", body, format="json")
    assert response.status_code == 400, response.json()
    assert "looks" in response.json()["error"]["fields"]
