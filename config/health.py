"""Liveness and readiness probes for load balancers and orchestrators (no auth)."""

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse

from analysis.backlog import backlog
from config.celery import app


def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def readyz(request: HttpRequest) -> JsonResponse:
    checks = {"database": _database_ok(), "broker": _broker_ok()}
    ready = all(checks.values())
    return JsonResponse(
        {
            "status": "ok" if ready else "unavailable",
            "checks": checks,
            # Information for monitoring, not readiness: a web process can serve while a
            # snapshot waits (recovery re-publishes it) or events sit in dead letters.
            "backlog": backlog() if checks["database"] else None,
        },
        status=200 if ready else 503,
    )


def _database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except Exception:
        return False


def _broker_ok() -> bool:
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return True  # embedded mode: tasks run in-process, there is no broker to reach
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=1)
        return True
    except Exception:
        return False
