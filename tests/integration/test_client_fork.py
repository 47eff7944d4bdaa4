"""The Python client under a real `gunicorn --preload` with two workers, and a Celery prefork
worker with two children (issue 11, fork safety).

The apps (tests/integration/fork_app.py, fork_celery.py) create their `Client` at import, in
gunicorn's master or Celery's main process, which loads the configuration and starts the
client's threads before forking. Each worker or child must then run its own threads: refresh
the configuration (a change made after the fork reaches both), and deliver its own events,
each stored exactly once, without deadlocking on a lock the parent's threads held at fork time.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import urllib.request
from collections.abc import Iterator

import pytest

from events.models import ExposureEvent, Outcome
from experiments import services
from tests.factories import make_experiment
from tests.integration.conftest import ARTIFACTS, BIN, ROOT, free_port, process_env, wait_until

pytestmark = pytest.mark.integration


class ForkApp:
    """`gunicorn --preload --workers 2 tests.integration.fork_app:application`."""

    def __init__(self, server_url: str, key: str) -> None:
        self.port = free_port()
        self.env = process_env() | {"VARIANTLAB_URL": server_url, "VARIANTLAB_KEY": key}
        self.log_path = ARTIFACTS / f"fork-app-{self.port}.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> ForkApp:
        ARTIFACTS.mkdir(exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed with the process
        self.process = subprocess.Popen(
            [
                str(BIN / "gunicorn"),
                "tests.integration.fork_app:application",
                "--preload",
                "--workers",
                "2",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--timeout",
                "30",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        if not wait_until(lambda: self._answers(), timeout=60):
            self.stop()
            raise RuntimeError(f"the fork app did not start; see {self.log_path}")
        return self

    def _answers(self) -> bool:
        try:
            self.get("/state")
            return True
        except OSError:
            return False

    def get(self, path: str) -> dict:
        # A new connection each time (the app answers Connection: close), so the kernel hands
        # requests to both workers. A deadlocked worker would show as a timeout here.
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=10) as answer:
            return json.load(answer)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)


@pytest.fixture
def fork_app(web_server, celery_worker, transactional_db) -> Iterator[ForkApp]:
    make_experiment("ranker")
    server = web_server()
    _, key = services.api_key_create(name="fork-app", scopes=["assign", "events"])
    app = ForkApp(server.url, key).start()
    yield app
    app.stop()


def _until_both_workers(
    app: ForkApp, path: str, done, limit: int = 400, event_ids: list[str] | None = None
) -> dict[int, dict]:
    """Ask `path` until each of the two workers gave an answer for which `done` holds; the
    event ids of every answer are added to `event_ids`."""
    seen: dict[int, dict] = {}
    for i in range(limit):
        answer = app.get(path.format(i=i))
        if event_ids is not None:
            event_ids += answer["event_ids"]
        if done(answer):
            seen[answer["pid"]] = answer
        if len(seen) == 2:
            break
    return seen


def test_client__gunicorn_preload_two_workers__each_refreshes_and_delivers_after_fork(
    fork_app: ForkApp,
) -> None:
    # Given two workers forked from a master whose client had loaded /config
    app = fork_app
    warm_ids: list[str] = []
    first = _until_both_workers(app, "/assign?unit=warm-{i}", lambda a: True, event_ids=warm_ids)
    assert len(first) == 2, "both workers must serve"
    states = _until_both_workers(app, "/state", lambda s: True)
    assert len(states) == 2
    for pid, state in states.items():
        assert pid != state["master_pid"] and state["loaded_before_fork"]
        # The configuration was inherited, and the worker runs its own two threads
        assert state["experiments"] == ["ranker"]
        assert state["threads"] == ["variantlab-config", "variantlab-events"], state
    old_etag = next(iter(states.values()))["etag"]

    # When the configuration changes after the fork
    make_experiment("checkout", coverage=0.5)
    # Then each worker's own refresh thread picks it up
    refreshed = wait_until(
        lambda: (
            len(
                _until_both_workers(
                    app,
                    "/state",
                    lambda s: s["experiments"] == ["checkout", "ranker"] and s["etag"] != old_etag,
                    limit=40,
                )
            )
            == 2
        ),
        timeout=60,
        interval=0.2,
    )
    assert refreshed, "a worker kept the configuration it had at fork time"

    # When both workers serve traffic: assignments (exposures) and outcomes
    exposure_ids: list[str] = []
    outcome_ids: list[str] = []
    by_pid: dict[int, set[str]] = {}
    for i in range(300):
        assigned = app.get(f"/assign?unit=user-{i}")
        tracked = app.get(f"/track?unit=user-{i}")
        exposure_ids += assigned["event_ids"]
        outcome_ids += tracked["event_ids"]
        by_pid.setdefault(assigned["pid"], set()).update(assigned["event_ids"])
        assert set(assigned["assignments"]) == {"checkout", "ranker"}
    # Then both workers took part, with event ids of their own (no id reused across the fork)
    assert len(by_pid) == 2
    prefixes = [{i.rsplit("-", 1)[0] for i in ids} for ids in by_pid.values()]
    assert all(len(p) == 1 for p in prefixes) and prefixes[0] != prefixes[1]
    assert len(set(exposure_ids)) == len(exposure_ids) > 300
    assert len(set(outcome_ids)) == len(outcome_ids) == 300

    # And every event, including the warm-up's, is stored exactly once, counted by event id

    def stored() -> bool:
        return ExposureEvent.objects.count() >= len(exposure_ids) + len(warm_ids) and (
            Outcome.objects.count() >= 300
        )

    assert wait_until(stored, timeout=120), (ExposureEvent.objects.count(), len(exposure_ids))
    assert ExposureEvent.objects.filter(event_id__in=exposure_ids + warm_ids).count() == len(
        exposure_ids
    ) + len(warm_ids)
    assert Outcome.objects.filter(event_id__in=outcome_ids).count() == 300
    # Nothing else was stored: not the master's (it serves no requests), not a duplicate
    assert ExposureEvent.objects.count() == len(exposure_ids) + len(warm_ids)
    assert Outcome.objects.count() == 300
    # And the workers' queues drained
    final = _until_both_workers(app, "/state", lambda s: s["queued"] == 0, limit=100)
    assert len(final) == 2


class ForkCeleryWorker:
    """`celery -A tests.integration.fork_celery worker -P prefork -c 2` on its own queue."""

    def __init__(self, server_url: str, key: str, broker_url: str) -> None:
        self.env = process_env() | {
            "VARIANTLAB_URL": server_url,
            "VARIANTLAB_KEY": key,
            "FORK_CELERY_URL": broker_url,
        }
        self.log_path = ARTIFACTS / "fork-celery.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> ForkCeleryWorker:
        ARTIFACTS.mkdir(exist_ok=True)
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed with the process
        self.process = subprocess.Popen(
            [
                str(BIN / "celery"),
                "-A",
                "tests.integration.fork_celery",
                "worker",
                "-P",
                "prefork",
                "-c",
                "2",
                "-O",
                "fair",
                "-n",
                "fork-test@%h",
                "--without-gossip",
                "--without-mingle",
                "--loglevel=INFO",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        ok = wait_until(lambda: b" ready." in self.log_path.read_bytes()[offset:], timeout=60)
        if not ok:
            self.stop()
            raise RuntimeError(f"the fork test's celery worker did not start; see {self.log_path}")
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)


def test_client__celery_prefork_two_children__each_refreshes_and_delivers_after_fork(
    web_server, celery_worker, transactional_db
) -> None:
    from celery import Celery
    from django.conf import settings

    # Given a Celery prefork worker whose main process made a Client before forking two children
    make_experiment("ranker")
    server = web_server()
    _, key = services.api_key_create(name="fork-celery", scopes=["assign", "events"])
    worker = ForkCeleryWorker(server.url, key, settings.REDIS_URL).start()
    # Not the current app: shared tasks (the project's) would otherwise be sent through it.
    sender = Celery(
        "sender", broker=settings.REDIS_URL, backend=settings.REDIS_URL, set_as_current=False
    )
    try:

        def run(units: list[str]) -> list[dict]:
            results = [
                sender.send_task("fork_celery.assign_unit", args=[u], queue="variantlab-fork-test")
                for u in units
            ]
            return [r.get(timeout=60) for r in results]

        warm = run([f"warm-{i}" for i in range(40)])
        children = {r["pid"] for r in warm}
        assert len(children) == 2 and all(r["pid"] != r["main_pid"] for r in warm)
        assert all(r["loaded_before_fork"] and r["experiments"] == ["ranker"] for r in warm)
        assert all(r["threads"] == ["variantlab-config", "variantlab-events"] for r in warm)

        # When the configuration changes after the fork, Then each child picks it up
        make_experiment("checkout", coverage=0.5)

        polls: list[dict] = []

        def both_refreshed() -> bool:
            answers = run([f"poll-{len(polls) + i}" for i in range(6)])
            polls.extend(answers)
            latest = {r["pid"]: r for r in answers}
            return len(latest) == 2 and all(
                r["experiments"] == ["checkout", "ranker"] for r in latest.values()
            )

        assert wait_until(both_refreshed, timeout=60, interval=0.2)

        # When both children assign units and track outcomes
        done = run([f"user-{i}" for i in range(200)])
        assert {r["pid"] for r in done} == children
        assert all(r["assignments"] == ["checkout", "ranker"] for r in done)
        everything = warm + polls + done
        exposure_ids = [
            i
            for r in everything
            for i, t in zip(r["event_ids"], r["types"], strict=True)
            if t == "exposure"
        ]
        outcome_ids = [
            i
            for r in everything
            for i, t in zip(r["event_ids"], r["types"], strict=True)
            if t == "outcome"
        ]
        # Then the children's event ids differ, and every event is stored exactly once
        prefixes = {r["pid"]: {i.rsplit("-", 1)[0] for i in r["event_ids"]} for r in done}
        assert all(len(p) == 1 for p in prefixes.values())
        assert len(set.union(*prefixes.values())) == 2
        assert len(set(exposure_ids)) == len(exposure_ids) > 200

        def stored() -> bool:
            return ExposureEvent.objects.count() >= len(
                exposure_ids
            ) and Outcome.objects.count() >= len(outcome_ids)

        assert wait_until(stored, timeout=120)
        assert ExposureEvent.objects.filter(event_id__in=exposure_ids).count() == len(exposure_ids)
        assert Outcome.objects.filter(event_id__in=outcome_ids).count() == len(outcome_ids)
        assert ExposureEvent.objects.count() == len(exposure_ids)
        assert Outcome.objects.count() == len(outcome_ids)
    finally:
        worker.stop()
