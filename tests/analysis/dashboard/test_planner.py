"""The admin's sample-size planner fills a draft's planned sample size (docs/api.md §7)."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from experiments.models import Experiment
from tests.factories import make_experiment

pytestmark = pytest.mark.django_db


def plan_url(experiment: Experiment) -> str:
    return f"/admin/experiments/experiment/{experiment.pk}/plan/"


def test_planner__fixed_draft__computes_and_uses_plan(admin_client) -> None:
    # Given a fixed-horizon draft, which cannot start without a plan
    experiment = make_experiment("draft-plan", start=False, analysis={"method": "fixed"})
    form = {"metric_type": "proportion", "baseline": "0.1", "relative_mde": "0.1", "power": "0.8"}
    # When the planner computes the size for a 10% relative lift on a 10% baseline
    response = admin_client.post(plan_url(experiment), {**form, "compute": "1"})
    # Then it shows the textbook two-proportion size (z-test, α 0.05, 80% power)
    z = stats.norm.ppf(0.975) + stats.norm.ppf(0.8)
    per_arm = math.ceil(z**2 * (0.1 * 0.9 + 0.11 * 0.89) / 0.01**2)
    html = response.content.decode()
    assert response.status_code == 200
    assert f"<strong>{2 * per_arm}</strong> units" in html
    assert 'id="vl-plan-use"' in html
    # And using it stores it as the experiment's planned sample size
    response = admin_client.post(plan_url(experiment), {**form, "use": "1"})
    assert response.status_code == 302
    assert Experiment.objects.get(pk=experiment.pk).planned_sample_size == 2 * per_arm


def test_planner__running_experiment__plan_frozen(admin_client) -> None:
    # Given a running experiment with a plan
    experiment = make_experiment("live-plan", planned_sample_size=1000)
    form = {"metric_type": "proportion", "baseline": "0.1", "relative_mde": "0.2", "power": "0.8"}
    # When someone tries to use a new plan
    response = admin_client.post(plan_url(experiment), {**form, "use": "1"}, follow=True)
    # Then nothing changes and the page says why
    assert Experiment.objects.get(pk=experiment.pk).planned_sample_size == 1000
    assert "frozen" in response.content.decode()
