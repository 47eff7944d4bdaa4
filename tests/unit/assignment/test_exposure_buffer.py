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


def test_buffer__full_batch__published_at_once_in_order() -> None:
    broker = Broker()
    buffer = ExposureBuffer(broker.publish, flush_seconds=60)
    buffer.add(items(0, 999))
    assert broker.batches == []
    buffer.add(items(999, 2))
    assert [len(b) for b in broker.batches] == [1000, 1]  # everything pending, in tasks of 1000
    buffer.add(items(1001, 5))
    buffer.flush()
    flat = [e["event_id"] for b in broker.batches for e in b]
    assert flat == [str(i) for i in range(1006)]


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
    buffer = ExposureBuffer(broker.publish, flush_seconds=60)
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
    buffer = ExposureBuffer(broker.publish, flush_seconds=60)
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
