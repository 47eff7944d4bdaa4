"""The admin saves through the services (issue #12): the API's rules hold in the admin, and
what cannot change is read-only with the reason shown."""

from __future__ import annotations

import json

import pytest

from experiments import services
from experiments.models import Experiment, ForcedAssignment, Variant
from tests.experiments.test_admin import add_form, inline_management
from tests.factories import MetricFactory, make_experiment

pytestmark = pytest.mark.django_db


def change_form(experiment: Experiment, **fields: str) -> dict[str, str]:
    """The change form as the admin posts it, inlines included, with `fields` edited."""
    variants = list(experiment.variants.order_by("position"))
    data = add_form(experiment.key, [(v.key, v.weight, v.is_control) for v in variants])
    data["variants-INITIAL_FORMS"] = str(len(variants))
    data["name"] = experiment.name
    for i, variant in enumerate(variants):
        data[f"variants-{i}-id"] = str(variant.pk)
        data[f"variants-{i}-experiment"] = str(experiment.pk)
        data[f"variants-{i}-name"] = variant.name
        data[f"variants-{i}-payload"] = json.dumps(variant.payload)
    data.update(fields)
    return data


def url(experiment: Experiment) -> str:
    return f"/admin/experiments/experiment/{experiment.pk}/change/"


def test_admin_stopped__page_read_only_with_reason(admin_client) -> None:
    experiment = make_experiment("done")
    services.experiment_stop(experiment=experiment)
    page = admin_client.get(url(experiment))
    assert page.status_code == 200
    assert not page.context["adminform"].form.fields  # every field read-only
    assert "Stopped: the configuration can no longer change" in page.content.decode()
    inlines = page.context["inline_admin_formsets"]
    assert all(not inline.has_add_permission for inline in inlines)
    # Nothing to save and nothing to delete: no Save or Delete buttons
    html = page.content.decode()
    assert 'name="_save"' not in html and 'name="_continue"' not in html
    assert "deletelink" not in html


def test_admin_stopped__posted_edit__refused_by_the_service_nothing_changed(admin_client) -> None:
    # Given a stopped experiment
    experiment = make_experiment("done")
    services.experiment_stop(experiment=experiment)
    # When someone posts an edit of its coverage and alpha anyway
    response = admin_client.post(
        url(experiment), change_form(experiment, coverage="0.2", alpha="0.2"), follow=True
    )
    # Then the service's refusal is shown and nothing changed
    assert "Not saved:" in response.content.decode()
    experiment.refresh_from_db()
    assert experiment.coverage == 1.0 and experiment.alpha == 0.05


def test_admin_running__coverage_edit__saved_through_the_service(admin_client) -> None:
    experiment = make_experiment("live")
    response = admin_client.post(url(experiment), change_form(experiment, coverage="0.3"))
    assert response.status_code == 302
    experiment.refresh_from_db()
    assert experiment.coverage == 0.3
    # the variants were passed through unchanged (frozen while running)
    assert list(experiment.variants.values_list("key", "weight")) == [
        ("control", 0.5),
        ("treatment", 0.5),
    ]


def test_admin_draft__metrics_and_forced_inlines__saved_as_the_api_would(admin_client) -> None:
    experiment = make_experiment("draft", start=False)
    metric = MetricFactory(key="ctr")
    treatment = Variant.objects.get(experiment=experiment, key="treatment")
    data = change_form(experiment)
    data.update(inline_management("metrics", 1))
    data.update({"metrics-0-metric": str(metric.pk), "metrics-0-role": "primary"})
    data.update(inline_management("forced_assignments", 1))
    data.update(
        {"forced_assignments-0-unit_id": "qa-1", "forced_assignments-0-variant": str(treatment.pk)}
    )
    response = admin_client.post(url(experiment), data)
    assert response.status_code == 302, response.context["errors"] if response.context else ""
    assert list(experiment.metrics.values_list("metric__key", "role")) == [("ctr", "primary")]
    assert list(ForcedAssignment.objects.values_list("unit_id", "variant__key")) == [
        ("qa-1", "treatment")
    ]


def test_admin_running__saved_unchanged__no_change_and_no_audit_entry(admin_client) -> None:
    from audit.models import AuditEntry

    experiment = make_experiment("live")
    before = AuditEntry.objects.count()
    response = admin_client.post(url(experiment), change_form(experiment))
    assert response.status_code == 302
    assert AuditEntry.objects.count() == before
