#!/usr/bin/env bash
# Runs the suite twice, the way users run Variantlab:
#   1. embedded defaults: SQLite and eager Celery (no services needed);
#   2. production mode: PostgreSQL, Redis and real Celery worker processes started by the tests.
# Run 2 is skipped, and said so, when PostgreSQL or Redis does not answer, unless
# VARIANTLAB_REQUIRE_SERVICES=1 (as in CI), which turns that skip into a failure.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
PG_URL=${VARIANTLAB_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/variantlab}
REDIS_URL_TEST=${VARIANTLAB_TEST_REDIS_URL:-redis://127.0.0.1:6379/15}
mkdir -p artifacts

echo "== 1/2 embedded mode: SQLite, eager Celery =="
env -u DATABASE_URL -u CELERY_BROKER_URL -u REDIS_URL \
  "$PY" -m pytest -m "not integration and not slow" -q -p no:cacheprovider "$@"
embedded=$?

services_up() {
  "$PY" - "$PG_URL" "$REDIS_URL_TEST" <<'PYEOF'
import sys
import psycopg, redis
try:
    # The server's own "postgres" database: the test database may not exist yet.
    psycopg.connect(sys.argv[1].rsplit("/", 1)[0] + "/postgres", connect_timeout=3).close()
    redis.Redis.from_url(sys.argv[2], socket_timeout=3).ping()
except Exception as exc:
    print(f"not answering: {exc}")
    sys.exit(1)
PYEOF
}

echo "== 2/2 production mode: PostgreSQL, Redis, real Celery workers =="
if services_up; then
  DATABASE_URL=$PG_URL CELERY_BROKER_URL=$REDIS_URL_TEST REDIS_URL=$REDIS_URL_TEST \
    "$PY" -m pytest -q -p no:cacheprovider "$@"
  production=$?
elif [ "${VARIANTLAB_REQUIRE_SERVICES:-0}" = "1" ]; then
  echo "FAIL: PostgreSQL or Redis is not answering and VARIANTLAB_REQUIRE_SERVICES=1."
  production=1
else
  echo "SKIPPED: PostgreSQL ($PG_URL) or Redis ($REDIS_URL_TEST) is not answering;"
  echo "         integration tests did not run. Start them to run the full suite."
  production=0
fi

[ "$embedded" -eq 0 ] && [ "$production" -eq 0 ]
