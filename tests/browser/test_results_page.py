"""Headless Chromium against Django's live server: log in, read the dashboard, press Analyze.

Needs /usr/bin/chromium (Debian's package; `playwright install` is never used). Without it the
test is skipped, or fails when VARIANTLAB_REQUIRE_SERVICES=1 (CI must not hide a broken setup).
The screenshot lands in artifacts/results-page.png.
"""

from __future__ import annotations

import datetime as dt
import os

import pytest

from tests.browser.conftest import ARTIFACTS

# Playwright's sync API runs an event loop in this thread; Django's ORM calls made by the test
# itself (seeding) would otherwise be refused as "async unsafe".
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_results_page__staff_in_chromium__summary_table_charts_and_analyze(
    live_server, browser_page, django_user_model
) -> None:
    from django.utils import timezone

    from experiments.models import Experiment
    from tests.analysis.dashboard.seeding import seed_history
    from tests.factories import ExperimentMetricFactory, MetricFactory, make_experiment

    # Given a superuser and an experiment with 30 seeded snapshots of 10 metrics
    django_user_model.objects.create_superuser("boss", "boss@example.com", "s3cret-pass")
    experiment = make_experiment(
        "checkout-button", name="Checkout button colour", owner="growth team"
    )
    now = timezone.now()
    Experiment.objects.filter(pk=experiment.pk).update(
        planned_sample_size=20_000, started_at=now - dt.timedelta(days=14)
    )
    ExperimentMetricFactory(experiment=experiment, metric=MetricFactory(), role="primary")
    seed_history(experiment, snapshots=30, metrics=10, start=now - dt.timedelta(hours=30))
    page = browser_page

    # When the PM logs in and opens the overview
    page.goto(f"{live_server.url}/admin/login/?next=/admin/")
    page.fill("#id_username", "boss")
    page.fill("#id_password", "s3cret-pass")
    page.click("input[type=submit]")
    page.click("text=Results dashboard")
    row = page.locator("tr.vl-row[data-key='checkout-button']")
    assert "win" in row.inner_text().lower()  # badges are upper-cased by CSS
    assert "checkout · treatment: +10.0%" in row.inner_text()

    # Then the results page shows the summary, the table, the forest plot and the history
    row.locator("a").first.click()
    page.wait_for_selector("#vl-summary")
    summary = page.inner_text("#vl-summary")
    assert "on Checkout conversion: 95% always-valid interval +4.0% to +16.0%" in summary
    treatment = page.locator("#vl-metric-checkout tr[data-variant='treatment']").inner_text()
    for expected in ("11.00%", "+1.00 pp", "[+0.40 pp, +1.60 pp]", "+10.0%", "[+4.0%, +16.0%]"):
        assert expected in treatment
    assert "win" in treatment.lower()
    assert page.locator("#vl-forest svg line.vl-interval").count() == 10
    assert page.locator("#vl-over-time svg.vl-over-time").count() == 2
    assert page.locator("#vl-over-time polyline.vl-estimate-line").count() == 2
    assert page.locator("#vl-exposures rect.vl-bar").count() == 28
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "results-page.png"), full_page=True)

    # When "Analyze now" is pressed, a snapshot is requested and a message says so
    page.click("#vl-analyze")
    page.wait_for_selector("ul.messagelist li")
    assert "checkout-button: analysis #" in page.inner_text("ul.messagelist").lower()
    assert page.url.endswith(f"/admin/experiments/experiment/{experiment.pk}/results/")
