"""factory_boy factories and a helper that builds experiments through the real services."""

from __future__ import annotations

from typing import Any

import factory

from experiments import services
from experiments.models import Experiment, Layer, Metric

TWO_ARMS = [
    {"key": "control", "weight": 0.5, "is_control": True, "payload": {"model": "ranker-v1"}},
    {"key": "treatment", "weight": 0.5, "payload": {"model": "ranker-v2"}},
]


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


def experiment_spec(key: str = "exp", **overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"key": key, "name": f"Experiment {key}", "variants": TWO_ARMS}
    spec.update(overrides)
    return spec


def make_experiment(key: str = "exp", *, start: bool = True, **overrides: Any) -> Experiment:
    experiment = services.experiment_save(data=experiment_spec(key, **overrides))
    if start:
        experiment = services.experiment_start(experiment=experiment)
    return experiment
