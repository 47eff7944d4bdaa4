"""A tiny Celery app that creates a `variantlab_client.Client` at import, for a prefork worker.

`celery worker` imports this module in its main process and then forks the pool's children,
so the client (its configuration, its threads, its locks) exists before the fork, as in an app
that builds its client at module level. tests/integration/test_client_fork.py drives it.

Environment: VARIANTLAB_URL, VARIANTLAB_KEY, FORK_CELERY_URL (broker and result backend).
"""

from __future__ import annotations

import os
import threading
from typing import Any

from celery import Celery
from variantlab_client import Client

QUEUE = "variantlab-fork-test"

app = Celery("fork_celery", broker=os.environ["FORK_CELERY_URL"])
app.conf.update(
    result_backend=os.environ["FORK_CELERY_URL"],
    task_default_queue=QUEUE,
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
)

client = Client(
    os.environ["VARIANTLAB_URL"],
    os.environ["VARIANTLAB_KEY"],
    refresh_seconds=0.2,
    flush_seconds=0.2,
    timeout=2.0,
)
LOADED_BEFORE_FORK = client.wait_ready(30)
MAIN_PID = os.getpid()

_sent: list[dict[str, Any]] = []
_enqueue = client._enqueue


def _recording(event: dict[str, Any]) -> None:
    _sent.append(event)
    _enqueue(event)


client._enqueue = _recording  # type: ignore[method-assign]


@app.task(name="fork_celery.assign_unit")
def assign_unit(unit: str) -> dict[str, Any]:
    before = len(_sent)
    answers = client.assign(unit, {"plan": "pro"})
    client.track(unit, "purchase", 5.0)
    config = client._config
    return {
        "pid": os.getpid(),
        "main_pid": MAIN_PID,
        "loaded_before_fork": LOADED_BEFORE_FORK,
        "assignments": sorted(answers),
        "experiments": sorted(config.experiments) if config else None,
        "event_ids": [e["event_id"] for e in _sent[before:]],
        "types": [e["type"] for e in _sent[before:]],
        "threads": sorted(
            t.name for t in threading.enumerate() if t.name.startswith("variantlab")
        ),
    }
