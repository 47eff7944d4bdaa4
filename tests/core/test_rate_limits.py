"""Per-key rate limits (docs/api.md §11): 429 `rate_limited` with Retry-After past the limit.

Runs on the per-process counter in embedded mode and on Redis when REDIS_URL is set. The
clock is fixed so every request of a test falls in the same one-second window.
"""

from __future__ import annotations

from io import StringIO
from unittest import mock

import pytest
import redis
from django.core.management import call_command
from rest_framework.test import APIClient

from core import ratelimit
from experiments.models import ApiKey
from experiments.services import api_key_create
from tests.factories import make_experiment

pytestmark = pytest.mark.django_db

NOW = 1_800_000_000.25  # a quarter into a window: Retry-After rounds the rest up to 1 s


@pytest.fixture(autouse=True)
def fixed_clock():
    ratelimit.rate_limits_reset()
    with mock.patch("core.ratelimit.time.time", return_value=NOW) as clock:
        yield clock
    ratelimit.rate_limits_reset()


def client_for(limit: int | None, scopes: tuple[str, ...] = ("all",)) -> APIClient:
    _, raw_key = api_key_create(name="limited", scopes=list(scopes), rate_limit=limit)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    return client


def assign(client: APIClient):
    return client.post("/api/v1/assign", {"unit_id": "u1"}, format="json")


@pytest.mark.parametrize(
    "call",
    [assign, lambda c: c.get("/api/v1/experiments"), lambda c: c.get("/api/v1/config")],
    ids=["assign-fast-path", "experiments", "config"],
)
def test_rate_limit__over_limit__429_rate_limited_with_retry_after(call) -> None:
    # Given a key limited to 3 requests per second
    make_experiment("exp")
    client = client_for(3)
    # When it sends 5 in one second
    responses = [call(client) for _ in range(5)]
    # Then the first 3 are served and the rest refused with the contract's shape
    assert [r.status_code for r in responses] == [200, 200, 200, 429, 429]
    refused = responses[3]
    assert refused.json()["error"]["code"] == "rate_limited"
    assert "retry after 1 s" in refused.json()["error"]["message"]
    assert refused["Retry-After"] == "1"


def test_rate_limit__next_window__served_again(fixed_clock) -> None:
    client = client_for(1)
    assert assign(client).status_code == 200
    assert assign(client).status_code == 429
    fixed_clock.return_value = NOW + 1
    assert assign(client).status_code == 200


def test_rate_limit__keys_counted_apart_and_unlimited_never_refused() -> None:
    limited, other, unlimited = client_for(1), client_for(1), client_for(None)
    assert assign(limited).status_code == 200
    assert assign(other).status_code == 200
    assert all(assign(unlimited).status_code == 200 for _ in range(30))
    assert assign(limited).status_code == 429


def test_rate_limit__fast_path_refusal__counted_once() -> None:
    # Given a key limited to 2, used by /assign's fast path and then refused by DRF
    client = client_for(2)
    key_id = ApiKey.objects.get(name="limited").pk
    with mock.patch.object(
        ratelimit, "rate_limit_wait", wraps=ratelimit.rate_limit_wait
    ) as counted:
        statuses = [assign(client).status_code for _ in range(3)]
    # Then each request was judged once: the 429 reused the fast path's verdict
    assert statuses == [200, 200, 429]
    assert [c.kwargs["key_id"] for c in counted.call_args_list] == [key_id] * 3


def test_rate_limit__wrong_scope__403_not_429() -> None:
    client = client_for(1, scopes=("events",))
    assert client.get("/api/v1/experiments").status_code == 403


def test_rate_limit__redis_unavailable__requests_let_through(settings) -> None:
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # refused at once
    client = client_for(1)
    with mock.patch.object(ratelimit, "_redis", side_effect=redis.ConnectionError("down")):
        assert [assign(client).status_code for _ in range(3)] == [200, 200, 200]


def test_create_api_key__rate_limit_option__stored() -> None:
    out = StringIO()
    call_command(
        "create_api_key", "--name", "ios", "--scopes", "assign", "--rate-limit", "50", stdout=out
    )
    key = ApiKey.objects.get(name="ios")
    assert key.rate_limit == 50
    assert key.hashed_key == ApiKey.hash(out.getvalue().strip())


def test_create_api_key__rate_limit_zero__refused() -> None:
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="rate_limit"):
        call_command("create_api_key", "--name", "x", "--scopes", "assign", "--rate-limit", "0")
    assert not ApiKey.objects.filter(name="x").exists()


def test_admin__api_key_rate_limit__set_on_create_and_change(admin_client) -> None:
    response = admin_client.post(
        "/admin/experiments/apikey/add/",
        {"name": "web", "scopes": ["assign"], "rate_limit": "7", "is_active": "on"},
    )
    assert response.status_code == 302, response.content[:2000]
    key = ApiKey.objects.get(name="web")
    assert key.rate_limit == 7
    admin_client.post(
        f"/admin/experiments/apikey/{key.pk}/change/",
        {"name": "web", "scopes": ["assign"], "rate_limit": "", "is_active": "on"},
    )
    key.refresh_from_db()
    assert key.rate_limit is None
