"""Every model of the project's apps has a factory, and each factory builds a valid row."""

from __future__ import annotations

import factory
import pytest
from django.apps import apps
from django.db import models

from tests import factories

PROJECT_APPS = ("core", "experiments", "assignment", "events", "analysis", "audit")


def model_factories() -> dict[type[models.Model], type[factory.django.DjangoModelFactory]]:
    found = {}
    for value in vars(factories).values():
        if (
            isinstance(value, type)
            and issubclass(value, factory.django.DjangoModelFactory)
            and value._meta.model is not None
        ):
            found[value._meta.model] = value
    return found


def project_models() -> list[type[models.Model]]:
    return [m for label in PROJECT_APPS for m in apps.get_app_config(label).get_models()]


def test_project_models__every_one__has_a_factory() -> None:
    # Given the models Django registers for the project's apps (16 today)
    registered = project_models()
    # Then each one has a factory in tests/factories.py
    missing = [m.__name__ for m in registered if m not in model_factories()]
    assert missing == []
    assert len(registered) >= 16


@pytest.mark.django_db
@pytest.mark.parametrize("model", project_models(), ids=lambda m: m._meta.label)
def test_model_factory__create__saves_a_valid_row(model: type[models.Model]) -> None:
    # When the factory writes a row
    row = model_factories()[model]()
    # Then it is stored and passes the model's own validation (fields, clean(), constraints)
    assert model.objects.filter(pk=row.pk).exists()
    row.full_clean(exclude=empty_by_design(row))


def empty_by_design(row: models.Model) -> list[str]:
    """Fields left empty where the table allows it. Services fill analysis rows and leave
    nullable results empty; `blank=False` there is a form rule, not a rule of the row."""
    return [
        f.name
        for f in row._meta.concrete_fields
        if getattr(row, f.attname) in (None, {}, [])
        and (f.null or (f.has_default() and f.get_default() in ({}, [])))
    ]
