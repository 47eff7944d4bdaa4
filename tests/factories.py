"""factory_boy factories, one per model of the project's apps, and a helper that builds
experiments through the real services.

Each factory fills the fields a row needs and leaves every other field at the model's own
default, so `XFactory(field=...)` writes what `X.objects.create(field=..., <required>)` would.
`tests/test_factories.py` checks that every model has one and that each builds a valid row.
Experiments that should behave like real ones (variants, metrics, a config version bump, the
audit log) come from `make_experiment`, which goes through `experiments.services`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import factory
from django.contrib.auth.models import Group, User
from django.test import Client

from analysis.models import GuardrailCheck, GuardrailCheckSource, Snapshot, SnapshotComparison
from audit.models import ActorType, AuditEntry
from core.models import ConfigVersion
from events.models import DeadLetter, Exposure, ExposureEvent, Outcome
from experiments import services
from experiments.models import (
    ApiKey,
    Experiment,
    ExperimentMetric,
    ForcedAssignment,
    Layer,
    Metric,
    Variant,
)

TWO_ARMS = [
    {"key": "control", "weight": 0.5, "is_control": True, "payload": {"model": "ranker-v1"}},
    {"key": "treatment", "weight": 0.5, "payload": {"model": "ranker-v2"}},
]
# Event timestamps a test does not care about: fixed, so runs are reproducible.
EVENT_TIME = dt.datetime(2024, 1, 2, tzinfo=dt.UTC)


# core


class ConfigVersionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ConfigVersion


# experiments


class LayerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Layer

    key = factory.Sequence(lambda n: f"layer-{n}")
    name = factory.Faker("word")


class MetricFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Metric

    key = factory.Sequence(lambda n: f"metric-{n}")
    name = factory.Faker("sentence", nb_words=3)
    event = factory.Sequence(lambda n: f"event_{n}")
    aggregation = "conversion"


class ExperimentFactory(factory.django.DjangoModelFactory):
    """A bare experiment row (draft, no variants); `make_experiment` builds a runnable one."""

    class Meta:
        model = Experiment

    key = factory.Sequence(lambda n: f"experiment-{n}")
    name = factory.LazyAttribute(lambda o: f"Experiment {o.key}")


class VariantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Variant

    experiment = factory.SubFactory(ExperimentFactory)
    key = factory.Sequence(lambda n: f"variant-{n}")
    weight = 0.5


class ExperimentMetricFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ExperimentMetric

    experiment = factory.SubFactory(ExperimentFactory)
    metric = factory.SubFactory(MetricFactory)


class ForcedAssignmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ForcedAssignment

    variant = factory.SubFactory(VariantFactory)
    experiment = factory.SelfAttribute("variant.experiment")
    unit_id = factory.Sequence(lambda n: f"qa-unit-{n}")


class ApiKeyFactory(factory.django.DjangoModelFactory):
    """A key row whose raw key nobody knows; `api_key_create` returns one to authenticate with."""

    class Meta:
        model = ApiKey

    name = factory.Sequence(lambda n: f"key-{n}")
    prefix = factory.Sequence(lambda n: f"vl_{n:08d}")
    hashed_key = factory.Sequence(lambda n: ApiKey.hash(f"raw-key-{n}"))
    scopes = factory.LazyFunction(lambda: ["read"])


# events


class ExposureEventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ExposureEvent

    event_id = factory.Sequence(lambda n: f"exposure-event-{n}")
    experiment = factory.SubFactory(ExperimentFactory)
    unit_id = factory.Sequence(lambda n: f"unit-{n}")
    variant = "control"
    timestamp = EVENT_TIME


class ExposureFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Exposure

    experiment = factory.SubFactory(ExperimentFactory)
    unit_id = factory.Sequence(lambda n: f"unit-{n}")
    variant = "control"
    first_exposed_at = EVENT_TIME


class OutcomeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Outcome

    event_id = factory.Sequence(lambda n: f"outcome-{n}")
    unit_id = factory.Sequence(lambda n: f"unit-{n}")
    name = "purchase"
    timestamp = EVENT_TIME


class DeadLetterFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = DeadLetter

    task_name = "events.tasks.events_ingest_task"
    payload = factory.LazyFunction(lambda: {"exposures": [], "outcomes": []})
    error = "OperationalError"


# analysis


class SnapshotFactory(factory.django.DjangoModelFactory):
    """A snapshot in the model's default state (queued); pass state= and results= for others."""

    class Meta:
        model = Snapshot

    experiment = factory.SubFactory(ExperimentFactory)


class SnapshotComparisonFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SnapshotComparison

    snapshot = factory.SubFactory(SnapshotFactory)
    metric = factory.Sequence(lambda n: f"metric-{n}")
    role = "primary"
    variant = "treatment"
    baseline = "control"
    decision = "inconclusive"


class GuardrailCheckFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = GuardrailCheck

    experiment = factory.SubFactory(ExperimentFactory)
    source = GuardrailCheckSource.MONITOR


# audit


class AuditEntryFactory(factory.django.DjangoModelFactory):
    """An entry written directly; services write theirs through `audit.services.audit_record`."""

    class Meta:
        model = AuditEntry

    actor_type = ActorType.SYSTEM
    actor_name = "system"
    action = "update"
    object_type = "experiment"
    object_key = factory.Sequence(lambda n: f"experiment-{n}")


# django.contrib.auth (not one of ours, but every admin test needs a user)


class StaffUserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User

    username = factory.Sequence(lambda n: f"staff-{n}")
    password = factory.django.Password("pw")
    is_staff = True


def staff_client(role: str, username: str | None = None) -> Client:
    """A test client logged in as a staff user whose only group is `role` (the groups come from
    audit/migrations/0003_roles.py); the username is what audit entries record."""
    user = StaffUserFactory(username=username or f"u-{role}")
    user.groups.add(Group.objects.get(name=role))
    client = Client()
    client.force_login(user)
    return client


def experiment_spec(key: str = "exp", **overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"key": key, "name": f"Experiment {key}", "variants": TWO_ARMS}
    spec.update(overrides)
    return spec


def make_experiment(key: str = "exp", *, start: bool = True, **overrides: Any) -> Experiment:
    experiment = services.experiment_save(data=experiment_spec(key, **overrides))
    if start:
        experiment = services.experiment_start(experiment=experiment)
    return experiment
