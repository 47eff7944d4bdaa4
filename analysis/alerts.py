"""Alerts (docs/api.md §10): detected guardrail harm, every rollback, a new SRM flag.

Each alert is one JSON POST `{"type", "experiment", "variant", "metric", "message", "text",
"url"}` (`text` is Slack-compatible, so a Slack incoming webhook URL works as is) to every URL
in `VARIANTLAB_ALERT_WEBHOOKS`, and an e-mail to the experiment's owner when the owner looks
like an address, through Django's e-mail backend.

Delivery is a Celery task per webhook and one for the e-mail, published after the commit of
the change the alert is about (a rolled-back change sends nothing), retried with backoff on
network errors and 5xx answers, so neither the monitor nor a request ever waits on a slow or
dead receiver. In the embedded mode (no broker) tasks run in-process; a failure is logged and
never raised into the caller.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.core.validators import validate_email
from django.db import transaction
from django.urls import reverse

from analysis.tasks import alert_email_task, alert_webhook_task
from experiments.models import Experiment

logger = logging.getLogger(__name__)

ALERT_TYPES = ("harm", "rollback", "srm")
TITLES = {
    "harm": "Guardrail harm detected",
    "rollback": "Variant rolled back",
    "srm": "Sample ratio mismatch",
}


def owner_address(owner: str) -> str | None:
    owner = (owner or "").strip()
    try:
        validate_email(owner)
    except ValidationError:
        return None
    return owner


def results_url(experiment: Experiment) -> str:
    path = reverse("admin:experiments_experiment_results", args=[experiment.pk])
    return settings.VARIANTLAB_PUBLIC_URL.rstrip("/") + path


def alert_payload(
    *, kind: str, experiment: Experiment, variant: str | None, metric: str | None, message: str
) -> dict[str, Any]:
    url = results_url(experiment)
    subject = f"{TITLES[kind]}: {experiment.key}" + (f" / {variant}" if variant else "")
    return {
        "type": kind,
        "experiment": experiment.key,
        "variant": variant,
        "metric": metric,
        "message": message,
        # Slack mrkdwn: a bold title, the message, and a link to the results page.
        "text": f"*{subject}*\n{message}\n<{url}|Results of {experiment.key}>",
        "url": url,
    }


def alert_send(
    *,
    kind: str,
    experiment: Experiment,
    variant: str | None = None,
    metric: str | None = None,
    message: str,
) -> dict[str, Any]:
    """Queue the alert's deliveries once the current transaction commits."""
    assert kind in ALERT_TYPES, kind
    payload = alert_payload(
        kind=kind, experiment=experiment, variant=variant, metric=metric, message=message
    )
    address = owner_address(experiment.owner)
    transaction.on_commit(lambda: _publish(payload, address))
    return payload


def _publish(payload: dict[str, Any], address: str | None) -> None:
    jobs: list[tuple[Any, tuple]] = [
        (alert_webhook_task, (url, payload)) for url in settings.VARIANTLAB_ALERT_WEBHOOKS
    ]
    if address:
        jobs.append((alert_email_task, (address, payload)))
    for task, args in jobs:
        try:
            task.delay(*args)
        except Exception:
            # A broker outage or (embedded mode) a receiver that stays down must not fail the
            # rollback or the check that raised the alert.
            logger.exception("alert.publish_failed type=%s", payload["type"])


class AlertDeliveryError(Exception):
    """A transient delivery failure: the task retries."""


def alert_webhook_deliver(*, url: str, payload: dict[str, Any]) -> int:
    if not url.lower().startswith(("http://", "https://")):
        # urllib would also open file:// and ftp:// URLs; a webhook is HTTP.
        logger.error("alert.webhook_bad_url url=%s", url)
        return 0
    body = json.dumps(payload).encode()
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(
            request, timeout=settings.VARIANTLAB_ALERT_TIMEOUT_SECONDS
        ) as response:
            return response.status
    except urllib.error.HTTPError as error:
        if error.code >= 500 or error.code == 429:
            raise AlertDeliveryError(f"{url} answered {error.code}") from error
        # 4xx: the receiver refuses this payload; retrying cannot help.
        logger.error("alert.webhook_refused url=%s status=%s", url, error.code)
        return error.code
    except (urllib.error.URLError, OSError) as error:
        raise AlertDeliveryError(f"{url}: {error}") from error


def alert_email_deliver(*, address: str, payload: dict[str, Any]) -> None:
    subject = f"[Variantlab] {TITLES[payload['type']]}: {payload['experiment']}"
    lines = [payload["message"], "", f"Results: {payload['url']}"]
    send_mail(subject, "\n".join(lines), None, [address])
