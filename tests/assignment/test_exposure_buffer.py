import time

import pytest

from assignment import exposure_buffer
from assignment.exposure_buffer import ExposureBuffer


class Broker:
    """Stands in for the Celery publish; it can refuse, as a broker that is down does."""

    def __init__(self) -> None:
        self.batches: list[list[dict]] = []
        self.up = True

    def publish(self, batch: list[dict]) -> bool:
        if self.up:
            self.batches.append(list(batch))
        return self.up


def items(start: int, count: int) -> list[dict]:
    return [{"event_id": str(i)} for i in range(start, start + count)]


def test_buffer__many_records__request_path_never_publishes_flush_sends_tasks_of_1000() -> None:
    broker = Broker()
    buffer = ExposureBuffer(broker.publish, flush_seconds=60, flush_at=10**9)
    buffer.add(items(0, 999))
    buffer.add(items(999, 2))
    buffer.add(items(1001, 5))
    # Adding never publishes (the request path must not wait on the broker) ...
    assert broker.batches == []
    buffer.flush()
    # ... a flush sends everything pending, in order, in tasks of at most 1000
    assert [len(b) for b in broker.batches] == [1000, 6]
    flat = [e["event_id"] for b in broker.batches for e in b]
    assert flat == [str(i) for i in range(1006)]


def test_buffer__flush_at_records__flush_thread_woken_before_its_interval() -> None:
    broker = Broker()
    buffer = ExposureBuffer(broker.publish, flush_seconds=60, flush_at=50)
    buffer.add(items(0, 49))
    time.sleep(0.2)
    assert broker.batches == []  # below flush_at: waits for the interval (60 s)
    buffer.add(items(49, 1))
    deadline = time.monotonic() + 5
    while not broker.batches and time.monotonic() < deadline:
        time.sleep(0.01)
    assert broker.batches == [items(0, 50)]


def test_buffer__background_thread__flushes_on_its_interval() -> None:
    broker = Broker()
    buffer = ExposureBuffer(broker.publish, flush_seconds=0.05)
    buffer.add(items(0, 3))
    deadline = time.monotonic() + 5
    while not broker.batches and time.monotonic() < deadline:
        time.sleep(0.01)
    assert broker.batches == [items(0, 3)]


def test_buffer__broker_refuses__kept_and_sent_later(monkeypatch) -> None:
    broker = Broker()
    buffer = ExposureBuffer(broker.publish, flush_seconds=60, flush_at=10**9)
    broker.up = False
    buffer.add(items(0, 10))
    buffer.flush()
    assert broker.batches == []
    broker.up = True
    buffer.add(items(10, 2))
    buffer.flush()
    assert [e["event_id"] for e in broker.batches[0]] == [str(i) for i in range(12)]


def test_buffer__long_outage__keeps_newest_up_to_cap(monkeypatch, caplog) -> None:
    monkeypatch.setattr(exposure_buffer, "MAX_PENDING", 20)
    broker = Broker()
    buffer = ExposureBuffer(broker.publish, flush_seconds=60, flush_at=10**9)
    broker.up = False
    for start in range(0, 30, 10):
        buffer.add(items(start, 10))
        buffer.flush()
    assert "exposure.buffer_overflow" in caplog.text
    broker.up = True
    buffer.flush()
    assert [e["event_id"] for e in broker.batches[0]] == [str(i) for i in range(10, 30)]


@pytest.mark.django_db
def test_assign__buffering_configured_but_eager__writes_immediately(api, settings) -> None:
    from events.models import Exposure
    from tests.factories import make_experiment

    settings.VARIANTLAB_EXPOSURE_FLUSH_SECONDS = 5.0
    make_experiment("ranker")
    api.post("/api/v1/assign", {"unit_id": "u"}, format="json")
    assert Exposure.objects.filter(unit_id="u").exists()


def test_request_ids__unique_within_a_process_and_across_a_fork() -> None:
    import os

    from assignment.services import request_id_next

    ids = [request_id_next() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: a forked worker
        os.write(write, request_id_next().encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child_id = os.read(read, 64).decode()
    os.close(read), os.close(write)
    # The child drew its own prefix: it can never repeat an id of the parent.
    assert child_id[:20] != ids[0][:20]
    assert request_id_next()[:20] == ids[0][:20]


def test_buffer__flush_stuck__adding_keeps_the_newest_up_to_cap(monkeypatch, caplog) -> None:
    # Given a flush thread that has not run (as behind a hanging broker)
    monkeypatch.setattr(exposure_buffer, "MAX_PENDING", 20)
    broker = Broker()
    buffer = ExposureBuffer(broker.publish, flush_seconds=60, flush_at=10**9)
    # When requests keep adding, memory stays bounded: the oldest go, and the log says so
    for start in range(0, 30, 10):
        buffer.add(items(start, 10))
    assert "exposure.buffer_overflow dropped=10" in caplog.text
    buffer.flush()
    assert [e["event_id"] for e in broker.batches[0]] == [str(i) for i in range(10, 30)]
