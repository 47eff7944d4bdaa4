"""The demo's model rollout: the candidate (35 % slower at p95, 2 points more errors) is rolled
back by the real path (events through /events, the monitor's task, guardrail_act), and the
results page shows the rollout panel with the rollback marked."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from analysis.models import GuardrailCheck
from audit.models import AuditEntry
from demo.rollout import MODEL_EXPERIMENT_KEY, model_rollout_demo
from experiments import services

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def rolled_out(transactional_db):
    _, raw_key = services.api_key_create(name="demo", scopes=["all"])
    lines: list[str] = []
    experiment = model_rollout_demo(
        client=Client(HTTP_AUTHORIZATION=f"Bearer {raw_key}"), say=lines.append
    )
    return experiment, lines


def test_model_rollout_demo__candidate_rolled_back_automatically(rolled_out) -> None:
    experiment, lines = rolled_out
    v1, v2 = experiment.variants.order_by("position", "id")
    # Then the candidate, and only it, was rolled back, by the system, for a guardrail
    assert v1.rolled_back_at is None
    assert v2.rolled_back_at is not None
    assert v2.rolled_back_reason.startswith("guardrail model_")
    entry = AuditEntry.objects.get(action="rollback", experiment_key=MODEL_EXPERIMENT_KEY)
    assert entry.actor_type == "system" and entry.object_key == f"{MODEL_EXPERIMENT_KEY}:v2"
    # after a chain of monitor looks, the last of which carries the harm
    checks = GuardrailCheck.objects.filter(experiment=experiment)
    assert checks.filter(source="monitor").count() >= 2
    assert checks.order_by("-id").first().harms
    assert any("rolled back" in line for line in lines)


def test_model_rollout_demo__results_page__rollout_panel_with_marker(
    rolled_out, admin_client
) -> None:
    experiment, _ = rolled_out
    url = reverse("admin:experiments_experiment_results", args=[experiment.pk])
    page = admin_client.get(url).content.decode()
    assert 'id="vl-rollout"' in page
    # one chart per guardrail × treatment, the latency p95 among them
    assert page.count('class="vl-bound"') == 3
    assert "Model latency p95 (ms) · v2" in page
    # the rollback marked on the charts, and who rolled back and why
    assert page.count('class="vl-rollback-marker"') == 3
    assert "automatically, by the guardrail monitor" in page
    assert "Why: guardrail model_" in page
