"""``Client``: local assignment from a cached /config, events batched in the background.

Degradation is the design goal (docs/api.md §12): experimentation must never take the app down.
- Calls on the request path (``assign``, ``track``, ``model_call``) read memory and append to
  a queue; they never wait on the network, and any error inside them is logged and swallowed.
- One thread refreshes /config every ``refresh_seconds`` with If-None-Match and keeps the last
  good configuration when the server fails (optionally persisted to ``config_path``, so a
  restart during an outage still has it). Until a first configuration exists, named
  experiments get ``Assignment(None, None, False, "fallback")``: the app serves its default.
- Another thread posts events to /events in batches of up to 500, every ``flush_seconds`` or as
  soon as 500 are waiting. Each event carries an ``event_id`` from its creation, so a batch
  retried after a lost answer is stored once. Network errors, 429 (with ``Retry-After``) and 5xx
  are retried with capped exponential backoff and jitter; events are dropped only when the
  bounded queue overflows (counted in ``dropped_events`` and logged).
- Fork-safe: a forked child (gunicorn ``--preload``, Celery prefork) gets fresh locks, an empty
  queue and its own threads on first use; the configuration is inherited.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import json
import logging
import math
import os
import random
import threading
import time
import urllib.error
import urllib.request
import uuid
import weakref
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from variantlab_client.config import LoadedConfig
from variantlab_client.engine import Assignment

logger = logging.getLogger("variantlab_client")
# A library leaves output to the app's logging configuration (Python's logging HOWTO).
logger.addHandler(logging.NullHandler())

FALLBACK = Assignment(None, None, False, "fallback")
BATCH_SIZE = 500
BACKOFF_BASE = 0.5
BACKOFF_CAP = 30.0
USER_AGENT = "variantlab-client/0.1"
DROP_LOG_SECONDS = 10.0
MAX_BODY_BYTES = 1_000_000  # under /events' 1 MiB, with room for the envelope
_EMPTY: Mapping[str, Any] = {}


class _Delivery(Exception):
    """A batch the server did not take; ``retry_after`` is its wish, in seconds, if any."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ModelCall:
    """What ``Client.model_call`` yields: the unit's assignment, and a place to note the cost."""

    __slots__ = ("assignment", "cost_usd")

    def __init__(self, assignment: Assignment) -> None:
        self.assignment = assignment
        self.cost_usd: float | None = None

    def cost(self, usd: float) -> None:
        self.cost_usd = float(usd)


class Client:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        refresh_seconds: float = 10,
        timeout: float = 2.0,
        flush_seconds: float = 1.0,
        config_path: str | os.PathLike[str] | None = None,
        max_queue: int = 10_000,
        log_exposures: bool = True,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.refresh_seconds = refresh_seconds
        self.timeout = timeout
        self.flush_seconds = flush_seconds
        self.config_path = os.fspath(config_path) if config_path is not None else None
        self.max_queue = max(1, max_queue)
        # False: the app logs its exposures itself (e.g. a simulation that backdates them).
        self.log_exposures = log_exposures
        self.dropped_events = 0
        self._drop_logged_at = -DROP_LOG_SECONDS
        self._headers = {"Authorization": f"Bearer {api_key}", "User-Agent": USER_AGENT}
        self._config: LoadedConfig | None = self._config_from_file()
        self._ready = threading.Event()
        if self._config is not None:
            self._ready.set()
        self._config_failing = False
        self._closed = False
        self._reset_process_state()
        _clients.add(self)
        atexit.register(_close_at_exit, weakref.ref(self))
        self._ensure_threads()

    # --- The request path: memory only ----------------------------------------------------------

    def assign(
        self,
        unit_id: str,
        attributes: Mapping[str, Any] | None = None,
        experiments: Sequence[str] | None = None,
    ) -> dict[str, Assignment]:
        """The unit's assignments, as POST /assign answers them; exposures queued for /events.

        Experiments the configuration does not know, and every named one before any
        configuration was loaded, get ``fallback`` (no variant: serve the app's default).
        """
        try:
            return self._assign(unit_id, attributes or _EMPTY, experiments)
        except Exception:
            logger.exception("variantlab.assign_failed")
            return {key: FALLBACK for key in experiments or ()}

    def _assign(
        self, unit_id: str, attributes: Mapping[str, Any], experiments: Sequence[str] | None
    ) -> dict[str, Assignment]:
        if self._threads_pid != os.getpid():
            self._ensure_threads()
        config = self._config
        if config is None or not unit_id or type(unit_id) is not str:
            if config is not None:  # the server refuses these too (400 naming unit_id)
                logger.warning("variantlab.assign_refused unit_id=%r", unit_id)
            return {key: FALLBACK for key in experiments or ()}
        if experiments is None:
            result = config.served.assign(unit_id, attributes)
        else:
            keys = tuple(experiments)
            result = config.experiment_set(keys).assign(unit_id, attributes)
            if len(result) != len(keys):
                result = {key: result.get(key, FALLBACK) for key in keys}
        if not self.log_exposures:
            return result
        now = time.time()
        snapshot: dict[str, Any] | None = None
        for key, assignment in result.items():
            if assignment.in_experiment:
                if snapshot is None:  # the app may change its dict after the call
                    snapshot = dict(attributes)
                self._enqueue(
                    {
                        "type": "exposure",
                        "unit_id": unit_id,
                        "experiment": key,
                        "variant": assignment.variant,
                        "timestamp": now,
                        "event_id": self._next_event_id(),
                        "attributes": snapshot,
                    }
                )
        return result

    def track(
        self,
        unit_id: str,
        name: str,
        value: float = 1.0,
        *,
        timestamp: datetime | str | None = None,
        event_id: str | None = None,
        properties: Mapping[str, Any] | None = None,
    ) -> None:
        """Queue an outcome event (docs/api.md §5) for /events."""
        try:
            if not unit_id or not name or isinstance(value, bool) or not math.isfinite(value):
                # The server would refuse it: one line now rather than a rejected event later.
                logger.error(
                    "variantlab.track_refused unit_id=%r name=%r value=%r", unit_id, name, value
                )
                return
            self._enqueue(
                {
                    "type": "outcome",
                    "unit_id": unit_id,
                    "name": name,
                    "value": value,
                    "timestamp": time.time() if timestamp is None else timestamp,
                    "event_id": event_id or self._next_event_id(),
                    "properties": dict(properties or {}),
                }
            )
        except Exception:
            logger.exception("variantlab.track_failed")

    @contextlib.contextmanager
    def model_call(
        self, experiment: str, unit_id: str, attributes: Mapping[str, Any] | None = None
    ) -> Iterator[ModelCall]:
        """Time the block and record docs/api.md §12's model events for the unit.

        ``model_call`` (1), ``model_latency_ms`` and, if the block raises, ``model_error`` (1),
        then the exception goes on; ``call.cost(usd)`` adds ``model_cost_usd``.
        """
        call = ModelCall(self.assign(unit_id, attributes, [experiment])[experiment])
        started = time.perf_counter()
        failed = False
        try:
            yield call
        except BaseException:
            failed = True
            raise
        finally:
            elapsed_ms = (time.perf_counter() - started) * 1000
            properties = {"experiment": experiment, "variant": call.assignment.variant}
            self.track(unit_id, "model_call", 1.0, properties=properties)
            self.track(unit_id, "model_latency_ms", elapsed_ms, properties=properties)
            if failed:
                self.track(unit_id, "model_error", 1.0, properties=properties)
            if call.cost_usd is not None:
                self.track(unit_id, "model_cost_usd", call.cost_usd, properties=properties)

    def wait_ready(self, timeout: float) -> bool:
        """Wait (at app start, never per request) until a configuration is loaded."""
        return self._ready.wait(timeout)

    # --- Delivery -------------------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        """Send what is queued now; True when the queue was emptied within ``timeout``."""
        if self._closed or not (self._queue or self._in_flight):
            return not self._queue
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            self._ensure_threads()
        except RuntimeError:  # no new thread at interpreter shutdown: nothing can be sent
            logger.exception("variantlab.flush_failed events=%d", len(self._queue))
            return False
        with self._idle:
            self._wake.set()
            while self._queue or self._in_flight:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._idle.wait(0.5 if remaining is None else min(remaining, 0.5))
        return True

    def close(self, timeout: float = 5.0) -> bool:
        """Deliver what can be delivered within ``timeout``, then stop the threads."""
        if self._closed:
            return True
        delivered = self.flush(timeout)
        self._closed = True
        self._stop.set()
        self._wake.set()
        return delivered

    def _enqueue(self, event: dict[str, Any]) -> None:
        if self._threads_pid != os.getpid():
            self._ensure_threads()
        queue = self._queue
        if len(queue) >= self.max_queue:
            queue.popleft()  # deque.append is atomic; the lock is only for the sender's batches
            self.dropped_events += 1
            now = time.monotonic()
            if now - self._drop_logged_at >= DROP_LOG_SECONDS:  # one line per burst, not per event
                self._drop_logged_at = now
                logger.error(
                    "variantlab.events_dropped total=%d queue_max=%d",
                    self.dropped_events,
                    self.max_queue,
                )
        queue.append(event)
        if len(queue) >= BATCH_SIZE:
            self._wake.set()

    def _next_event_id(self) -> str:
        # A per-process random prefix and a counter: unique, and far cheaper than uuid4().
        return f"{self._id_prefix}-{next(self._id_counter)}"

    def _send_loop(self, stop: threading.Event, wake: threading.Event) -> None:
        failures = 0
        while not stop.is_set():
            wake.wait(self.flush_seconds)
            wake.clear()
            while self._queue and not stop.is_set():
                batch = self._take_batch()
                pause = 0.0
                try:
                    self._post_events(batch)
                    failures = 0
                except Exception as exc:
                    failures += 1
                    self._queue.extendleft(reversed(batch))  # back in front, ids unchanged
                    pause = _backoff(failures, getattr(exc, "retry_after", None))
                    logger.warning(
                        "variantlab.events_retry events=%d attempt=%d wait=%.2fs error=%s",
                        len(batch),
                        failures,
                        pause,
                        exc,
                    )
                finally:
                    with self._idle:
                        self._in_flight = 0
                        self._idle.notify_all()
                if pause and stop.wait(pause):
                    return
            with self._idle:
                self._idle.notify_all()

    def _take_batch(self) -> list[dict[str, Any]]:
        batch: list[dict[str, Any]] = []
        with self._idle:
            while len(batch) < BATCH_SIZE:
                try:
                    batch.append(self._queue.popleft())
                except IndexError:  # emptied, possibly by an overflowing append meanwhile
                    break
            self._in_flight = len(batch)
        return batch

    def _post_events(self, batch: list[dict[str, Any]]) -> None:
        for body in _bodies(batch):
            self._post_body(body)

    def _post_body(self, body: bytes) -> None:
        request = urllib.request.Request(
            self.base_url + "/api/v1/events",
            data=body,
            headers={**self._headers, "Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                answer = json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            if exc.code == 429 or exc.code >= 500:
                raise _Delivery(f"HTTP {exc.code}", _retry_after(exc.headers)) from None
            # 400, 401, 403, 413: resending the same events with the same key cannot succeed,
            # and retrying them would hold back every later event.
            logger.error("variantlab.events_refused status=%d bytes=%d", exc.code, len(body))
            return
        rejected = answer.get("rejected") or []
        if rejected:
            logger.error(
                "variantlab.events_rejected count=%d first=%s", len(rejected), rejected[0]
            )

    # --- Configuration --------------------------------------------------------------------------

    def _refresh_loop(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self._refresh()
                if self._config_failing:
                    logger.warning("variantlab.config_refresh_recovered")
                self._config_failing = False
            except Exception as exc:
                # Logged once per outage: the last good configuration keeps serving meanwhile.
                log = logger.debug if self._config_failing else logger.warning
                log("variantlab.config_refresh_failed serving=%s error=%s", self._serving(), exc)
                self._config_failing = True
            # ±10 %: app processes started together do not poll the server in step.
            stop.wait(self.refresh_seconds * random.uniform(0.9, 1.1))

    def _serving(self) -> str:
        return "last_good_config" if self._config is not None else "fallback"

    def _refresh(self) -> None:
        headers = dict(self._headers)
        current = self._config
        if current is not None and current.etag:
            headers["If-None-Match"] = current.etag
        request = urllib.request.Request(self.base_url + "/api/v1/config", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                body = response.read()
                etag = response.headers.get("ETag")
        except urllib.error.HTTPError as exc:
            if exc.code == 304:
                return
            raise
        self._config = LoadedConfig.parse(json.loads(body), etag)
        self._ready.set()
        self._config_to_file(body, etag)

    def _config_from_file(self) -> LoadedConfig | None:
        if self.config_path is None:
            return None
        try:
            with open(self.config_path, encoding="utf-8") as saved:
                stored = json.load(saved)
            return LoadedConfig.parse(stored["config"], stored.get("etag"))
        except FileNotFoundError:
            return None
        except Exception:
            logger.exception("variantlab.config_file_unreadable path=%s", self.config_path)
            return None

    def _config_to_file(self, body: bytes, etag: str | None) -> None:
        if self.config_path is None:
            return
        try:
            temporary = f"{self.config_path}.{os.getpid()}.tmp"
            with open(temporary, "w", encoding="utf-8") as saved:
                json.dump({"etag": etag, "config": json.loads(body)}, saved)
            os.replace(temporary, self.config_path)  # atomic: readers never see half a file
        except OSError:
            logger.exception("variantlab.config_file_write_failed path=%s", self.config_path)

    # --- Threads and processes ------------------------------------------------------------------

    def _reset_process_state(self) -> None:
        # Also the whole of what a forked child does: the parent's threads do not exist there,
        # and its locks may have been held at fork time. The parent delivers its own events.
        self._queue: deque[dict[str, Any]] = deque()
        self._idle = threading.Condition()
        self._start_lock = threading.Lock()
        self._in_flight = 0
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._id_prefix = uuid.uuid4().hex[:16]
        self._id_counter = itertools.count(1)
        self._threads_pid: int | None = None

    def _ensure_threads(self) -> None:
        """Start this process's two threads, once per process (lazily in a forked child)."""
        if self._threads_pid == os.getpid() or self._closed:
            return
        with self._start_lock:
            if self._threads_pid == os.getpid():
                return
            stop, wake = self._stop, self._wake
            threading.Thread(
                target=self._send_loop, args=(stop, wake), name="variantlab-events", daemon=True
            ).start()
            threading.Thread(
                target=self._refresh_loop, args=(stop,), name="variantlab-config", daemon=True
            ).start()
            self._threads_pid = os.getpid()


def _bodies(batch: list[dict[str, Any]]) -> Iterator[bytes]:
    """The batch as /events bodies under the server's 1 MiB limit; an event that cannot be
    encoded is dropped (logged) rather than failing its batch."""
    parts: list[bytes] = []
    size = 0
    for event in batch:
        try:
            part = json.dumps(_wire(event), default=str, allow_nan=False).encode()
        except (TypeError, ValueError):
            logger.exception("variantlab.event_unencodable type=%s", event.get("type"))
            continue
        if parts and size + len(part) > MAX_BODY_BYTES:
            yield b'{"events":[' + b",".join(parts) + b"]}"
            parts, size = [], 0
        parts.append(part)
        size += len(part) + 1
    if parts:
        yield b'{"events":[' + b",".join(parts) + b"]}"


def _wire(event: dict[str, Any]) -> dict[str, Any]:
    timestamp = event["timestamp"]
    if isinstance(timestamp, float):
        timestamp = datetime.fromtimestamp(timestamp, UTC).isoformat()
    elif isinstance(timestamp, datetime):
        timestamp = timestamp.isoformat()
    return {**event, "timestamp": timestamp}


def _backoff(failures: int, retry_after: float | None) -> float:
    if retry_after is not None:
        return min(retry_after, BACKOFF_CAP * 4)
    # "Full jitter": many app processes coming back at once do not retry in step.
    return random.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2 ** min(failures, 16)))


def _retry_after(headers: Any) -> float | None:
    value = headers.get("Retry-After") if headers is not None else None
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


_clients: weakref.WeakSet[Client] = weakref.WeakSet()


def _reset_clients_in_child() -> None:
    for client in list(_clients):
        client._reset_process_state()


def _close_at_exit(ref: weakref.ref[Client]) -> None:
    client = ref()
    if client is not None:
        client.close()


os.register_at_fork(after_in_child=_reset_clients_in_child)
