"""The `variantlab_client.Client` that fork_app.py and fork_celery.py build at import (before
their server forks), recording every event it queues so a request can answer their ids."""

from __future__ import annotations

import os
from typing import Any

from variantlab_client import Client


def recording_client() -> tuple[Client, list[dict[str, Any]]]:
    """A Client on VARIANTLAB_URL / VARIANTLAB_KEY, loaded, and the list of events it queues."""
    client = Client(
        os.environ["VARIANTLAB_URL"],
        os.environ["VARIANTLAB_KEY"],
        refresh_seconds=0.2,
        flush_seconds=0.2,
        timeout=2.0,
    )
    client.wait_ready(30)
    sent: list[dict[str, Any]] = []
    enqueue = client._enqueue

    def recording(event: dict[str, Any]) -> None:
        sent.append(event)
        enqueue(event)

    client._enqueue = recording  # type: ignore[method-assign]
    return client, sent
