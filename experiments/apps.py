from django.apps import AppConfig


class ExperimentsConfig(AppConfig):
    name = "experiments"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Imported once models are loaded: connects the config-version receivers.
        from experiments import signals  # noqa: F401
