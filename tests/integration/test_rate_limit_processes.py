"""A key's rate limit holds across web processes: the count is shared in Redis."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request

import pytest

from experiments import services
from tests.factories import make_experiment

pytestmark = pytest.mark.integration

LIMIT = 5


def post_assign(base_url: str, key: str) -> tuple[int, dict, str | None]:
    request = urllib.request.Request(
        f"{base_url}/api/v1/assign",
        data=json.dumps({"unit_id": "u-1"}).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.load(response), None
    except urllib.error.HTTPError as error:
        return error.code, json.load(error), error.headers.get("Retry-After")


def test_rate_limit__two_gunicorn_processes__limit_shared(transactional_db, web_server) -> None:
    # Given a key limited to 5 requests per second and gunicorn with two worker processes
    make_experiment("exp")
    _, raw_key = services.api_key_create(name="limited", scopes=["assign"], rate_limit=LIMIT)
    server = web_server(workers=2)
    results: list[tuple[int, dict, str | None]] = []
    lock = threading.Lock()

    def client() -> None:
        for _ in range(25):
            outcome = post_assign(server.url, raw_key)
            with lock:
                results.append(outcome)

    # When eight clients send 200 requests as fast as they can, spread over both processes
    started = time.time()
    threads = [threading.Thread(target=client) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ended = time.time()
    # Then at most 5 per one-second window were served in total (each process counting for
    # itself would serve up to 10), and the rest were refused with the contract's 429
    windows = int(ended) - int(started) + 1
    served = [r for r in results if r[0] == 200]
    refused = [r for r in results if r[0] == 429]
    assert len(served) + len(refused) == 200
    assert len(served) <= LIMIT * windows, (len(served), windows)
    assert refused, "no request was refused"
    assert all(r[1]["error"]["code"] == "rate_limited" for r in refused)
    assert all(r[2] is not None and int(r[2]) >= 1 for r in refused)
