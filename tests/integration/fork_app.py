"""A tiny WSGI app that creates a `variantlab_client.Client` at import, for gunicorn --preload.

With --preload, gunicorn imports this module in its master process and then forks the workers,
so the client (its configuration, its threads, its locks) is created before the fork, as in an
app that builds its client at module level. tests/integration/test_client_fork.py drives it.

Environment: VARIANTLAB_URL, VARIANTLAB_KEY. Routes (GET):
- /assign?unit=U  -> assign U in every served experiment; answers the assignments and the
  event ids of the exposures it queued
- /track?unit=U   -> one `purchase` outcome for U; answers its event id
- /state          -> the worker's pid, the experiment keys of its configuration, its ETag, its
  queue length and the client threads alive in it
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

from tests.integration.fork_client import recording_client

# Built before any worker is forked: its configuration is loaded and its threads run.
client, _sent = recording_client()
LOADED_BEFORE_FORK = client._config is not None
MASTER_PID = os.getpid()


def _state() -> dict[str, Any]:
    config = client._config
    return {
        "pid": os.getpid(),
        "master_pid": MASTER_PID,
        "loaded_before_fork": LOADED_BEFORE_FORK,
        "experiments": sorted(config.experiments) if config else None,
        "etag": config.etag if config else None,
        "queued": len(client._queue),
        "threads": sorted(
            t.name for t in threading.enumerate() if t.name.startswith("variantlab")
        ),
    }


def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    path = environ.get("PATH_INFO", "")
    unit = parse_qs(environ.get("QUERY_STRING", "")).get("unit", ["u"])[0]
    before = len(_sent)
    if path == "/assign":
        answers = client.assign(unit, {"plan": "pro"})
        body: dict[str, Any] = {
            "pid": os.getpid(),
            "assignments": {k: [a.variant, a.reason] for k, a in answers.items()},
        }
    elif path == "/track":
        client.track(unit, "purchase", 5.0)
        body = {"pid": os.getpid()}
    elif path == "/state":
        body = _state()
    else:
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found"]
    body["event_ids"] = [e["event_id"] for e in _sent[before:]]
    data = json.dumps(body).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Connection", "close")])
    return [data]
