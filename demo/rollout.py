"""The demo's guarded model rollout (issue 10): a candidate model that is 35 % slower at p95 and
fails 2 % more often is rolled back automatically by the real code path.

`model_rollout_demo` creates the experiment through the services (``model_guardrails`` on,
``auto_rollback`` on), then drives simulated users hour by hour: each user is assigned locally
from ``/config`` (as the Python client does), and its app posts an exposure and 1–20 model
calls per user to ``/events`` with the standard model events (``model_call``,
``model_latency_ms``, ``model_error``, ``model_cost_usd``). After each simulated hour the
guardrail monitor's task runs (the task beat schedules, `guardrail_check_task`), which checks
only the guardrails and, on harm, rolls the arm back as the system. Traffic then goes on for
another hour (the rolled-back arm's users get the control) and a snapshot is computed, so the
results page tells the story: the rollout panel, the rollback marker, who and why.

Kept apart from `demo.py`'s own traffic and timing on purpose (its own users, its own
function), so either can change without the other.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from datetime import datetime, timedelta

from django.test import Client
from django.utils import timezone
from variantlab_client.config import LoadedConfig

from analysis.guardrails import guardrail_head
from analysis.services import snapshot_compute_now
from analysis.tasks import guardrail_check_task
from assignment.selectors import assignment_config
from experiments import services
from experiments.models import Experiment

MODEL_EXPERIMENT_KEY = "chat-model-v2"
MODEL_EXPERIMENT = {
    "key": MODEL_EXPERIMENT_KEY,
    "name": "Chat assistant: candidate model v2",
    "hypothesis": "The v2 model answers as well; guardrails catch it if it is slower, "
    "fails more or costs more.",
    "owner": "ml-platform@example.com",
    "model_guardrails": True,
    "variants": [
        {"key": "v1", "weight": 0.5, "is_control": True, "payload": {"model": "chat-v1"}},
        {"key": "v2", "weight": 0.5, "payload": {"model": "chat-v2"}},
    ],
    "analysis": {"auto_rollback": True, "guardrail_check_minutes": 5},
}
# Per arm: latency scale (v2 is 35 % slower at every quantile, p95 included) and error rate.
MODEL_TRUTH = {"v1": (1.0, 0.01), "v2": (1.35, 0.03)}
LATENCY_MEDIAN_MS = 420.0
LATENCY_SIGMA = 0.5
COST_PER_CALL_USD = 0.0015


def model_calls(
    rng: random.Random, unit: str, variant: str, seen: datetime
) -> list[dict[str, object]]:
    """One user's 1–20 model calls as the Python client's `model_call` records them."""
    scale, error_rate = MODEL_TRUTH[variant]
    user_factor = math.exp(rng.gauss(0.0, 0.3))  # some users' requests are slower
    events: list[dict[str, object]] = []
    for call in range(rng.randint(1, 20)):
        at = (seen + timedelta(seconds=5 + 30 * call)).isoformat()
        latency = scale * user_factor * LATENCY_MEDIAN_MS * math.exp(rng.gauss(0, LATENCY_SIGMA))
        base = {
            "type": "outcome",
            "unit_id": unit,
            "timestamp": at,
            "properties": {"experiment": MODEL_EXPERIMENT_KEY, "variant": variant},
        }
        events += [
            {**base, "name": "model_call", "value": 1.0, "event_id": f"{unit}-c{call}"},
            {
                **base,
                "name": "model_latency_ms",
                "value": round(latency, 2),
                "event_id": f"{unit}-l{call}",
            },
            {
                **base,
                "name": "model_cost_usd",
                "value": round(COST_PER_CALL_USD * math.exp(rng.gauss(0, 0.3)), 6),
                "event_id": f"{unit}-$-{call}",
            },
        ]
        if rng.random() < error_rate:
            events.append(
                {**base, "name": "model_error", "value": 1.0, "event_id": f"{unit}-e{call}"}
            )
    return events


def _config(client: Client) -> LoadedConfig:
    response = client.get("/api/v1/config")
    if response.status_code != 200:
        raise RuntimeError(f"/config refused the demo: {response.content!r}")
    return LoadedConfig.parse(response.json(), response["ETag"])


def events_post(client: Client, events: list[dict[str, object]]) -> None:
    """POST `events` to /events in batches of 1000 (its limit); any refusal stops the demo."""
    for start in range(0, len(events), 1000):
        response = client.post(
            "/api/v1/events",
            {"events": events[start : start + 1000]},
            content_type="application/json",
        )
        if response.status_code != 202:
            raise RuntimeError(f"/events refused the demo batch: {response.content!r}")


def model_rollout_demo(
    *,
    client: Client,
    hours: int = 12,
    users_per_hour: int = 160,
    seed: int = 10,
    say: Callable[[str], None] = print,
) -> Experiment:
    """Create and start the model experiment, then simulate hours of traffic, running the
    guardrail monitor's task after each, until the candidate is rolled back (plus one hour)."""
    experiment = Experiment.objects.filter(key=MODEL_EXPERIMENT_KEY).first()
    if experiment is None:
        experiment = services.experiment_save(data=MODEL_EXPERIMENT)
        experiment = services.experiment_start(experiment=experiment)
    rng = random.Random(seed)
    start = timezone.now() - timedelta(hours=hours)
    rolled_back_hour = None
    for hour in range(hours):
        assignment_config.invalidate()
        config = _config(client)
        events: list[dict[str, object]] = []
        for i in range(users_per_hour):
            unit = f"chat-user-{hour}-{i}"
            seen = start + timedelta(hours=hour, seconds=rng.randint(0, 3000))
            got = config.served.assign(unit, {})[MODEL_EXPERIMENT_KEY]
            assert got.variant is not None  # the experiment is in the loaded config
            if got.in_experiment:
                events.append(
                    {
                        "type": "exposure",
                        "unit_id": unit,
                        "experiment": MODEL_EXPERIMENT_KEY,
                        "variant": got.variant,
                        "timestamp": seen.isoformat(),
                    }
                )
            events += model_calls(rng, unit, got.variant, seen)
        events_post(client, events)
        # The monitor's look, as beat schedules it (the chain head it was scheduled after).
        head = guardrail_head(experiment)
        guardrail_check_task.delay(experiment.pk, head.pk if head else None)
        experiment.refresh_from_db()
        rolled = experiment.variants.filter(rolled_back_at__isnull=False).first()
        say(
            f"  {MODEL_EXPERIMENT_KEY} hour {hour + 1}: {users_per_hour} users, guardrails "
            f"checked{'; ' + rolled.key + ' rolled back' if rolled else ''}."
        )
        if rolled is not None:
            if rolled_back_hour is None:
                rolled_back_hour = hour
                say(f"  {MODEL_EXPERIMENT_KEY}: {rolled.rolled_back_reason}")
            elif hour > rolled_back_hour:
                break
    snapshot_compute_now(experiment=experiment)
    return experiment
