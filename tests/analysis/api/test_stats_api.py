"""POST /api/v1/stats and GET /api/v1/stats/boundaries (docs/api.md §5, §6)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as scipy_stats

pytestmark = pytest.mark.django_db


def totals(key: str, values: np.ndarray) -> dict:
    return {
        "key": key,
        "n": int(values.size),
        "sum": float(values.sum()),
        "sum_squares": float((values**2).sum()),
    }


@pytest.fixture
def reader(make_api_client):
    return make_api_client("read")


def test_stats__fixed_mean__equals_scipy_welch_on_raw_data(reader) -> None:
    # Given raw values an analyst reduced to sums
    rng = np.random.default_rng(11)
    control, treatment = rng.normal(10, 3, 800), rng.normal(10.6, 4, 900)
    body = {
        "metric_type": "mean",
        "method": "fixed",
        "alpha": 0.05,
        "variants": [totals("control", control), totals("treatment", treatment)],
    }
    # When analysed
    response = reader.post("/api/v1/stats", body, format="json")
    # Then the comparison equals scipy's Welch test and CI on the raw data
    assert response.status_code == 200, response.json()
    comparison = response.json()["comparisons"][0]
    welch = scipy_stats.ttest_ind(treatment, control, equal_var=False)
    ci = welch.confidence_interval(0.95)
    assert comparison["variant"] == "treatment" and comparison["baseline"] == "control"
    assert comparison["absolute_effect"] == pytest.approx(
        treatment.mean() - control.mean(), rel=1e-9
    )
    assert comparison["p_value"] == pytest.approx(welch.pvalue, rel=1e-9)
    assert comparison["absolute_ci"] == pytest.approx([ci.low, ci.high], rel=1e-9)
    assert set(response.json()["srm"]) >= {"p_value", "observed", "expected_weights", "flagged"}


def test_stats__sequential_default__contract_formula(reader) -> None:
    # Given proportions (sum = conversions) and the contract's tuning
    body = {
        "metric_type": "proportion",
        "method": "sequential",
        "alpha": 0.05,
        "sequential_tuning": 5000,
        "variants": [{"key": "c", "n": 4000, "sum": 400}, {"key": "t", "n": 4000, "sum": 480}],
    }
    got = reader.post("/api/v1/stats", body, format="json").json()["comparisons"][0]
    # Then p and the half-width follow docs/api.md §6 computed here independently
    alpha, n_star = 0.05, 5000
    p_c, p_t = 0.1, 0.12
    delta = p_t - p_c
    variance = p_t * (1 - p_t) / 4000 + p_c * (1 - p_c) / 4000
    rho2 = (-2 * np.log(alpha) + np.log(1 - 2 * np.log(alpha))) / n_star
    total = 8000
    half = np.sqrt(variance * total) * np.sqrt(
        2 * (total * rho2 + 1) / (total**2 * rho2) * np.log(np.sqrt(total * rho2 + 1) / alpha)
    )
    p = min(
        1.0,
        np.sqrt(total * rho2 + 1)
        * np.exp(-rho2 * total * delta**2 / (variance * 2 * (total * rho2 + 1))),
    )
    assert got["absolute_ci"] == pytest.approx([delta - half, delta + half], rel=1e-6)
    assert got["p_value"] == pytest.approx(p, rel=1e-6)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (
            {
                "variants": [
                    {"key": "c", "n": -1, "sum": 1, "sum_squares": 1},
                    {"key": "t", "n": 5, "sum": 1, "sum_squares": 1},
                ]
            },
            "variants[0].n",
        ),
        (
            {
                "variants": [
                    {"key": "c", "n": 10, "sum": 10, "sum_squares": 1},
                    {"key": "t", "n": 5, "sum": 1, "sum_squares": 1},
                ]
            },
            "variants[0].sum_squares",
        ),
        ({"expected_weights": [0.3, 0.3]}, "expected_weights"),
        ({"method": "bayesian"}, "method"),
        ({"metric_type": "median"}, "metric_type"),
        ({"variants": [{"key": "c", "n": 10, "sum": 1, "sum_squares": 1}]}, "variants"),
        ({"alpha": 2}, "alpha"),
    ],
)
def test_stats__bad_input__400_names_field(reader, change, field) -> None:
    body = {
        "metric_type": "mean",
        "method": "fixed",
        "variants": [
            {"key": "c", "n": 10, "sum": 10, "sum_squares": 20},
            {"key": "t", "n": 10, "sum": 12, "sum_squares": 25},
        ],
        **change,
    }
    response = reader.post("/api/v1/stats", body, format="json")
    assert response.status_code == 400, response.json()
    assert field in response.json()["error"]["fields"]


def test_stats__undefined_case__nulls_and_reason_no_nan(reader) -> None:
    body = {
        "metric_type": "mean",
        "method": "fixed",
        "variants": [
            {"key": "c", "n": 1, "sum": 3, "sum_squares": 9},
            {"key": "t", "n": 5, "sum": 10, "sum_squares": 30},
        ],
    }
    response = reader.post("/api/v1/stats", body, format="json")
    assert response.status_code == 200
    assert b"NaN" not in response.content and b"Infinity" not in response.content
    comparison = response.json()["comparisons"][0]
    assert comparison["p_value"] is None and comparison["reason"]


def test_boundaries__k5__contract_table(reader) -> None:
    response = reader.get("/api/v1/stats/boundaries", {"looks": 5, "alpha": 0.05})
    assert response.status_code == 200
    body = response.json()
    assert body["looks"] == 5 and body["alpha"] == 0.05
    assert body["information_fractions"] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    assert body["z_boundaries"] == pytest.approx([4.877, 3.357, 2.680, 2.290, 2.031], abs=1e-3)
    expected_nominal = [2 * scipy_stats.norm.sf(z) for z in body["z_boundaries"]]
    assert body["nominal_alpha"] == pytest.approx(expected_nominal, rel=1e-9)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({}, "looks"),
        ({"looks": "x"}, "looks"),
        ({"looks": 0}, "looks"),
        ({"looks": 3, "alpha": 1.5}, "alpha"),
        ({"looks": 3, "information_fractions": "0.5,0.4,1"}, "information_fractions"),
    ],
)
def test_boundaries__bad_query__400_names_field(reader, params, field) -> None:
    response = reader.get("/api/v1/stats/boundaries", params)
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]
