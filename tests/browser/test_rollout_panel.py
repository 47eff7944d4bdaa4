"""The rollout panel in headless Chromium (issue 10): a model experiment whose candidate was
rolled back by the real monitor path shows, per guardrail, the harm-side bound over time, the
threshold, the rollback marker, and who rolled back and why. Screenshots land in
artifacts/rollout-panel.png (the panel) and artifacts/rollout-page.png (the whole page)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.browser.conftest import ARTIFACTS

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_rollout_panel__rolled_back_model__charts_and_marker_render(
    live_server,
    browser_page,
    django_user_model,
) -> None:
    from django.test import Client

    from demo.rollout import model_rollout_demo
    from experiments import services

    # Given the demo's model experiment, its candidate rolled back automatically
    django_user_model.objects.create_superuser("boss", "boss@example.com", "s3cret-pass")
    _, raw_key = services.api_key_create(name="demo", scopes=["all"])
    experiment = model_rollout_demo(
        client=Client(HTTP_AUTHORIZATION=f"Bearer {raw_key}"), say=lambda _line: None
    )
    assert experiment.variants.get(key="v2").rolled_back_at is not None
    page = browser_page

    # When the team opens its results page
    page.goto(f"{live_server.url}/admin/login/?next=/admin/")
    page.fill("#id_username", "boss")
    page.fill("#id_password", "s3cret-pass")
    page.click("input[type=submit]")
    page.goto(f"{live_server.url}/admin/experiments/experiment/{experiment.pk}/results/")
    page.wait_for_selector("#vl-rollout")

    # Then the panel draws one bound chart per guardrail, each with its threshold, its bound
    # line and the rollback marker, and says who rolled back and why
    panel = page.locator("#vl-rollout")
    assert panel.locator("svg.vl-bound").count() == 3
    assert panel.locator("svg.vl-bound line.vl-threshold").count() == 3
    assert panel.locator("svg.vl-bound polyline.vl-bound-line").count() == 3
    markers = panel.locator("svg.vl-bound line.vl-rollback-marker")
    assert markers.count() == 3
    box = markers.first.bounding_box()
    assert box is not None and box["height"] > 50  # a visible vertical line
    text = panel.inner_text()
    assert "automatically, by the guardrail monitor" in text
    assert "Why: guardrail model_" in text
    assert "Model latency p95 (ms) · v2" in text
    assert page.locator("#vl-rollbacks").is_visible()
    ARTIFACTS.mkdir(exist_ok=True)
    panel.screenshot(path=str(Path(ARTIFACTS) / "rollout-panel.png"))
    page.screenshot(path=str(Path(ARTIFACTS) / "rollout-page.png"), full_page=True)
