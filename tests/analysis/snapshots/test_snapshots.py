"""Snapshots end to end in-process: events through /events, analysis by the snapshot service,
numbers checked against scipy on the raw simulated data kept by the test."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from scipy import stats as scipy_stats

from analysis.models import Snapshot, SnapshotComparison
from analysis.stats.sequential import msprt_p_value
from audit.models import AuditEntry
from experiments.models import Experiment, Variant
from tests.factories import MetricFactory, make_experiment

pytestmark = pytest.mark.django_db

START = datetime(2026, 11, 1, tzinfo=UTC)


def simulate(
    rng,
    units: int,
    variants: list[str],
    weights: list[float],
    purchase_rate: dict,
    revenue_mean: dict,
    latency_mean: dict,
) -> dict:
    """Per-unit truths and the events that report them."""
    assigned = rng.choice(variants, size=units, p=weights)
    data = {
        "variant": assigned,
        "converted": np.zeros(units),
        "revenue": np.zeros(units),
        "latency": np.zeros(units),
        "events": [],
    }
    for i, variant in enumerate(assigned):
        unit = f"u{i}"
        exposed_at = START + timedelta(minutes=int(rng.integers(0, 3 * 24 * 60)))
        data["events"].append(
            {
                "type": "exposure",
                "unit_id": unit,
                "experiment": "shop",
                "variant": variant,
                "timestamp": exposed_at.isoformat(),
                "event_id": f"x{i}",
            }
        )
        latency = float(rng.normal(latency_mean[variant], 20))
        data["latency"][i] = latency
        data["events"].append(
            {
                "type": "outcome",
                "unit_id": unit,
                "name": "latency_ms",
                "value": latency,
                "event_id": f"l{i}",
                "timestamp": (exposed_at + timedelta(seconds=1)).isoformat(),
            }
        )
        if rng.random() < purchase_rate[variant]:
            amount = float(rng.gamma(2.0, revenue_mean[variant] / 2.0))
            data["converted"][i], data["revenue"][i] = 1, amount
            data["events"].append(
                {
                    "type": "outcome",
                    "unit_id": unit,
                    "name": "purchase",
                    "value": amount,
                    "event_id": f"p{i}",
                    "timestamp": (exposed_at + timedelta(hours=2)).isoformat(),
                }
            )
        # A purchase before exposure must not count
        data["events"].append(
            {
                "type": "outcome",
                "unit_id": unit,
                "name": "purchase",
                "value": 999.0,
                "event_id": f"pre{i}",
                "timestamp": (exposed_at - timedelta(days=30)).isoformat(),
            }
        )
    return data


def post_all(client, events: list[dict]) -> None:
    for start in range(0, len(events), 1000):
        response = client.post(
            "/api/v1/events", {"events": events[start : start + 1000]}, format="json"
        )
        assert response.status_code == 202 and not response.json()["rejected"]


@pytest.fixture
def shop(api):
    MetricFactory(
        key="purchase",
        name="Purchase rate",
        event="purchase",
        aggregation="conversion",
        cuped_lookback_days=0,
    )
    MetricFactory(
        key="revenue", name="Revenue", event="purchase", aggregation="sum", cuped_lookback_days=0
    )
    MetricFactory(
        key="latency",
        name="Latency",
        event="latency_ms",
        aggregation="mean",
        direction="decrease",
        cuped_lookback_days=0,
    )
    make_experiment(
        "shop",
        metrics=[
            {"metric": "purchase", "role": "primary"},
            {"metric": "revenue", "role": "secondary"},
            {"metric": "latency", "role": "guardrail"},
        ],
        analysis={"method": "fixed", "cuped": False, "correction": "holm"},
        planned_sample_size=3000,
    )
    rng = np.random.default_rng(2026)
    data = simulate(
        rng,
        3000,
        ["control", "treatment"],
        [0.5, 0.5],
        {"control": 0.10, "treatment": 0.16},
        {"control": 30.0, "treatment": 30.0},
        {"control": 100.0, "treatment": 130.0},
    )
    post_all(api, data["events"])
    return data


def analyze_now(api, django_capture_on_commit_callbacks, key: str = "shop") -> dict:
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(f"/api/v1/experiments/{key}/analyze")
    assert response.status_code == 202
    return response.json()


def test_snapshot__fixed_method__matches_scipy_on_raw_data(
    api, shop, django_capture_on_commit_callbacks
) -> None:
    # When a snapshot is computed
    queued = analyze_now(api, django_capture_on_commit_callbacks)
    results = api.get("/api/v1/experiments/shop/results").json()
    # Then it has the contract's shape
    assert results["snapshot_id"] == queued["snapshot_id"] and results["experiment"] == "shop"
    assert set(results) >= {
        "experiment",
        "snapshot_id",
        "computed_at",
        "method",
        "alpha",
        "srm",
        "diagnostics",
        "metrics",
        "summary",
    }
    by_metric = {m["metric"]: m for m in results["metrics"]}
    treated = shop["variant"] == "treatment"
    # And revenue (sum) equals scipy's Welch test on the raw per-unit values
    revenue = by_metric["revenue"]["comparisons"][0]
    welch = scipy_stats.ttest_ind(
        shop["revenue"][treated], shop["revenue"][~treated], equal_var=False
    )
    assert revenue["absolute_effect"] == pytest.approx(
        shop["revenue"][treated].mean() - shop["revenue"][~treated].mean(), rel=1e-9
    )
    assert revenue["p_value"] == pytest.approx(welch.pvalue, rel=1e-6)
    # And conversions count units, not events (pre-exposure purchases excluded)
    variants = {v["variant"]: v for v in by_metric["purchase"]["variants"]}
    assert variants["treatment"]["units"] == treated.sum()
    assert variants["treatment"]["mean"] == pytest.approx(shop["converted"][treated].mean())
    # And Holm over primary + secondary: the larger raw p is multiplied by at most 1
    primary = by_metric["purchase"]["comparisons"][0]
    raw = sorted([primary["p_value"], revenue["p_value"]])
    adjusted = sorted([primary["adjusted_p_value"], revenue["adjusted_p_value"]])
    assert adjusted[0] == pytest.approx(min(1, 2 * raw[0]))
    assert primary["decision"] == "win"
    # And the guardrail (latency up 30 ms, direction decrease) detects harm, in the summary too
    latency = by_metric["latency"]["comparisons"][0]
    assert latency["decision"] == "loss" and latency["harm"] is True
    assert results["guardrail_alerts"] == [{"metric": "latency", "variant": "treatment"}]
    assert "treatment vs control on Purchase rate" in results["summary"]
    assert "significant win" in results["summary"]
    assert "Guardrails: harm detected" in results["summary"]
    # And SRM agrees with scipy's chi-square on the exposed counts
    observed = [int((~treated).sum()), int(treated.sum())]
    assert results["srm"]["p_value"] == pytest.approx(scipy_stats.chisquare(observed).pvalue)
    assert results["srm"]["flagged"] is False


def test_snapshot__guardrail_harm_with_auto_rollback__rolls_the_arm_back_once(
    api, shop, django_capture_on_commit_callbacks
) -> None:
    # Given auto_rollback on, and a treatment that harms the latency guardrail
    Experiment.objects.filter(key="shop").update(auto_rollback=True)
    # When two snapshots are taken
    analyze_now(api, django_capture_on_commit_callbacks)
    analyze_now(api, django_capture_on_commit_callbacks)
    # Then the treatment is rolled back by the system, once, saying which guardrail
    treatment = Variant.objects.get(experiment__key="shop", key="treatment")
    assert treatment.rolled_back_at is not None
    assert treatment.rolled_back_reason.startswith("guardrail latency: harm detected")
    entries = AuditEntry.objects.filter(action="rollback")
    assert [(e.actor_type, e.object_key) for e in entries] == [("system", "shop:treatment")]
    # And the experiment keeps running (a rollback is not a pause), control untouched
    assert Experiment.objects.get(key="shop").status == "running"
    assert Variant.objects.get(experiment__key="shop", key="control").rolled_back_at is None


def test_snapshot__guardrail_harm_without_auto_rollback__nothing_rolled_back(
    api, shop, django_capture_on_commit_callbacks
) -> None:
    analyze_now(api, django_capture_on_commit_callbacks)
    assert not Variant.objects.filter(rolled_back_at__isnull=False).exists()
    assert Experiment.objects.get(key="shop").status == "running"


def test_snapshot__sequential__running_min_p_and_intersected_intervals(
    api, shop, django_capture_on_commit_callbacks
) -> None:
    # Given the sequential method, and two snapshots
    Experiment.objects.filter(key="shop").update(method="sequential")
    analyze_now(api, django_capture_on_commit_callbacks)
    analyze_now(api, django_capture_on_commit_callbacks)
    first, second = SnapshotComparison.objects.filter(metric="purchase").order_by("snapshot_id")
    # Then the second reports the running minimum p and an interval inside the first one
    assert second.looks == 2
    own_p = msprt_p_value(
        second.look_effect, second.look_variance, second.look_total_units, 0.05, 3000
    )
    assert second.p_value == pytest.approx(min(first.p_value, own_p))
    assert first.absolute_low <= second.absolute_low <= second.absolute_high <= first.absolute_high


def test_analyze__while_one_is_queued__joins_it(api) -> None:
    make_experiment("busy")
    # on_commit does not fire inside this test's transaction: the first stays queued
    first = api.post("/api/v1/experiments/busy/analyze").json()
    second = api.post("/api/v1/experiments/busy/analyze").json()
    assert first["snapshot_id"] == second["snapshot_id"] and first["state"] == "queued"
    assert Snapshot.objects.count() == 1


def test_results__no_snapshot_yet__404_with_hint(api) -> None:
    make_experiment("fresh")
    response = api.get("/api/v1/experiments/fresh/results")
    assert response.status_code == 404 and "analyze" in response.json()["error"]["message"]


def test_snapshot__skewed_split__srm_flagged(api, django_capture_on_commit_callbacks) -> None:
    make_experiment("skewed")
    events = [
        {
            "type": "exposure",
            "unit_id": f"s{i}",
            "experiment": "skewed",
            "variant": "control" if i % 10 < 6 else "treatment",
            "event_id": f"s{i}",
        }
        for i in range(2000)
    ]
    post_all(api, events)
    analyze_now(api, django_capture_on_commit_callbacks, "skewed")
    results = api.get("/api/v1/experiments/skewed/results").json()
    assert results["srm"]["flagged"] is True
    assert results["srm"]["observed"] == {"control": 1200, "treatment": 800}
    assert results["summary"].startswith("Sample ratio mismatch")


def test_analyze_command__prints_summary(shop, capsys) -> None:
    from django.core.management import call_command

    call_command("analyze", "shop")
    assert "treatment vs control on Purchase rate" in capsys.readouterr().out
    assert Snapshot.objects.get().state == "done"


def test_snapshots_due__schedule__queues_running_experiments_once(api) -> None:
    from analysis.services import snapshots_due

    make_experiment("a")
    make_experiment("b", start=False)
    first = snapshots_due()
    assert [s.experiment.key for s in first] == ["a"]
    assert snapshots_due() == []  # not due again before its 60 minutes
    Snapshot.objects.update(requested_at=datetime.now(UTC) - timedelta(minutes=61))
    assert snapshots_due() == first  # due, but the first is still queued: joined
    assert Snapshot.objects.count() == 1


def test_snapshot_list__history_newest_first(api, django_capture_on_commit_callbacks) -> None:
    make_experiment("hist")
    analyze_now(api, django_capture_on_commit_callbacks, "hist")
    analyze_now(api, django_capture_on_commit_callbacks, "hist")
    history = api.get("/api/v1/experiments/hist/snapshots").json()
    assert [h["state"] for h in history] == ["done", "done"]
    assert history[0]["snapshot_id"] > history[1]["snapshot_id"]
