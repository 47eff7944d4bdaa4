from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import IntegrityError

from analysis.models import ACTIVE_STATES, Snapshot, SnapshotState
from analysis.services import snapshot_compute
from experiments.models import Experiment


class Command(BaseCommand):
    help = "Compute one snapshot of an experiment now, in this process, and print its summary."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("key")

    def handle(self, *args: object, key: str, **options: object) -> None:
        experiment = Experiment.objects.filter(key=key).first()
        if experiment is None:
            raise CommandError(f"No experiment '{key}'.")
        try:
            snapshot = Snapshot.objects.create(experiment=experiment)
        except IntegrityError:
            snapshot = Snapshot.objects.get(experiment=experiment, state__in=ACTIVE_STATES)
        done = snapshot_compute(snapshot_id=snapshot.pk)
        if done is None:
            snapshot.refresh_from_db()
            if snapshot.state != SnapshotState.DONE:
                raise CommandError(f"Snapshot #{snapshot.pk}: {snapshot.state}. {snapshot.error}")
            done = snapshot
        self.stdout.write(f"Snapshot #{done.pk} of {key}: {done.results['summary']}")
