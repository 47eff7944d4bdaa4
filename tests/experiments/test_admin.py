"""The admin product teams use: pages render, rules hold, buttons call the services."""

from __future__ import annotations

import json

import pytest

from experiments.models import ApiKey, Experiment, Status
from tests.factories import LayerFactory, MetricFactory, make_experiment

pytestmark = pytest.mark.django_db


def inline_management(prefix: str, total: int, initial: int = 0) -> dict[str, str]:
    return {
        f"{prefix}-TOTAL_FORMS": str(total),
        f"{prefix}-INITIAL_FORMS": str(initial),
        f"{prefix}-MIN_NUM_FORMS": "0",
        f"{prefix}-MAX_NUM_FORMS": "1000",
    }


def add_form(key: str, variants: list[tuple[str, float, bool]]) -> dict[str, str]:
    data = {
        "key": key,
        "name": key,
        "hash_version": "2",
        "coverage": "1",
        "condition": "{}",
        "layer_start": "0",
        "layer_end": "1",
        "alpha": "0.05",
        "method": "sequential",
        "cuped": "on",
        "correction": "holm",
        "srm_threshold": "0.001",
        "schedule_minutes": "60",
        "min_units_per_variant": "100",
        "guardrail_alpha": "0.05",
        "guardrail_check_minutes": "5",
        **inline_management("variants", len(variants)),
        **inline_management("metrics", 0),
        **inline_management("forced_assignments", 0),
    }
    for i, (vkey, weight, control) in enumerate(variants):
        data.update(
            {
                f"variants-{i}-key": vkey,
                f"variants-{i}-name": vkey,
                f"variants-{i}-weight": str(weight),
                f"variants-{i}-payload": '{"model": "m"}',
                f"variants-{i}-position": str(i),
            }
        )
        if control:
            data[f"variants-{i}-is_control"] = "on"
    return data


def test_admin_pages__changelists_and_forms__render(admin_client) -> None:
    MetricFactory()
    LayerFactory()
    experiment = make_experiment("ranker")
    for url in [
        "/admin/experiments/experiment/",
        "/admin/experiments/experiment/?status__exact=running",
        "/admin/experiments/experiment/?q=ranker",
        "/admin/experiments/experiment/add/",
        f"/admin/experiments/experiment/{experiment.pk}/change/",
        "/admin/experiments/metric/",
        "/admin/experiments/layer/",
        "/admin/experiments/apikey/add/",
    ]:
        assert admin_client.get(url).status_code == 200, url


def test_admin_add__valid_variants__experiment_created(admin_client) -> None:
    response = admin_client.post(
        "/admin/experiments/experiment/add/",
        add_form("new", [("control", 0.5, True), ("treatment", 0.5, False)]),
    )
    assert response.status_code == 302, response.context["errors"] if response.context else ""
    experiment = Experiment.objects.get(key="new")
    assert sorted(experiment.variants.values_list("key", flat=True)) == ["control", "treatment"]
    assert experiment.variants.get(key="control").payload == {"model": "m"}


@pytest.mark.parametrize(
    ("variants", "message"),
    [
        ([("control", 0.5, True), ("treatment", 0.4, False)], "sum to 1"),
        ([("control", 0.5, False), ("treatment", 0.5, False)], "Exactly one variant"),
    ],
)
def test_admin_add__bad_variant_set__form_error_nothing_saved(admin_client, variants, message):
    response = admin_client.post("/admin/experiments/experiment/add/", add_form("bad", variants))
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not Experiment.objects.filter(key="bad").exists()


def test_admin_add__invalid_condition__form_error(admin_client) -> None:
    data = add_form("cond", [("control", 0.5, True), ("treatment", 0.5, False)])
    data["condition"] = json.dumps({"country": {"$nope": 1}})
    response = admin_client.post("/admin/experiments/experiment/add/", data)
    assert response.status_code == 200
    assert "$nope" in response.content.decode()
    assert not Experiment.objects.filter(key="cond").exists()


def test_admin_change__running_experiment__seed_and_weights_readonly(admin_client) -> None:
    experiment = make_experiment("live")
    page = admin_client.get(f"/admin/experiments/experiment/{experiment.pk}/change/")
    form = page.context["adminform"].form
    assert "seed" not in form.fields and "hash_version" not in form.fields
    inline = page.context["inline_admin_formsets"][0]
    assert "weight" not in inline.formset.forms[0].fields


def test_admin_move_buttons__start_pause_ship__go_through_services(admin_client) -> None:
    experiment = make_experiment("flow", start=False)
    base = f"/admin/experiments/experiment/{experiment.pk}/move"
    admin_client.post(f"{base}/start/")
    assert Experiment.objects.get(pk=experiment.pk).status == Status.RUNNING
    admin_client.post(f"{base}/pause/")
    assert Experiment.objects.get(pk=experiment.pk).status == Status.PAUSED
    admin_client.post(f"{base}/ship/", {"variant": "treatment"})
    stopped = Experiment.objects.get(pk=experiment.pk)
    assert stopped.status == Status.STOPPED and stopped.shipped_variant == "treatment"
    # A refused move shows an error message and changes nothing
    response = admin_client.post(f"{base}/start/", follow=True)
    assert "Cannot move experiment" in response.content.decode()
    assert Experiment.objects.get(pk=experiment.pk).status == Status.STOPPED


def test_admin_action__start_selected__starts_each(admin_client) -> None:
    first = make_experiment("a", start=False)
    second = make_experiment("b", start=False)
    admin_client.post(
        "/admin/experiments/experiment/",
        {"action": "start_selected", "_selected_action": [first.pk, second.pk]},
    )
    assert set(Experiment.objects.values_list("status", flat=True)) == {"running"}


def test_admin_preview__unit_and_attributes__shows_variant_and_reason(admin_client) -> None:
    experiment = make_experiment("ranker", condition={"country": "US"})
    url = f"/admin/experiments/experiment/{experiment.pk}/change/"
    targeted = admin_client.get(
        url, {"preview_unit_id": "u-1", "preview_attributes": '{"country": "FR"}'}
    )
    assert targeted.context["preview"].reason == "not_targeted"
    assert "not_targeted" in targeted.content.decode()
    assigned = admin_client.get(
        url, {"preview_unit_id": "u-1", "preview_attributes": '{"country": "US"}'}
    )
    assert assigned.context["preview"].reason == "assigned"
    bad = admin_client.get(url, {"preview_unit_id": "u-1", "preview_attributes": "[1]"})
    assert "Attributes must be a JSON object." in bad.content.decode()


def test_admin_api_key_add__secret_shown_once_stored_hashed(admin_client) -> None:
    response = admin_client.post(
        "/admin/experiments/apikey/add/",
        {"name": "app", "scopes": ["assign", "events"], "is_active": "on"},
        follow=True,
    )
    text = response.content.decode()
    api_key = ApiKey.objects.get(name="app")
    assert api_key.scopes == ["assign", "events"]
    secret = text.split("it will not be shown again: ")[1].split("<")[0].strip()
    assert ApiKey.hash(secret) == api_key.hashed_key


def test_admin_change_page__links_results_and_export(admin_client) -> None:
    experiment = make_experiment("linked")
    page = admin_client.get(f"/admin/experiments/experiment/{experiment.pk}/change/").content
    assert f"/admin/experiments/experiment/{experiment.pk}/results/".encode() in page
    export = f"/admin/experiments/experiment/{experiment.pk}/export/".encode()
    assert export in page
    assert admin_client.get(export.decode()).status_code == 200


def test_admin_add__model_guardrails_checkbox__three_guardrails_linked(admin_client) -> None:
    data = add_form("chat", [("control", 0.5, True), ("treatment", 0.5, False)])
    data["model_guardrails"] = "on"
    response = admin_client.post("/admin/experiments/experiment/add/", data)
    assert response.status_code == 302, response.context["errors"] if response.context else ""
    experiment = Experiment.objects.get(key="chat")
    assert experiment.model_guardrails is True
    links = dict(experiment.metrics.values_list("metric__key", "role"))
    assert links == {
        "model_latency_p95": "guardrail",
        "model_error_rate": "guardrail",
        "model_cost_per_unit": "guardrail",
    }


def test_admin_metric_add__quantile__saved_and_bad_quantile_refused(admin_client) -> None:
    base = {
        "key": "p99",
        "event": "model_latency_ms",
        "aggregation": "quantile",
        "direction": "decrease",
        "cuped_lookback_days": "0",
    }
    refused = admin_client.post("/admin/experiments/metric/add/", {**base, "quantile": "1.5"})
    assert refused.status_code == 200 and "quantile" in str(refused.context["errors"])
    saved = admin_client.post("/admin/experiments/metric/add/", {**base, "quantile": "0.99"})
    assert saved.status_code == 302
    from experiments.models import Metric

    metric = Metric.objects.get(key="p99")
    assert (metric.quantile, metric.winsorize_percentile) == (0.99, None)
