from django.apps import AppConfig


class CoreConfig(AppConfig):
    """Shared infrastructure below every other app: errors, parsing, OpenAPI helpers, the
    configuration version stamp and SQL dialect helpers. It imports no other app."""

    name = "core"
    default_auto_field = "django.db.models.BigAutoField"
