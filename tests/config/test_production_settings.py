"""Production safety (docs/api.md §11): the development key is refused in production mode, the
documented HTTPS settings pass `check --deploy`, and plain HTTP on the loopback still works."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Never connected to: `check` does not open a database connection.
PRODUCTION_DB = "postgres://nobody@127.0.0.1:1/none"


def manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """manage.py in a clean environment: nothing from this run's DJANGO_/service settings."""
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "DATABASE_", "CELERY_", "REDIS_"))
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**base, "DJANGO_SETTINGS_MODULE": "config.settings", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def documented_settings() -> dict[str, str]:
    """The KEY=VALUE lines of the repository's .env.example."""
    lines = (ROOT / ".env.example").read_text().splitlines()
    pairs = [line.split("=", 1) for line in lines if line.strip() and not line.startswith("#")]
    return {key.strip(): value.strip() for key, value in pairs}


@pytest.mark.parametrize(
    "key",
    [None, "variantlab-insecure-development-key-change-me", "change-me-to-a-long-random-string"],
)
def test_settings__production_mode_with_development_key__refuses_to_start(key) -> None:
    # Given DEBUG off, a DATABASE_URL and no key (or a known one)
    env = {"DATABASE_URL": PRODUCTION_DB, "DJANGO_DEBUG": "false"}
    if key:
        env["DJANGO_SECRET_KEY"] = key
    # When any command starts
    result = manage("check", **env)
    # Then it stops with a message that says what to set
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "DJANGO_SECRET_KEY is not set" in result.stderr


@pytest.mark.parametrize(
    "env",
    [
        {},  # embedded mode: the demo and a first test run need no key
        {"DATABASE_URL": PRODUCTION_DB, "DJANGO_DEBUG": "true"},
        {"DATABASE_URL": PRODUCTION_DB, "DJANGO_SECRET_KEY": "k" * 20 + secrets.token_hex(20)},
    ],
)
def test_settings__embedded_debug_or_real_key__starts(env) -> None:
    result = manage("check", **env)
    assert result.returncode == 0, result.stderr


def test_check_deploy__documented_production_settings__no_issues() -> None:
    # Given .env.example with its placeholder key replaced by a real one
    env = documented_settings() | {"DJANGO_SECRET_KEY": secrets.token_urlsafe(50)}
    # When
    result = manage("check", "--deploy", "--fail-level", "WARNING", **env)
    # Then not one warning
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_check_deploy__defaults__warns_about_https() -> None:
    # The defaults are for plain HTTP; the check must notice (so the test above means something).
    result = manage(
        "check", "--deploy", "--fail-level", "WARNING", DJANGO_SECRET_KEY=secrets.token_urlsafe(50)
    )
    assert result.returncode != 0
    assert "security.W008" in result.stderr + result.stdout


@pytest.mark.django_db
def test_plain_http__defaults__served_without_redirect(client, make_api_client) -> None:
    assert client.get("/healthz").status_code == 200
    assert make_api_client("read").get("/api/v1/experiments").status_code == 200


@pytest.mark.django_db
def test_ssl_redirect__on__http_redirected_probes_exempt(client, settings) -> None:
    settings.SECURE_SSL_REDIRECT = True
    response = client.get("/api/v1/experiments")
    assert response.status_code == 301
    assert response["Location"].startswith("https://")
    assert client.get("/healthz").status_code == 200


@pytest.mark.django_db
def test_proxy_header__https_forwarded__not_redirected_and_hsts_sent(client, settings) -> None:
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 3600
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    response = client.get("/healthz", HTTP_X_FORWARDED_PROTO="https")
    assert response.status_code == 200
    assert response["Strict-Transport-Security"].startswith("max-age=3600")
