"""Agreement (issue 11): the Python client and an unmodified GrowthBook SDK fed /features give
the answers of POST /assign, for every experiment shape, paused, shipped, rolled back and
archived."""

from __future__ import annotations

import pytest
from django.utils import timezone
from growthbook import GrowthBook
from variantlab_client import FALLBACK, Client

from core.config_version import config_version_bump
from demo.management.commands import demo
from experiments import services
from experiments.services import api_key_create
from tests.factories import LayerFactory, make_experiment

UNITS = 5000
THREE = [
    {"key": "control", "weight": 0.2, "is_control": True, "payload": {"color": "blue"}},
    {"key": "green", "weight": 0.3, "payload": {"color": "green"}},
    {"key": "red", "weight": 0.5, "payload": {"color": "red"}},
]
DEMO_CONDITION = {"country": {"$in": ["US", "CA", "GB"]}, "app_version": {"$vgte": "5.2.0"}}


def _experiments() -> None:
    """The demo's three experiments, and one experiment per shape: weights, coverage,
    targeting, layers (two sharing one, v1 hash), QA overrides, paused, shipped, rolled back;
    and two archived ones (one had shipped), which nothing may serve any more."""
    LayerFactory(key="search", name="Search page")
    for metric in demo.METRICS:
        services.metric_save(data=metric)
    for spec in demo.EXPERIMENTS:
        services.experiment_start(experiment=services.experiment_save(data=spec))
    LayerFactory(key="home")
    make_experiment("plain")
    make_experiment("weights", variants=THREE)
    make_experiment("coverage", coverage=0.6)
    make_experiment("targeted", condition=DEMO_CONDITION, coverage=0.8)
    make_experiment("layer-a", layer={"key": "home", "start": 0.0, "end": 0.5})
    make_experiment("layer-b", layer={"key": "home", "start": 0.5, "end": 1.0}, hash_version=1)
    make_experiment("forced", forced_assignments={"unit-7": "treatment", "unit-8": "control"})
    services.experiment_pause(experiment=make_experiment("paused"))
    services.experiment_stop(experiment=make_experiment("shipped"), shipped_variant="treatment")
    rolled = make_experiment("rolled", variants=THREE, coverage=0.9)
    rolled.variants.filter(key="green").update(rolled_back_at=timezone.now())
    shipped_then_archived = make_experiment("archived-shipped")
    services.experiment_stop(experiment=shipped_then_archived, shipped_variant="treatment")
    services.experiment_archive(experiment=shipped_then_archived)
    services.experiment_archive(
        experiment=services.experiment_stop(experiment=make_experiment("archived"))
    )
    config_version_bump()


# Named on every 10th unit: served experiments and the archived ones, which the server calls
# unknown and the client answers with `fallback` (the app's own default).
NAMED = ["shipped", "paused", "rolled", "archived-shipped", "archived"]
ARCHIVED = {"archived-shipped", "archived"}


def _attributes(i: int) -> dict:
    return {
        "country": ["US", "FR", "GB", "CA"][i % 4],
        "app_version": ["5.1.9", "5.2.0", "6.0.1"][i % 3],
    }


@pytest.mark.django_db(transaction=True)
def test_client_and_growthbook__5000_units__agree_with_post_assign(live_server, api) -> None:
    # Given every shape of experiment, a client and a GrowthBook SDK on the live server
    _experiments()
    _, app_key = api_key_create(name="app", scopes=["assign", "events"])
    _, sdk_key = api_key_create(name="sdk", scopes=["assign"])
    client = Client(
        live_server.url, app_key, refresh_seconds=3600, flush_seconds=3600, max_queue=200_000
    )
    growthbook = GrowthBook(api_host=live_server.url, client_key=sdk_key)
    try:
        assert client.wait_ready(30)
        growthbook.load_features()  # GET /api/features/{key}, as GrowthBook's SDKs do
        checked = {"client": 0, "growthbook": 0}
        reasons: set[str] = set()
        for i in range(UNITS):
            unit, attributes = f"unit-{i}", _attributes(i)
            # When the same unit is assigned by the server, the client and the SDK
            served = api.post(
                "/api/v1/assign",
                {"unit_id": unit, "attributes": attributes, "log_exposure": False},
                format="json",
            ).json()["assignments"]
            local = client.assign(unit, attributes)
            # Then the client gives exactly the server's answers, reasons included
            assert {k: vars_of(a) for k, a in local.items()} == served, unit
            checked["client"] += len(served)
            reasons |= {a["reason"] for a in served.values()}
            assert not ARCHIVED & set(local)
            if i % 10 == 0:
                named = api.post(
                    "/api/v1/assign",
                    {
                        "unit_id": unit,
                        "attributes": attributes,
                        "experiments": NAMED,
                        "log_exposure": False,
                    },
                    format="json",
                ).json()
                assert sorted(named["unknown"]) == sorted(ARCHIVED)
                local_named = client.assign(unit, attributes, NAMED)
                assert {k: local_named[k] for k in ARCHIVED} == dict.fromkeys(ARCHIVED, FALLBACK)
                assert {
                    k: vars_of(a) for k, a in local_named.items() if k not in ARCHIVED
                } == named["assignments"], unit
                growthbook.set_attributes({"id": unit, **attributes})
                for key in ARCHIVED:
                    result = growthbook.eval_feature(key)
                    assert (result.value, result.source) == (None, "unknownFeature")
            # And the SDK gets the same payload, variant and in_experiment
            growthbook.set_attributes({"id": unit, **attributes})
            for key, expected in served.items():
                result = growthbook.eval_feature(key)
                experiment = result.experimentResult
                in_experiment = bool(experiment and experiment.inExperiment)
                assert (result.value, in_experiment) == (
                    expected["payload"],
                    expected["in_experiment"],
                ), (unit, key)
                if in_experiment:
                    assert experiment.key == expected["variant"], (unit, key)
                checked["growthbook"] += 1
        # Every reason of the contract was met (shapes that never fire would prove nothing)
        assert reasons == {
            "assigned",
            "not_running",
            "shipped",
            "forced",
            "not_targeted",
            "not_in_layer",
            "not_in_traffic",
            "rolled_back",
        }
        served = 13  # 3 demo + 10 shapes: all of them, for every unit
        assert checked == {"client": UNITS * served, "growthbook": UNITS * served}
        # And the client's exposures were all taken by the server
        assert client.flush(timeout=300)
        assert client.dropped_events == 0
    finally:
        client.close(timeout=1)
        growthbook.destroy()


def vars_of(assignment) -> dict:
    return {
        "variant": assignment.variant,
        "payload": assignment.payload,
        "in_experiment": assignment.in_experiment,
        "reason": assignment.reason,
    }
