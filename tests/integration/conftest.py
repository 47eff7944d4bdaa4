"""Real processes for integration tests: Celery workers and a gunicorn server.

They run against the test database pytest-django created on PostgreSQL and the Redis broker
of the run, so what a test posts is written by a separate worker process, as in production.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ARTIFACTS = ROOT / "artifacts"


def process_env() -> dict[str, str]:
    """The environment of a production process pointed at this test run's database."""
    db = connection.settings_dict
    url = f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    env = dict(os.environ)
    env.update(
        DATABASE_URL=url,
        CELERY_BROKER_URL=settings.CELERY_BROKER_URL,
        REDIS_URL=settings.REDIS_URL,
        DJANGO_SETTINGS_MODULE="config.settings",
        PYTHONUNBUFFERED="1",
    )
    return env


def wait_until(check: Callable[[], bool], timeout: float = 30.0, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return check()


class CeleryWorker:
    """One `celery worker` process; kill() is a kill -9 of the whole process group."""

    def __init__(
        self,
        name: str,
        concurrency: int = 2,
        extra_env: dict[str, str] | None = None,
        beat: bool = False,
    ) -> None:
        self.name = name
        self.concurrency = concurrency
        self.extra_env = extra_env or {}
        # With `beat`, the worker also runs Celery beat's schedule (`-B`), as one process.
        self.beat = beat
        self.process: subprocess.Popen | None = None
        ARTIFACTS.mkdir(exist_ok=True)
        self.log_path = ARTIFACTS / f"worker-{name}.log"

    def start(self) -> CeleryWorker:
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed with the process
        self.process = subprocess.Popen(
            [
                str(BIN / "celery"),
                "-A",
                "config",
                "worker",
                "-n",
                f"{self.name}@%h",
                "-c",
                str(self.concurrency),
                "--without-gossip",
                "--without-mingle",
                "--loglevel=INFO",
                *(["-B", "-s", str(ARTIFACTS / f"beat-{self.name}")] if self.beat else []),
            ],
            cwd=ROOT,
            env=process_env() | self.extra_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        # The worker logs "celery@host ready." once it consumes from the broker.
        ok = wait_until(lambda: b" ready." in self.log_path.read_bytes()[offset:], timeout=60)
        if not ok:
            self.stop()
            raise RuntimeError(f"celery worker did not answer; see {self.log_path}")
        return self

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class WebServer:
    """A gunicorn process serving the project, as users run it."""

    def __init__(self, workers: int = 1, extra_env: dict[str, str] | None = None) -> None:
        self.workers = workers
        self.extra_env = extra_env or {}
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        ARTIFACTS.mkdir(exist_ok=True)
        self.log_path = ARTIFACTS / f"gunicorn-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> WebServer:
        import urllib.request

        log = open(self.log_path, "ab")  # noqa: SIM115 - closed with the process
        env = process_env() | self.extra_env
        self.process = subprocess.Popen(
            [
                str(BIN / "gunicorn"),
                "config.wsgi",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                str(self.workers),
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

        def up() -> bool:
            try:
                return urllib.request.urlopen(f"{self.url}/healthz", timeout=1).status == 200
            except OSError:
                return False

        if not wait_until(up, timeout=30):
            self.stop()
            raise RuntimeError(f"gunicorn did not start; see {self.log_path}")
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)


@pytest.fixture
def broker_purged(transactional_db) -> None:
    """An empty queue and a fresh config stamp, so no earlier test's tasks leak into this one."""
    from config.celery import app

    app.control.purge()
    redis.Redis.from_url(settings.REDIS_URL).delete("variantlab:config_version")


@pytest.fixture
def celery_worker(broker_purged) -> Iterator[CeleryWorker]:
    worker = CeleryWorker("w1").start()
    yield worker
    worker.stop()


@pytest.fixture
def workers(broker_purged) -> Iterator[Callable[..., CeleryWorker]]:
    """Start workers by hand (kill -9 them, restart them); all are stopped at the end."""
    started: list[CeleryWorker] = []

    def start(name: str, **kwargs: object) -> CeleryWorker:
        worker = CeleryWorker(name, **kwargs)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


class RedisServer:
    """A Redis of the test's own, persisting to disk, so the test can stop and restart it."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--dir",
                str(self.directory),
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        client = redis.Redis(port=self.port, socket_timeout=1)
        if not wait_until(lambda: _pings(client), timeout=15):
            raise RuntimeError("redis-server did not start")
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()  # SIGTERM: Redis flushes its append-only file and exits
            self.process.wait(15)


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path).start()
    yield server
    server.stop()


@pytest.fixture
def web_server(transactional_db) -> Iterator[Callable[..., WebServer]]:
    started: list[WebServer] = []

    def start(**kwargs: object) -> WebServer:
        server = WebServer(**kwargs).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
