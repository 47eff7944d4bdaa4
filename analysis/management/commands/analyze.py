from django.core.management.base import BaseCommand, CommandError, CommandParser

from analysis.models import SnapshotState
from analysis.services import snapshot_compute_now
from experiments.models import Experiment


class Command(BaseCommand):
    help = "Compute one snapshot of an experiment now, in this process, and print its summary."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("key")

    def handle(self, *args: object, key: str, **options: object) -> None:
        experiment = Experiment.objects.filter(key=key).first()
        if experiment is None:
            raise CommandError(f"No experiment '{key}'.")
        snapshot = snapshot_compute_now(experiment=experiment)
        if snapshot.state != SnapshotState.DONE:
            raise CommandError(f"Snapshot #{snapshot.pk}: {snapshot.state}. {snapshot.error}")
        results = snapshot.typed_results()
        assert results is not None  # a finished snapshot has its results
        self.stdout.write(f"Snapshot #{snapshot.pk} of {key}: {results.summary}")
