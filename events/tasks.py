from celery import shared_task
from django.db import OperationalError


@shared_task(acks_late=True, autoretry_for=(OperationalError,), retry_backoff=True, max_retries=8)
def exposures_record_task(exposures: list[dict]) -> None:
    from events.services import exposures_record

    exposures_record(exposures=exposures)
