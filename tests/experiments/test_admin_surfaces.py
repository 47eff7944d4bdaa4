"""The admin as a product team meets it (issue #15): branding, the landing page, the life-cycle
bar, confirmations that say what happens to traffic, plain messages, JSON previews."""

from __future__ import annotations

import json

import pytest

from experiments.admin_lifecycle import lifecycle_steps
from experiments.models import Experiment, Status, Variant
from tests.factories import make_experiment

pytestmark = pytest.mark.django_db

EXP = "/admin/experiments/experiment"


def test_admin_index__logged_in__variantlab_branding_and_distinct_sections(admin_client) -> None:
    page = admin_client.get("/admin/").content.decode()
    assert "Django administration" not in page
    assert '<div id="site-name"><a href="/admin/" class="vl-brand">' in page
    assert "<title>Experiments, metrics and results | Variantlab</title>" in page
    # The dashboard module and the app list no longer share the title "Experiments"
    assert "<caption>Results and background work</caption>" in page


def test_landing_page__root__redirects_to_the_dashboard(client) -> None:
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"] == f"{EXP}/dashboard/"


def test_change_page__running__lifecycle_bar_marks_running_and_links_to_confirmations(
    admin_client,
) -> None:
    experiment = make_experiment("flow")
    page = admin_client.get(f"{EXP}/{experiment.pk}/change/").content.decode()
    assert 'id="vl-lifecycle"' in page
    assert 'class="vl-step vl-step-current" data-step="running"' in page
    assert 'data-step="archived"' in page
    # The buttons lead to confirmation pages (GET), they do not move anything by themselves
    assert f'href="{EXP}/{experiment.pk}/move/pause/"' in page
    assert f'href="{EXP}/{experiment.pk}/move/stop/"' in page


@pytest.mark.parametrize(
    ("status", "shipped", "current", "label"),
    [
        ("draft", "", "draft", "Stopped / shipped"),
        ("paused", "", "paused", "Stopped / shipped"),
        ("stopped", "", "ended", "Stopped"),
        ("stopped", "ltr-v2", "ended", "Shipped: ltr-v2"),
        ("archived", "ltr-v2", "archived", "Shipped: ltr-v2"),
        ("archived", "", "archived", "Stopped"),
    ],
)
def test_lifecycle_steps__each_status__one_current_step(status, shipped, current, label) -> None:
    experiment = Experiment(key="x", status=status, shipped_variant=shipped)
    steps = lifecycle_steps(experiment)
    assert [s.key for s in steps if s.state == "current"] == [current]
    assert [s.label for s in steps if s.key == "ended"] == [label]
    assert steps[-1].key == "archived"
    if status in ("stopped", "archived"):
        assert all(s.state in ("done", "skipped") for s in steps if s.key in ("draft", "running"))


def test_move_confirmation__get__says_what_happens_to_traffic_and_changes_nothing(
    admin_client,
) -> None:
    experiment = make_experiment("flow", name="Checkout ranker v3")
    page = admin_client.get(f"{EXP}/{experiment.pk}/move/ship/?variant=treatment")
    text = page.content.decode()
    assert page.status_code == 200
    assert "Stop “Checkout ranker v3” and ship treatment?" in text
    assert "Every unit gets treatment from now on" in text
    assert 'name="variant" value="treatment"' in text
    assert Experiment.objects.get(pk=experiment.pk).status == Status.RUNNING
    pause = admin_client.get(f"{EXP}/{experiment.pk}/move/pause/").content.decode()
    assert "Every unit gets the control from now on (the kill switch)" in pause


def test_move_confirmation__viewer__403(client, django_user_model) -> None:
    from django.contrib.auth.models import Permission

    experiment = make_experiment("flow")
    viewer = django_user_model.objects.create_user("v", password="p", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_experiment"))
    client.force_login(viewer)
    assert client.get(f"{EXP}/{experiment.pk}/move/stop/").status_code == 403


def test_move__confirmed__plain_language_message(admin_client) -> None:
    experiment = make_experiment("checkout-ranker-v3", name="Checkout ranker v3", start=False)
    response = admin_client.post(f"{EXP}/{experiment.pk}/move/start/", follow=True)
    text = response.content.decode()
    assert "“Checkout ranker v3” is running: units are now split between its variants." in text
    assert "start done" not in text
    response = admin_client.post(
        f"{EXP}/{experiment.pk}/move/ship/", {"variant": "treatment"}, follow=True
    )
    assert "everyone now gets treatment" in response.content.decode()
    assert Experiment.objects.get(pk=experiment.pk).shipped_variant == "treatment"


def test_rollback_confirmation__get_with_reason__asks_then_post_rolls_back(admin_client) -> None:
    experiment = make_experiment("exp")
    url = f"{EXP}/{experiment.pk}/rollback/treatment/"
    page = admin_client.get(url, {"reason": "errors doubled"}).content.decode()
    assert "Units assigned to treatment get the control from now on" in page
    assert 'name="reason" value="errors doubled"' in page
    assert Variant.objects.get(key="treatment").rolled_back_at is None
    done = admin_client.post(url, {"reason": "errors doubled"}, follow=True).content.decode()
    assert "Rolled back treatment in “Experiment exp”: its units now get the control." in done
    assert Variant.objects.get(key="treatment").rolled_back_at is not None


def test_preview__payload__printed_as_json(admin_client) -> None:
    experiment = make_experiment("exp")
    Variant.objects.filter(experiment=experiment).update(payload={"model": "bm25", "on": True})
    page = admin_client.get(
        f"{EXP}/{experiment.pk}/change/", {"preview_unit_id": "u-1", "preview_attributes": "{}"}
    ).content.decode()
    start = page.index('id="vl-preview-payload">') + len('id="vl-preview-payload">')
    shown = page[start : page.index("</pre>", start)].replace("&quot;", '"')
    assert json.loads(shown) == {"model": "bm25", "on": True}
    assert "True" not in shown and "'" not in shown
    # The reason in words, its code beside it
    assert "assigned by the hash" in page and "reason <code>assigned</code>" in page


def test_export_page__breadcrumb__names_the_experiment_and_its_results(admin_client) -> None:
    experiment = make_experiment("exp")
    page = admin_client.get(f"{EXP}/{experiment.pk}/export/").content.decode()
    crumbs = page[page.index('<div class="breadcrumbs">') :]
    crumbs = crumbs[: crumbs.index("</div>")]
    for expected in ("Home", "Experiments", f"{EXP}/{experiment.pk}/change/", "Results", "Export"):
        assert expected in crumbs


def test_dashboard__shipped_experiment__says_shipped_variant_and_date(admin_client) -> None:
    from experiments import services

    experiment = make_experiment("ranker")
    services.experiment_stop(experiment=experiment, shipped_variant="treatment")
    stopped = Experiment.objects.get(pk=experiment.pk)
    page = admin_client.get(f"{EXP}/dashboard/").content.decode()
    expected = f"Shipped: <strong>treatment</strong> on {stopped.stopped_at:%b} "
    assert expected in page
    assert f"{stopped.stopped_at.day}, {stopped.stopped_at.year}" in page


def test_create_page__planner_inputs__fill_planned_sample_size(admin_client) -> None:
    from analysis.stats import sample_size
    from tests.experiments.test_admin import add_form

    # Given the create page with the planner (baseline 10 %, +10 % relative, 1,000 units/day)
    page = admin_client.get(f"{EXP}/add/").content.decode()
    assert "Plan the sample size" in page and 'name="plan_baseline"' in page
    data = add_form("planned", [("control", 0.5, True), ("treatment", 0.5, False)])
    data.update(plan_metric_type="proportion", plan_baseline="0.1", plan_mde="0.1")
    data.update(plan_daily_units="1000", planned_sample_size="")
    # When it is saved
    response = admin_client.post(f"{EXP}/add/", data, follow=True)
    # Then planned_sample_size is the planner's answer for these inputs and settings
    expected = sample_size(
        "proportion",
        0.1,
        0.1,
        alpha=0.05,
        weights=[0.5, 0.5],
        method="sequential",
        daily_units=1000,
    )
    saved = Experiment.objects.get(key="planned")
    assert saved.planned_sample_size == expected.total_units > 0
    assert (
        f"Planned sample size set to {expected.total_units:,} units" in response.content.decode()
    )
    assert f"about {expected.days_to_max:,} days" in response.content.decode()


def test_create_page__planned_size_typed_in__planner_leaves_it(admin_client) -> None:
    from tests.experiments.test_admin import add_form

    data = add_form("typed", [("control", 0.5, True), ("treatment", 0.5, False)])
    data.update(plan_baseline="0.1", plan_mde="0.1", planned_sample_size="1234")
    admin_client.post(f"{EXP}/add/", data)
    assert Experiment.objects.get(key="typed").planned_sample_size == 1234
