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

from tests.integration.fork_client import recording_client

QUEUE = "variantlab-fork-test"

app = Celery("fork_celery", broker=os.environ["FORK_CELERY_URL"])
app.conf.update(
    result_backend=os.environ["FORK_CELERY_URL"],
    task_default_queue=QUEUE,
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
)

# Built before any worker is forked: its configuration is loaded and its threads run.
client, _sent = recording_client()
LOADED_BEFORE_FORK = client._config is not None
MAIN_PID = os.getpid()


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
