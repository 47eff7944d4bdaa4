from celery import shared_task
from django.db import InterfaceError, OperationalError


@shared_task(
    acks_late=True,
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=True,
    max_retries=5,
)
def snapshot_compute_task(snapshot_id: int) -> None:
    from analysis.services import snapshot_compute

    snapshot_compute(snapshot_id=snapshot_id)


@shared_task
def snapshots_due_task() -> None:
    """Run by Celery beat every minute; each experiment keeps its own schedule."""
    from analysis.services import snapshots_due

    snapshots_due()


@shared_task
def snapshots_recover_task() -> None:
    """Run by Celery beat: re-publish or replace snapshots stuck queued or running."""
    from analysis.services import snapshots_recover

    snapshots_recover()
