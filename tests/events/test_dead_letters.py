import pytest

from events.models import DeadLetter, Outcome
from events.tasks import events_ingest_task
from tests.factories import DeadLetterFactory

pytestmark = pytest.mark.django_db

GOOD = {
    "event_id": "ok-1",
    "unit_id": "u",
    "name": "click",
    "value": 1.0,
    "timestamp": "2026-01-01T00:00:00+00:00",
    "properties": {},
}


def test_ingest_task__batch_that_cannot_be_written__kept_as_dead_letter() -> None:
    # Given a batch whose second outcome lacks its name (a bug upstream of the worker)
    batch = {"outcomes": [GOOD, {**GOOD, "event_id": "bad", "name": None}], "exposures": []}
    # When a worker runs it
    events_ingest_task.delay(batch)
    # Then nothing half-written stays, and the whole batch is kept with its error
    assert not Outcome.objects.exists()
    dead = DeadLetter.objects.get()
    assert dead.payload == batch and "IntegrityError" in dead.error


def test_dead_letter_admin__replay__stores_the_batch(admin_client) -> None:
    dead = DeadLetterFactory(
        task_name="events.tasks.events_ingest_task",
        payload={"outcomes": [GOOD], "exposures": []},
        error="OperationalError",
        attempts=3,
    )
    assert admin_client.get("/admin/events/deadletter/").status_code == 200
    admin_client.post(
        "/admin/events/deadletter/", {"action": "replay_selected", "_selected_action": [dead.pk]}
    )
    assert Outcome.objects.filter(event_id="ok-1").exists()
    dead.refresh_from_db()
    assert dead.replayed_at is not None


def test_event_admin_pages__render(admin_client) -> None:
    for url in [
        "/admin/events/outcome/",
        "/admin/events/exposure/",
        "/admin/events/exposureevent/",
    ]:
        assert admin_client.get(url).status_code == 200, url
