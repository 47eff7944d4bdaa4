"""Batching of /assign exposures in each web process (VARIANTLAB_EXPOSURE_FLUSH_SECONDS > 0).

On by default (every 0.2 s). A Celery publish costs about as much CPU as the rest of an
/assign request (docs/benchmarks.md), so, as client SDKs do, the exposure records of many
requests are handed to Celery as one task by a background thread: every few hundred
milliseconds, as soon as FLUSH_AT records wait, and on a graceful shutdown (SIGTERM, SIGINT:
atexit). The request path never publishes. With one connection per worker a request waits
behind whatever the flush thread holds the GIL for, which is what set /assign's p99: FLUSH_AT
bounds the batch, and records arrive already JSON-encoded on their own request (bytes, which
the garbage collector does not track), so the flush publishes them without encoding them again
(`assignment.services.exposures_publish_encoded`): about 0.3 ms plus 2.5 µs per record of
CPU, against 0.4 ms plus 6 µs when Celery encoded the batch (benchmarks/exposure_flush.py).

What each mode can lose:
- batched: the last interval's records of a web process killed outright (SIGKILL, OOM). A
  batch the broker refuses is kept and retried on the next tick, up to MAX_PENDING records,
  then the oldest are dropped with an error in the log.
- per request (0): nothing on a kill, since the task is on the broker before the answer; but
  an exposure the broker refuses is lost (the unit still gets its variant).

This is a batch in front of Celery, not a queue: nothing is stored outside the process.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

FLUSH_AT = 128
MAX_BATCH = 1000
MAX_PENDING = 50_000


# One exposure record, in whatever form `publish` takes (the service adds them JSON-encoded).
Record = TypeVar("Record")


class ExposureBuffer(Generic[Record]):
    def __init__(
        self,
        publish: Callable[[list[Record]], bool],
        flush_seconds: float,
        flush_at: int = FLUSH_AT,
    ) -> None:
        self._publish = publish
        self._flush_seconds = flush_seconds
        self._flush_at = flush_at
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._pending: list[Record] = []
        self._owner_pid: int | None = None

    def add(self, exposures: Sequence[Record]) -> None:
        self._start_in_this_process()
        with self._lock:
            self._pending.extend(exposures)
            size = len(self._pending)
            overflow = size - MAX_PENDING
            if overflow > 0:  # the flush thread is stuck (a hanging broker): keep the newest
                del self._pending[:overflow]
        if overflow > 0:
            logger.error("exposure.buffer_overflow dropped=%d", overflow)
        if size >= self._flush_at:
            self._wake.set()

    def flush(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
        for start in range(0, len(pending), MAX_BATCH):
            batch = pending[start : start + MAX_BATCH]
            if not self._publish(batch):
                self._keep(pending[start:])
                return

    def _keep(self, unsent: list[Record]) -> None:
        with self._lock:
            self._pending = unsent + self._pending
            overflow = len(self._pending) - MAX_PENDING
            if overflow > 0:
                del self._pending[:overflow]
        if overflow > 0:
            logger.error("exposure.buffer_overflow dropped=%d", overflow)

    def _start_in_this_process(self) -> None:
        # Web servers fork workers after import: each process needs its own flushing thread.
        if self._owner_pid == os.getpid():
            return
        with self._lock:
            if self._owner_pid == os.getpid():
                return
            self._pending = []
            self._wake = threading.Event()  # a forked copy's internal lock may be held
            self._owner_pid = os.getpid()
        threading.Thread(target=self._run, name="exposure-flush", daemon=True).start()
        atexit.register(self.flush)

    def _run(self) -> None:
        while True:
            self._wake.wait(self._flush_seconds)
            self._wake.clear()
            try:
                self.flush()
            except Exception:  # the thread must survive anything one flush meets
                logger.exception("exposure.flush_failed")
