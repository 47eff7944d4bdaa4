"""Roles (groups made by audit/0003): every admin page and action, per role, is allowed or 403.

"Allowed" is 200 (a page) or 302 (a form or button that did its work); anything else fails.
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

from experiments.models import Experiment, Status
from tests.factories import (
    ApiKeyFactory,
    LayerFactory,
    MetricFactory,
    make_experiment,
    staff_client,
)

pytestmark = pytest.mark.django_db

ROLES = ("Viewer", "Experimenter", "Admin")
V, E, A = "Viewer", "Experimenter", "Admin"


@pytest.fixture
def world():
    experiment = make_experiment("exp", start=False)
    running = make_experiment("live")
    metric = MetricFactory(key="m")
    layer = LayerFactory(key="l")
    key = ApiKeyFactory(name="k", scopes=["read"], prefix="p", hashed_key="h")
    return {"e": experiment.pk, "r": running.pk, "m": metric.pk, "l": layer.pk, "k": key.pk}


EXP = "/admin/experiments/experiment"
# (name, method, url template, form data, roles allowed)
CASES = [
    ("admin index", "get", "/admin/", None, {V, E, A}),
    ("experiment list", "get", f"{EXP}/", None, {V, E, A}),
    ("experiment view", "get", f"{EXP}/{{e}}/change/", None, {V, E, A}),
    ("experiment history", "get", f"{EXP}/{{e}}/history/", None, {V, E, A}),
    ("dashboard", "get", f"{EXP}/dashboard/", None, {V, E, A}),
    ("results page", "get", f"{EXP}/{{r}}/results/", None, {V, E, A}),
    ("export page", "get", f"{EXP}/{{r}}/export/", None, {V, E, A}),
    ("export download", "get", f"{EXP}/{{r}}/export/?level=units&format=csv", None, {V, E, A}),
    ("experiment add form", "get", f"{EXP}/add/", None, {E, A}),
    ("start button", "post", f"{EXP}/{{e}}/move/start/", {}, {E, A}),
    (
        "pause action",
        "post",
        f"{EXP}/",
        {"action": "pause_selected", "_selected_action": "{r}"},
        {E, A},
    ),
    ("archive button", "post", f"{EXP}/{{r}}/move/archive/", {}, {E, A}),
    (
        "archive action",
        "post",
        f"{EXP}/",
        {"action": "archive_selected", "_selected_action": "{r}"},
        {E, A},
    ),
    ("analyze button", "post", f"{EXP}/{{r}}/analyze/", {}, {E, A}),
    ("planner page", "get", f"{EXP}/{{e}}/plan/", None, {V, E, A}),
    (
        "planner: use the plan",
        "post",
        f"{EXP}/{{e}}/plan/",
        {
            "metric_type": "proportion",
            "baseline": "0.1",
            "relative_mde": "0.1",
            "power": "0.8",
            "use": "1",
        },
        {E, A},
    ),
    (
        "rollback button",
        "post",
        f"{EXP}/{{r}}/rollback/treatment/",
        {"reason": "slower model"},
        {E, A},
    ),
    ("experiment delete", "get", f"{EXP}/{{e}}/delete/", None, {A}),
    ("metric list", "get", "/admin/experiments/metric/", None, {V, E, A}),
    ("metric add form", "get", "/admin/experiments/metric/add/", None, {E, A}),
    ("metric delete", "get", "/admin/experiments/metric/{m}/delete/", None, {A}),
    ("layer list", "get", "/admin/experiments/layer/", None, {V, E, A}),
    ("layer add form", "get", "/admin/experiments/layer/add/", None, {A}),
    (
        "layer change",
        "post",
        "/admin/experiments/layer/{l}/change/",
        {"name": "n", "description": ""},
        {A},
    ),
    ("api key list", "get", "/admin/experiments/apikey/", None, {A}),
    ("api key add form", "get", "/admin/experiments/apikey/add/", None, {A}),
    (
        "api key change",
        "post",
        "/admin/experiments/apikey/{k}/change/",
        {"name": "k2", "scopes": ["read"], "is_active": "on"},
        {A},
    ),
    ("audit list", "get", "/admin/audit/auditentry/", None, {V, E, A}),
    ("audit add", "get", "/admin/audit/auditentry/add/", None, set()),
    ("dead letters", "get", "/admin/events/deadletter/", None, {E, A}),
    ("outcomes", "get", "/admin/events/outcome/", None, {E, A}),
    ("users", "get", "/admin/auth/user/", None, {A}),
    ("groups", "get", "/admin/auth/group/", None, {A}),
]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(
    ("name", "method", "url", "data", "allowed"), CASES, ids=[c[0] for c in CASES]
)
def test_roles__admin_page_or_action__allowed_or_403(
    world, role, name, method, url, data, allowed
) -> None:
    client = staff_client(role)
    url = url.format(**world)
    if data is not None:
        data = {k: (v.format(**world) if isinstance(v, str) else v) for k, v in data.items()}
    response = getattr(client, method)(url, data) if method == "post" else client.get(url)
    if role in allowed:
        assert response.status_code in (200, 302), (role, name, response.status_code)
        if response.status_code == 302:
            assert "/login/" not in response["Location"], (role, name)
    else:
        assert response.status_code == 403, (role, name, response.status_code)


def test_roles__viewer_start_and_action__nothing_changed(world) -> None:
    client = staff_client("Viewer")
    client.post(f"{EXP}/{world['e']}/move/start/")
    client.post(f"{EXP}/", {"action": "pause_selected", "_selected_action": world["r"]})
    assert Experiment.objects.get(pk=world["e"]).status == Status.DRAFT
    assert Experiment.objects.get(pk=world["r"]).status == Status.RUNNING


def test_roles__experimenter_start__done(world) -> None:
    staff_client("Experimenter").post(f"{EXP}/{world['e']}/move/start/")
    assert Experiment.objects.get(pk=world["e"]).status == Status.RUNNING


def test_roles__groups_exist_after_migrations() -> None:
    assert set(Group.objects.values_list("name", flat=True)) >= set(ROLES)
    assert (
        not Group.objects.get(name="Viewer")
        .permissions.filter(codename__startswith="change_")
        .exists()
    )
