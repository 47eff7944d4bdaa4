"""Seed a realistic demo: ML experiments, metrics, an admin login and an API key."""

from __future__ import annotations

import contextlib
import logging
import random
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from unittest import mock
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from django.contrib.auth import get_user_model
from django.core import mail
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser
from django.core.wsgi import get_wsgi_application
from django.db import connections, transaction
from django.test import Client
from django.test.utils import override_settings
from django.urls import reverse
from django.utils import timezone
from variantlab_client import Client as VariantlabClient

from analysis.models import Snapshot
from analysis.services import snapshot_compute_now
from assignment.selectors import assignment_config
from core.auth import active_keys
from demo.rollout import events_post, model_rollout_demo
from experiments import services
from experiments.models import Experiment, Layer, Metric, Status

DEMO_PASSWORD = "variantlab-demo"

METRICS: list[dict[str, Any]] = [
    {
        "key": "search_click",
        "name": "Search click-through",
        "event": "search_click",
        "aggregation": "conversion",
        "direction": "increase",
    },
    {
        "key": "purchase",
        "name": "Purchase rate",
        "event": "purchase",
        "aggregation": "conversion",
        "direction": "increase",
        "conversion_window_hours": 72,
    },
    {
        "key": "revenue",
        "name": "Revenue per user",
        "event": "revenue",
        "aggregation": "sum",
        "direction": "increase",
        "winsorize_percentile": 99.0,
    },
    {
        "key": "model_latency_ms",
        "name": "Model latency (ms)",
        "event": "model_latency_ms",
        "aggregation": "mean",
        "direction": "decrease",
        "cuped_lookback_days": 0,
    },
    {
        "key": "recs_ctr",
        "name": "Recommendation CTR",
        "event": "rec_click",
        "aggregation": "ratio",
        "denominator_event": "rec_impression",
        "direction": "increase",
    },
]

EXPERIMENTS: list[dict[str, Any]] = [
    {
        "key": "search-ranker-v2",
        "name": "Search ranker: gradient-boosted v2 vs BM25",
        "hypothesis": "The learned ranker puts better results first: more searches get a click.",
        "owner": "search-team@example.com",
        "planned_sample_size": 6000,
        "variants": [
            {
                "key": "control",
                "name": "BM25",
                "weight": 0.5,
                "is_control": True,
                "payload": {"model": "bm25", "version": "1.0.0"},
            },
            {
                "key": "ltr-v2",
                "name": "LambdaMART v2",
                "weight": 0.5,
                "payload": {"model": "lambdamart", "version": "2.3.1"},
            },
        ],
        "metrics": [
            {"metric": "search_click", "role": "primary"},
            {"metric": "purchase", "role": "secondary"},
            {"metric": "model_latency_ms", "role": "guardrail"},
        ],
        "layer": {"key": "search", "start": 0.0, "end": 0.5},
    },
    {
        "key": "recs-two-tower",
        "name": "Home recommendations: two-tower retrieval",
        "hypothesis": "Two-tower retrieval surfaces fresher items and lifts recommendation CTR.",
        "owner": "recs-team@example.com",
        "coverage": 0.8,
        "planned_sample_size": 8000,
        "condition": {"country": {"$in": ["US", "CA", "GB"]}, "app_version": {"$vgte": "5.2.0"}},
        "variants": [
            {
                "key": "control",
                "name": "Matrix factorisation",
                "weight": 0.34,
                "is_control": True,
                "payload": {"model": "mf", "version": "4.1"},
            },
            {
                "key": "two-tower",
                "name": "Two-tower",
                "weight": 0.33,
                "payload": {"model": "two_tower", "version": "1.0.0", "embedding_dim": 128},
            },
            {
                "key": "two-tower-rerank",
                "name": "Two-tower + reranker",
                "weight": 0.33,
                "payload": {"model": "two_tower", "version": "1.0.0", "reranker": "xgb-7"},
            },
        ],
        "metrics": [
            {"metric": "recs_ctr", "role": "primary"},
            {"metric": "revenue", "role": "secondary"},
            {"metric": "model_latency_ms", "role": "guardrail"},
        ],
        "forced_assignments": {"qa-recs-1": "two-tower-rerank"},
    },
    {
        "key": "search-spellcheck",
        "name": "Query spell-correction model",
        "hypothesis": "Correcting misspelt queries reduces zero-result searches.",
        "owner": "search-team@example.com",
        "variants": [
            {
                "key": "control",
                "weight": 0.5,
                "is_control": True,
                "payload": {"spellcheck": False},
            },
            {
                "key": "seq2seq",
                "weight": 0.5,
                "payload": {"spellcheck": True, "model": "t5-small-spell", "version": "0.4"},
            },
        ],
        "metrics": [{"metric": "search_click", "role": "primary"}],
        "layer": {"key": "search", "start": 0.5, "end": 1.0},
    },
]


# The true effects the simulation plants, so a newcomer can see the analysis find them.
# Per experiment and variant: probability of each conversion event, mean of value events.
TRUTH = {
    "search-ranker-v2": {
        "control": {"search_click": 0.30, "purchase": 0.050, "latency": 80.0},
        "ltr-v2": {"search_click": 0.36, "purchase": 0.056, "latency": 80.0},
    },
    "recs-two-tower": {
        "control": {"ctr": 0.050, "purchase": 0.040, "latency": 60.0},
        "two-tower": {"ctr": 0.056, "purchase": 0.042, "latency": 64.0},
        "two-tower-rerank": {"ctr": 0.062, "purchase": 0.045, "latency": 95.0},
    },
    "search-spellcheck": {
        "control": {"search_click": 0.30, "latency": 70.0},
        "seq2seq": {"search_click": 0.31, "latency": 72.0},
    },
}
# A client bug in the spell-check rollout drops a quarter of treatment exposures: an SRM.
DROPPED_EXPOSURES = {("search-spellcheck", "seq2seq"): 0.25}
DAYS = 7
SITE = "http://127.0.0.1:8000"


@contextlib.contextmanager
def simulated_clock(at: datetime) -> Iterator[None]:
    """Django's clock reads `at` inside the block: rows stamped with `timezone.now()` (start
    times, snapshots, first SRM flags) get the simulated day instead of the real minute."""
    with mock.patch("django.utils.timezone.now", lambda: at):
        yield


class Command(BaseCommand):
    help = (
        "Migrate, create a demo admin and API key, seed ML experiments and drive simulated "
        "users with known effects through /assign, /events, the workers and snapshots."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--units", type=int, default=12000, help="Simulated users.")

    def handle(self, *args: object, units: int, **options: object) -> None:
        call_command("migrate", interactive=False, verbosity=0)
        # Only what a newcomer needs on screen: no per-task lines from eager Celery, no broker
        # notice, no alert e-mails printed by the console backend (they are counted instead).
        quiet = {"celery": logging.WARNING, "kombu": logging.ERROR, "analysis": logging.ERROR}
        for name, level in quiet.items():
            logging.getLogger(name).setLevel(level)
        self._admin()
        fresh = not Snapshot.objects.exists()
        week_start = timezone.now() - timedelta(days=DAYS)
        # The experiments start on the first simulated day, so "days running" is the week.
        with simulated_clock(week_start), transaction.atomic():
            self._seed()
        _, raw_key = services.api_key_create(name="demo", scopes=["all"])
        sent = 0
        if fresh:
            self.stdout.write(f"Simulating a week of traffic: {units:,} users…")
            with override_settings(EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend"):
                mail.outbox = []
                self._traffic(units, raw_key, week_start)
                self._model_rollout(raw_key)
                sent = len(mail.outbox)
        self._report(raw_key, sent)

    def _report(self, raw_key: str, sent: int) -> None:
        self.stdout.write(self.style.SUCCESS("Demo ready."))
        for experiment in Experiment.objects.order_by("id"):
            state = experiment.get_status_display().lower()
            if experiment.shipped_variant:
                state += f", shipped {experiment.shipped_variant}"
            for variant in experiment.variants.filter(rolled_back_at__isnull=False):
                state += f", {variant.key} rolled back"
            results = reverse("admin:experiments_experiment_results", args=[experiment.pk])
            self.stdout.write(f"  {experiment.key:<20} {state:<28} {SITE}{results}")
        if sent:
            self.stdout.write(
                f"  {sent} alert e-mail{'s' if sent != 1 else ''} went to the owners "
                "(guardrail harm, sample ratio mismatch); the results pages show why."
            )
        self.stdout.write(f"Admin:   {SITE}/admin/  (user admin, password {DEMO_PASSWORD})")
        self.stdout.write(f"API key: {raw_key}  (shown once; create more in the admin)")
        self.stdout.write("Ask which variant unit u-1 gets, once the server runs:")
        self.stdout.write(
            f"  curl -s -H 'Authorization: Bearer {raw_key}' "
            "-H 'Content-Type: application/json' -d '{\"unit_id\": \"u-1\"}' "
            f"{SITE}/api/v1/assign"
        )

    def _model_rollout(self, raw_key: str) -> None:
        """Issue 10's story: a slower, flakier candidate model rolled back automatically
        (demo/rollout.py; its own users and timing)."""
        client = Client(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
        # Quiet: the report below says which arm was rolled back.
        model_rollout_demo(client=client, say=lambda line: None)

    def _admin(self) -> None:
        user_model = get_user_model()
        if not user_model.objects.filter(username="admin").exists():
            user_model.objects.create_superuser("admin", "admin@example.com", DEMO_PASSWORD)

    def _seed(self) -> None:
        Layer.objects.get_or_create(key="search", defaults={"name": "Search page"})
        for metric in METRICS:
            if not Metric.objects.filter(key=metric["key"]).exists():
                services.metric_save(data=metric)
        for spec in EXPERIMENTS:
            if Experiment.objects.filter(key=spec["key"]).exists():
                continue
            experiment = services.experiment_save(data=spec)
            services.experiment_start(experiment=experiment)

    def _traffic(self, units: int, raw_key: str, week_start: datetime) -> None:
        """Simulated users arrive over a week; each day ends with a snapshot of each experiment.

        Everything is stamped on its simulated day: the events carry their own timestamps
        (through /events, as an app would send them), and the snapshots are computed under a
        clock set to the end of their day, so the charts and "days running" show a week.
        """
        assignment_config.invalidate()
        active_keys.invalidate()
        client = Client(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
        rng = random.Random(7)
        per_day = max(1, units // DAYS)
        app, server = _app_client(raw_key)
        for day in range(DAYS):
            day_start = week_start + timedelta(days=day)
            # The day's end: after its last outcome (users arrive in the first 14 hours and
            # act within 10 hours), so no event is in the simulated future.
            with simulated_clock(day_start + timedelta(days=1)):
                events: list[dict] = []
                for i in range(day * per_day, (day + 1) * per_day):
                    events += self._user(app, rng, f"demo-user-{i}", day_start)
                events_post(client, events)
                for experiment in Experiment.objects.filter(status=Status.RUNNING):
                    snapshot_compute_now(experiment=experiment)
                if day == DAYS - 1:
                    # The ranker's winner ships at the end of the week.
                    ranker = Experiment.objects.get(key="search-ranker-v2")
                    services.experiment_stop(experiment=ranker, shipped_variant="ltr-v2")
        app.close(timeout=5)
        server.shutdown()

    def _user(self, app: VariantlabClient, rng: random.Random, unit: str, day_start) -> list[dict]:
        attributes = {
            "country": rng.choice(["US", "US", "CA", "GB", "DE", "FR"]),
            "app_version": rng.choice(["5.1.0", "5.2.0", "5.3.1"]),
        }
        events = []
        seen = day_start + timedelta(seconds=rng.randint(0, 50_000))
        # Assigned locally by the Python client, as a real app does (the same answers as
        # POST /assign).
        for key, got in app.assign(unit, attributes).items():
            variant = got.variant
            if not got.in_experiment or variant is None:  # in an experiment means a variant
                continue
            if rng.random() >= 1 - DROPPED_EXPOSURES.get((key, variant), 0.0):
                continue  # the app lost this exposure: it never reaches Variantlab
            events.append(
                {
                    "type": "exposure",
                    "unit_id": unit,
                    "experiment": key,
                    "variant": variant,
                    "timestamp": seen.isoformat(),
                    "attributes": attributes,
                }
            )
            events += _outcomes(rng, unit, TRUTH[key][variant], seen)
        return events


def _app_client(raw_key: str) -> tuple[VariantlabClient, WSGIServer]:
    """The simulated app's variantlab_client.Client, on this project served over HTTP on a
    free loopback port (a thread), loaded and ready.

    The app posts its exposure events itself (`log_exposures=False`) rather than through the
    client: it backdates them over the simulated week and loses some on purpose (the SRM
    experiment).
    """

    class Quiet(WSGIRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    server = make_server("127.0.0.1", 0, get_wsgi_application(), handler_class=Quiet)

    def serve() -> None:
        try:
            server.serve_forever()
        finally:
            connections.close_all()  # this thread's: only it can close them

    threading.Thread(target=serve, name="demo-server", daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}"
    app = VariantlabClient(url, raw_key, refresh_seconds=60, log_exposures=False)
    if not app.wait_ready(30):
        raise RuntimeError(f"the demo's client could not load {url}/api/v1/config")
    return app, server


def _outcomes(rng: random.Random, unit: str, truth: dict, seen) -> list[dict]:
    later = (seen + timedelta(minutes=rng.randint(1, 600))).isoformat()
    events = [
        {
            "type": "outcome",
            "unit_id": unit,
            "name": "model_latency_ms",
            "value": round(rng.gauss(truth["latency"], 12.0), 1),
            "timestamp": later,
            "event_id": f"lat-{unit}-{rng.random()}",
        }
    ]
    for name in ("search_click", "purchase"):
        if name in truth and rng.random() < truth[name]:
            events.append(
                {
                    "type": "outcome",
                    "unit_id": unit,
                    "name": name,
                    "timestamp": later,
                    "event_id": f"{name}-{unit}-{rng.random()}",
                }
            )
            if name == "purchase":
                events.append(
                    {
                        "type": "outcome",
                        "unit_id": unit,
                        "name": "revenue",
                        "value": round(rng.gammavariate(2.0, 20.0), 2),
                        "timestamp": later,
                        "event_id": f"rev-{unit}",
                    }
                )
    if "ctr" in truth:
        impressions = rng.randint(3, 15)
        clicks = sum(rng.random() < truth["ctr"] for _ in range(impressions))
        events.append(
            {
                "type": "outcome",
                "unit_id": unit,
                "name": "rec_impression",
                "value": impressions,
                "timestamp": later,
                "event_id": f"imp-{unit}",
            }
        )
        if clicks:
            events.append(
                {
                    "type": "outcome",
                    "unit_id": unit,
                    "name": "rec_click",
                    "value": clicks,
                    "timestamp": later,
                    "event_id": f"clk-{unit}",
                }
            )
    return events
