"""Seed a realistic demo: ML experiments, metrics, an admin login and an API key."""

from __future__ import annotations

import random

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from experiments import services
from experiments.models import Experiment, Layer, Metric, Status

DEMO_PASSWORD = "variantlab-demo"

METRICS = [
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

EXPERIMENTS = [
    {
        "key": "search-ranker-v2",
        "name": "Search ranker: gradient-boosted v2 vs BM25",
        "hypothesis": "The learned ranker puts better results first: more searches get a click.",
        "owner": "search-team@example.com",
        "planned_sample_size": 40000,
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
        "planned_sample_size": 60000,
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


class Command(BaseCommand):
    help = "Migrate, create a demo admin and API key, and seed demo experiments with traffic."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--units", type=int, default=2000, help="Simulated units to assign.")

    def handle(self, *args: object, units: int, **options: object) -> None:
        call_command("migrate", interactive=False, verbosity=0)
        self._admin()
        with transaction.atomic():
            self._seed()
        self._traffic(units)
        _, raw_key = services.api_key_create(name="demo", scopes=["all"])
        self.stdout.write(self.style.SUCCESS("Demo ready."))
        self.stdout.write(f"  Admin:   http://127.0.0.1:8000/admin/  (admin / {DEMO_PASSWORD})")
        self.stdout.write(f"  API key: {raw_key}")
        self.stdout.write(
            "  Try:     curl -s -H 'Authorization: Bearer <key>' "
            "-H 'Content-Type: application/json' -d '{\"unit_id\": \"u-1\"}' "
            "http://127.0.0.1:8000/api/v1/assign"
        )

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

    def _traffic(self, units: int) -> None:
        from assignment.selectors import assignment_config
        from assignment.services import unit_assign

        assignment_config.invalidate()
        rng = random.Random(7)
        for i in range(units):
            attributes = {
                "country": rng.choice(["US", "US", "CA", "GB", "DE", "FR"]),
                "app_version": rng.choice(["5.1.0", "5.2.0", "5.3.1"]),
            }
            unit_assign(unit_id=f"demo-user-{i}", attributes=attributes)
        running = Experiment.objects.filter(status=Status.RUNNING).count()
        self.stdout.write(
            f"Assigned {units} simulated users across {running} running experiments."
        )
