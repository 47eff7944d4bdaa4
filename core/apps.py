from django.apps import AppConfig


class CoreConfig(AppConfig):
    """Shared infrastructure below every other app: errors, parsing, API-key authentication
    and rate limits, who acts, OpenAPI helpers, the configuration version stamp and SQL
    dialect helpers. It imports no other app."""

    name = "core"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Imported once apps are loaded: defining the OpenAPI extension registers it.
        from core import schema  # noqa: F401
