"""Thin Celery tasks: each calls one service, imported in its body (HackSoft's style): the
services publish these tasks, so they import this module, and it must not import them back.
"""

import logging

from celery import shared_task
from django.db import InterfaceError, OperationalError

logger = logging.getLogger(__name__)


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


@shared_task
def guardrail_checks_due_task() -> None:
    """Run by Celery beat every minute; each experiment has its guardrail_check_minutes."""
    from analysis.guardrails import guardrail_checks_due

    guardrail_checks_due()


@shared_task(
    acks_late=True,
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=True,
    max_retries=3,
)
def guardrail_check_task(experiment_id: int, expected_head: int | None) -> None:
    """One monitor check. A replay, or a look taken since it was scheduled, changes nothing:
    the check is skipped when the chain head is no longer the one it was scheduled after."""
    from analysis.guardrails import guardrail_check

    guardrail_check(experiment_id=experiment_id, expected_head=expected_head)


@shared_task(
    bind=True,
    acks_late=True,
    max_retries=6,
    default_retry_delay=10,
)
def alert_webhook_task(self, url: str, payload: dict) -> None:
    """One webhook delivery, retried with exponential backoff (10 s … about 5 min)."""
    from analysis.alerts import AlertDeliveryError, alert_webhook_deliver

    try:
        alert_webhook_deliver(url=url, payload=payload)
    except AlertDeliveryError as error:
        if self.request.is_eager:
            # Embedded mode: nobody can wait for a retry in the caller's process.
            logger.warning("alert.webhook_failed url=%s eager: %s", url, error)
            return
        raise self.retry(exc=error, countdown=10 * 2**self.request.retries) from error


@shared_task(bind=True, acks_late=True, max_retries=6)
def alert_email_task(self, address: str, payload: dict) -> None:
    from analysis.alerts import alert_email_deliver

    try:
        alert_email_deliver(address=address, payload=payload)
    except OSError as error:  # SMTP down: retry later
        if self.request.is_eager:
            logger.warning("alert.email_failed eager: %s", error)
            return
        raise self.retry(exc=error, countdown=10 * 2**self.request.retries) from error
