"""The admin dashboard: overview and results pages, the Analyze button, and query budgets."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from analysis.dashboard import Plan, expected_days, recent_daily_units
from analysis.models import Snapshot, SnapshotState
from experiments.models import Experiment
from tests.analysis.dashboard.seeding import seed_history
from tests.factories import ExperimentMetricFactory, MetricFactory, make_experiment

pytestmark = pytest.mark.django_db


def results_url(experiment: Experiment) -> str:
    return reverse("admin:experiments_experiment_results", args=[experiment.pk])


def analyze_url(experiment: Experiment) -> str:
    return reverse("admin:experiments_experiment_analyze", args=[experiment.pk])


DASHBOARD = "/admin/experiments/experiment/dashboard/"


def test_urls__documented_paths() -> None:
    assert reverse("admin:experiments_experiment_dashboard") == DASHBOARD
    assert reverse("admin:experiments_experiment_results", args=[7]) == (
        "/admin/experiments/experiment/7/results/"
    )


def test_overview__seeded_experiments__status_units_srm_verdict_and_alerts(admin_client) -> None:
    # Given an analysed experiment, one with SRM and a guardrail alert, and a draft
    good = make_experiment("checkout-button")
    seed_history(good, snapshots=3, metrics=3)
    bad = make_experiment("ranker-v2")
    seed_history(bad, snapshots=2, metrics=10, srm_flagged=True)
    make_experiment("draft-one", start=False)
    # When
    response = admin_client.get(DASHBOARD)
    # Then
    assert response.status_code == 200
    html = response.content.decode()
    assert "Experiments dashboard" in html
    assert html.count('class="vl-row"') == 3
    good_row = html.split('data-key="checkout-button"')[1].split("</tr>")[0]
    assert "Running" in good_row
    assert "control <strong>6,000</strong>" in good_row  # the latest snapshot's units
    assert "vl-badge-ok" in good_row and "mismatch" not in good_row
    assert "win</span> checkout · treatment: +10.0%" in good_row
    assert "no guardrails" in good_row  # its three metrics include no guardrail
    bad_row = html.split('data-key="ranker-v2"')[1].split("</tr>")[0]
    assert "mismatch" in bad_row and "p &lt; 0.001" in bad_row
    assert "treatment harms metric-9" in bad_row and "harm</span>" in bad_row
    draft_row = html.split('data-key="draft-one"')[1].split("</tr>")[0]
    assert "not analysed yet" in draft_row and "Draft" in draft_row


def test_overview__many_experiments__three_queries_whatever_the_rows(
    admin_client, django_assert_max_num_queries
) -> None:
    for i in range(8):
        seed_history(make_experiment(f"exp-{i}"), snapshots=5, metrics=4)
    admin_client.get(DASHBOARD)  # warm the session
    # session + user + experiments + snapshots + comparisons + metric names
    with django_assert_max_num_queries(6):
        assert admin_client.get(DASHBOARD).status_code == 200


def test_pages__anonymous__sent_to_login(client) -> None:
    experiment = make_experiment("exp")
    for url in (DASHBOARD, results_url(experiment)):
        response = client.get(url)
        assert response.status_code == 302
        assert "/admin/login/" in response["Location"]
    response = client.post(analyze_url(experiment))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    assert not Snapshot.objects.exists()


def test_pages__non_staff_user__sent_to_login(client, django_user_model) -> None:
    user = django_user_model.objects.create_user("pm", password="x", is_staff=False)
    client.force_login(user)
    experiment = make_experiment("exp")
    assert client.get(results_url(experiment)).status_code == 302
    assert client.get(DASHBOARD).status_code == 302


def test_pages__staff_without_view_permission__forbidden(client, django_user_model) -> None:
    user = django_user_model.objects.create_user("pm", password="x", is_staff=True)
    client.force_login(user)
    experiment = make_experiment("exp")
    assert client.get(results_url(experiment)).status_code == 403
    assert client.get(DASHBOARD).status_code == 403
    assert client.post(analyze_url(experiment)).status_code == 403
    assert not Snapshot.objects.exists()


def test_results__seeded_snapshot__summary_table_and_charts(admin_client) -> None:
    # Given an experiment with a planned size and 20 seeded snapshots
    experiment = make_experiment("checkout-button")
    Experiment.objects.filter(pk=experiment.pk).update(planned_sample_size=40_000)
    latest = seed_history(experiment, snapshots=20, metrics=10)
    # When
    response = admin_client.get(results_url(experiment))
    # Then the summary comes first, from the latest snapshot
    assert response.status_code == 200
    html = response.content.decode()
    summary = latest.results["summary"]
    assert (
        "treatment vs control on Checkout conversion: 95% always-valid interval +4.0% to +16.0%; "
        "significant win." in summary
    )
    assert summary in html
    assert html.index('id="vl-summary"') < html.index('id="vl-forest"')
    # the metric table shows units, means, effects with intervals, p values and the decision
    table = html.split('id="vl-metric-checkout"')[1].split("</table>")[0]
    treatment = table.split('data-variant="treatment"')[1].split("</tr>")[0]
    control = table.split('data-variant="control"')[1].split("</tr>")[0]
    assert "6,000" in control and "10.00%" in control and "baseline" in control
    assert "11.00%" in treatment
    assert "+1.00 pp" in treatment and "[+0.40 pp, +1.60 pp]" in treatment
    assert "+10.0%" in treatment and "[+4.0%, +16.0%]" in treatment
    assert "0.001" in treatment and "0.002" in treatment
    assert "vl-badge-win" in treatment
    assert html.count('class="vl-card vl-metric"') == 10
    # the charts: a forest row per metric × treatment, one over-time chart per primary metric
    assert html.count('class="vl-interval"') == 10
    assert html.count('class="vl-over-time"') == 2
    assert "20 snapshots" in html
    assert html.count('class="vl-bar"') == 14 * 2
    # progress, planned size and expected days (12,000 units so far; 40,000 planned)
    assert "12,000" in html and "40,000" in html and "30%" in html
    assert "Expected days to decision" in html
    # diagnostics and no SRM banner
    diagnostics = html.split('id="vl-diagnostics"')[1]
    assert "Units exposed to more than one variant" in diagnostics and ">7<" in diagnostics
    assert 'id="vl-srm"' not in html
    assert 'id="vl-guardrails"' in html  # metric-9 loses in the seed


def test_results__srm_flagged__banner_with_observed_and_expected(admin_client) -> None:
    experiment = make_experiment("exp")
    seed_history(experiment, snapshots=2, metrics=1, srm_flagged=True)
    html = admin_client.get(results_url(experiment)).content.decode()
    banner = html.split('id="vl-srm"')[1].split("</div>")[0]
    assert "Sample ratio mismatch" in banner
    # observed 9,000 / 6,000; expected half of 15,000 each
    assert "9,000" in banner and "6,000" in banner and banner.count("7,500") == 2


def test_results__no_planned_size__estimated_from_control_baseline(admin_client) -> None:
    experiment = make_experiment("exp")
    seed_history(experiment, snapshots=2, metrics=2)
    html = admin_client.get(results_url(experiment)).content.decode()
    assert "estimated: enough to detect a 5% relative change in Checkout conversion" in html
    assert "no plan" not in html.split('id="vl-progress"')[1].split("</div>\n  </div>")[0]


def test_results__no_snapshot__says_so_and_offers_analysis(admin_client) -> None:
    experiment = make_experiment("exp")
    html = admin_client.get(results_url(experiment)).content.decode()
    assert "No results yet" in html and 'id="vl-analyze"' in html


def test_results__200_snapshots_x_10_metrics__few_queries_one_results_json(
    admin_client, django_assert_max_num_queries
) -> None:
    experiment = make_experiment("exp")
    seed_history(experiment, snapshots=200, metrics=10)
    url = results_url(experiment)
    admin_client.get(url)
    # session + user + experiment + latest snapshot + active snapshot + history
    with django_assert_max_num_queries(6):
        response = admin_client.get(url)
    assert response.status_code == 200
    with CaptureQueriesContext(connection) as captured:
        admin_client.get(url)
    reading_results = [q["sql"] for q in captured if '"results"' in q["sql"]]
    assert len(reading_results) == 1 and "LIMIT 1" in reading_results[0]
    history = [q["sql"] for q in captured if "analysis_snapshotcomparison" in q["sql"]]
    assert len(history) == 1 and '"results"' not in history[0]
    assert response.content.decode().count("200 snapshots") == 2


def test_analyze_now__post__queues_a_snapshot_and_redirects_with_message(
    admin_client, django_capture_on_commit_callbacks
) -> None:
    # Given a running experiment with a metric (tasks run eagerly in unit tests)
    experiment = make_experiment("exp")
    ExperimentMetricFactory(experiment=experiment, metric=MetricFactory(), role="primary")
    # When
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = admin_client.post(analyze_url(experiment), follow=True)
    # Then one snapshot was requested, its task ran on commit, and we are back with a message
    assert response.redirect_chain[-1][0] == results_url(experiment)
    assert len(callbacks) == 1
    snapshot = Snapshot.objects.get(experiment=experiment)
    assert snapshot.state in (SnapshotState.DONE, SnapshotState.FAILED)
    messages = [str(m) for m in response.context["messages"]]
    assert any(f"exp: analysis #{snapshot.pk}" in m for m in messages)


def test_analyze_now__get__not_allowed(admin_client) -> None:
    experiment = make_experiment("exp")
    assert admin_client.get(analyze_url(experiment)).status_code == 405
    assert not Snapshot.objects.exists()


def test_analyze_now__foreign_next__ignored(admin_client) -> None:
    experiment = make_experiment("exp")
    response = admin_client.post(analyze_url(experiment), {"next": "https://evil.example/"})
    assert response["Location"] == results_url(experiment)


def test_admin_links__index_changelist_and_change_page(admin_client) -> None:
    experiment = make_experiment("exp")
    assert DASHBOARD in admin_client.get("/admin/").content.decode()
    assert DASHBOARD in admin_client.get("/admin/experiments/experiment/").content.decode()
    change = admin_client.get(
        reverse("admin:experiments_experiment_change", args=[experiment.pk])
    ).content.decode()
    assert results_url(experiment) in change and analyze_url(experiment) in change
    assert "Analyze now" in change


def test_recent_daily_units__last_seven_days_of_data() -> None:
    days = [
        {
            "date": (dt.date(2024, 3, 1) + dt.timedelta(days=d)).isoformat(),
            "variant": v,
            "units": u,
        }
        for d in range(10)
        for v, u in (("control", 100 if d < 3 else 50), ("treatment", 50))
    ]
    assert recent_daily_units(days) == pytest.approx(100.0)  # days 4-10: 50 + 50 a day
    assert recent_daily_units(days[:4]) == pytest.approx(150.0)  # two days of data only
    assert recent_daily_units([]) is None


def test_expected_days__remaining_over_rate() -> None:
    plan = Plan(10_000, "experiment", "")
    assert expected_days(4_000, plan, 1_000.0)[0] == 6
    assert expected_days(10_500, plan, 1_000.0)[0] == 0
    assert expected_days(4_000, plan, None)[0] is None
    assert expected_days(4_000, Plan(None, "none", ""), 1_000.0)[0] is None
