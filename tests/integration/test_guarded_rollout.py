"""Guarded rollout on PostgreSQL, Redis and real processes (issue 10; docs/api.md §6, §10).

A gunicorn server takes the traffic, a Celery worker with beat runs the guardrail monitor,
ingests events and delivers alerts. Simulated users flow through /assign and /events while
the candidate model is slower (p95) and fails more; the monitor's harm test rolls it back on
its own. Afterwards /assign, and GrowthBook's Python SDK evaluating /config and /features
locally, serve the control with reason `rolled_back` to exactly the candidate's units; the
control's units and another experiment's units are untouched. The audit entry exists and the
alert reached a webhook receiver on 127.0.0.1.
"""

from __future__ import annotations

import json
import math
import random
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from growthbook import Experiment as GBExperiment
from growthbook import GrowthBook

from audit.models import AuditEntry
from experiments import services
from experiments.models import Experiment, Variant
from tests.factories import make_experiment
from tests.integration.conftest import wait_until

pytestmark = pytest.mark.integration

KEY = "chat-rollout"
PROBES = [f"probe-{i}" for i in range(400)]
# Per arm: latency scale and error rate; the candidate is plainly harmful.
TRUTH = {"control": (1.0, 0.01), "treatment": (1.8, 0.08)}


class Receiver:
    """A webhook receiver on the loopback that keeps every JSON body it is sent."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        received = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                received.append(json.loads(self.rfile.read(length) or b"{}"))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _call(base: str, key: str, method: str, path: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"{base}{path}",
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        payload = response.read()
    return json.loads(payload) if payload else None


def _assign(base: str, key: str, unit: str, log: bool = False) -> dict[str, dict]:
    body = {"unit_id": unit, "log_exposure": log}
    return _call(base, key, "POST", "/api/v1/assign", body)["assignments"]


def _model_events(rng: random.Random, unit: str, variant: str) -> list[dict]:
    scale, error_rate = TRUTH[variant]
    factor = math.exp(rng.gauss(0, 0.3))
    events = []
    for call in range(rng.randint(1, 20)):
        base = {"type": "outcome", "unit_id": unit}
        latency = scale * factor * 300.0 * math.exp(rng.gauss(0, 0.5))
        events += [
            {**base, "name": "model_call", "value": 1.0, "event_id": f"{unit}-c{call}"},
            {**base, "name": "model_latency_ms", "value": latency, "event_id": f"{unit}-l{call}"},
            {**base, "name": "model_cost_usd", "value": 0.001, "event_id": f"{unit}-u{call}"},
        ]
        if rng.random() < error_rate:
            events.append(
                {**base, "name": "model_error", "value": 1.0, "event_id": f"{unit}-e{call}"}
            )
    return events


# Enough users for the harm to show at the monitor's first looks (about 1,000 per arm).
BURST_USERS = 2000


class Traffic(threading.Thread):
    """Users arriving until stopped: /assign (exposure logged), then their model calls."""

    def __init__(self, base: str, key: str) -> None:
        super().__init__(daemon=True)
        self.base, self.key = base, key
        self.stop = threading.Event()
        self.users = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        rng = random.Random(3)
        try:
            while not self.stop.is_set():
                if self.users >= BURST_USERS:
                    # Then a trickle: traffic keeps flowing, but the data (and each monitor
                    # look) stays small however long the first look takes on a busy machine.
                    self.stop.wait(1.0)
                events: list[dict] = []
                for _ in range(20):
                    unit = f"user-{self.users}"
                    self.users += 1
                    got = _assign(self.base, self.key, unit, log=True)[KEY]
                    events += _model_events(rng, unit, got["variant"])
                for start in range(0, len(events), 500):  # /events takes 1,000 at most
                    batch = {"events": events[start : start + 500]}
                    _call(self.base, self.key, "POST", "/api/v1/events", batch)
        except BaseException as exc:  # surfaced by the test
            self.error = exc


def _growthbook_config_variant(config: dict, unit: str) -> tuple[str, bool]:
    """GrowthBook's SDK on one /config experiment, with its explicit ranges."""
    experiment = GBExperiment(
        key=config["key"],
        variations=[v["key"] for v in config["variants"]],
        weights=[v["weight"] for v in config["variants"]],
        ranges=[tuple(r) for r in config["ranges"]],
        coverage=config["coverage"],
        hashVersion=config["hash_version"],
        seed=config["seed"],
    )
    result = GrowthBook(attributes={"id": unit}).run(experiment)
    control = next(v["key"] for v in config["variants"] if v["is_control"])
    return (result.value if result.inExperiment else control), bool(result.inExperiment)


def test_guarded_rollout__harmful_arm_rolled_back_under_traffic(
    workers, web_server, transactional_db
) -> None:
    _, key = services.api_key_create(name="it", scopes=["all"])
    bystander = make_experiment("bystander")
    experiment = make_experiment(
        KEY,
        model_guardrails=True,
        owner="",
        analysis={"auto_rollback": True, "guardrail_check_minutes": 1},
    )
    with Receiver() as receiver:
        workers(
            "rollout", beat=True, extra_env={"VARIANTLAB_ALERT_WEBHOOKS": receiver.url}
        ).start()
        server = web_server()
        base = server.url
        # Given what every probe unit is served before (no exposure logged for them)
        before = {unit: _assign(base, key, unit) for unit in PROBES}
        treated = {u for u in PROBES if before[u][KEY]["variant"] == "treatment"}
        assert 100 < len(treated) < 300
        traffic = Traffic(base, key)
        traffic.start()
        try:
            # When the monitor (beat, every minute) finds harm, it rolls the candidate back
            rolled = wait_until(
                lambda: Variant.objects.filter(
                    experiment=experiment, key="treatment", rolled_back_at__isnull=False
                ).exists(),
                timeout=300,
                interval=1.0,
            )
            users_at_rollback = traffic.users
        finally:
            traffic.stop.set()
            traffic.join(30)
        assert traffic.error is None, traffic.error
        assert rolled, f"no rollback after {traffic.users} users"
        assert users_at_rollback > 0

        # Then /assign serves exactly the candidate's units the control, reason rolled_back
        def reloaded() -> bool:
            unit = next(iter(treated))
            return _assign(base, key, unit)[KEY]["reason"] == "rolled_back"

        assert wait_until(reloaded, timeout=30, interval=0.5)
        config = {e["key"]: e for e in _call(base, key, "GET", "/api/v1/config")["experiments"]}
        features = _call(base, key, "GET", "/api/v1/features")["features"]
        sdk = GrowthBook(features=features)
        for unit in PROBES:
            after = _assign(base, key, unit)
            was = before[unit][KEY]
            if unit in treated:
                assert after[KEY]["variant"] == "control", unit
                assert after[KEY]["reason"] == "rolled_back", unit
                assert after[KEY]["in_experiment"] is False, unit
                assert after[KEY]["payload"] == {"model": "ranker-v1"}, unit  # the control's
            else:
                assert after[KEY] == was, unit
            # nothing else moved
            assert after["bystander"] == before[unit]["bystander"], unit
            # GrowthBook's SDK on /config (explicit ranges) and on /features agrees
            variant, in_experiment = _growthbook_config_variant(config[KEY], unit)
            assert (variant, in_experiment) == (after[KEY]["variant"], after[KEY]["in_experiment"])
            sdk.set_attributes({"id": unit})
            result = sdk.eval_feature(KEY)
            gb_in = bool(result.experimentResult and result.experimentResult.inExperiment)
            assert (result.value, gb_in) == (after[KEY]["payload"], after[KEY]["in_experiment"])
            bystander_variant, _ = _growthbook_config_variant(config["bystander"], unit)
            assert bystander_variant == before[unit]["bystander"]["variant"]

        # The audit log has the automatic rollback, and the webhook receiver got the alert
        entry = AuditEntry.objects.get(action="rollback", experiment_key=KEY)
        assert entry.actor_type == "system"
        assert entry.object_key == f"{KEY}:treatment"
        assert entry.reason.startswith("guardrail model_")
        assert wait_until(
            lambda: any(b.get("type") == "rollback" for b in receiver.bodies), timeout=60
        ), receiver.bodies
        alert = next(b for b in receiver.bodies if b.get("type") == "rollback")
        assert (alert["experiment"], alert["variant"]) == (KEY, "treatment")
        assert alert["metric"].startswith("model_") and alert["text"]
    # Only the candidate was rolled back; the other experiment is as it was
    assert list(
        Variant.objects.filter(rolled_back_at__isnull=False).values_list("experiment__key", "key")
    ) == [(KEY, "treatment")]
    bystander.refresh_from_db()
    assert bystander.status == "running"
    assert Experiment.objects.get(key=KEY).status == "running"
