"""The ingest task. It imports its service in its body: events/services.py publishes this
task, so it imports this module, which must not import it back (registered at start by
events/apps.py, since /assign publishes it by name)."""

from celery import shared_task
from django.db import InterfaceError, OperationalError

# Database errors that pass (a restart, a failover, a deadlock): retried, never dropped.
TRANSIENT = (OperationalError, InterfaceError)


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=None)
def events_ingest_task(self, batch: dict) -> None:
    from events.services import dead_letter_record, events_ingest

    try:
        events_ingest(batch=batch)
    except TRANSIENT as exc:
        if self.request.is_eager:
            raise  # in-process: the API answers 503 and the client retries
        raise self.retry(exc=exc, countdown=min(30, 2 ** min(self.request.retries, 5))) from exc
    except Exception as exc:
        # Not transient: retrying cannot help. Keep the batch, with its error, for a replay.
        dead_letter_record(
            task_name=self.name, payload=batch, error=exc, attempts=self.request.retries + 1
        )
