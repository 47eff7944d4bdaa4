from django.apps import AppConfig


class EventsConfig(AppConfig):
    name = "events"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registers the ingest task in every process (web too): /assign publishes it by name.
        from events import tasks  # noqa: F401
