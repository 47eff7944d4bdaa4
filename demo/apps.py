from django.apps import AppConfig


class DemoConfig(AppConfig):
    """`manage.py demo`: seeds experiments and drives every stage (assignment, events,
    snapshots, guardrails) through the API, so it sits above every app, like `config`."""

    name = "demo"
    default_auto_field = "django.db.models.BigAutoField"
