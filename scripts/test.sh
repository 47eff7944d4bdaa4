#!/usr/bin/env bash
# Runs the suite the way users run Variantlab, each test where its result can differ:
#   1. unit tests (marker `unit`: no database, no process), once, against a PostgreSQL URL
#      nothing answers and without a broker, which proves they need neither; on every core, as
#      they share nothing;
#   2. embedded defaults: SQLite and eager Celery (no services needed), the database and browser
#      tests, on every core;
#   3. production mode: PostgreSQL, Redis and real Celery worker processes started by the tests,
#      every test but the unit and browser tests (database, integration, slow).
# Run 3 is skipped, and said so, when PostgreSQL or Redis does not answer, unless
# VARIANTLAB_REQUIRE_SERVICES=1 (as in CI), which turns that skip into a failure.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
PG_URL=${VARIANTLAB_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/variantlab}
REDIS_URL_TEST=${VARIANTLAB_TEST_REDIS_URL:-redis://127.0.0.1:6379/15}
ARGS=$#  # arguments for pytest (a file, a -k filter), passed to every run
mkdir -p artifacts

services_up() {
  "$PY" - "$PG_URL" "$REDIS_URL_TEST" <<'PYEOF'
import sys
import psycopg, redis
try:
    # The maintenance database of the same server: the test database need not exist yet.
    psycopg.connect(sys.argv[1].rsplit("/", 1)[0] + "/postgres", connect_timeout=3).close()
    redis.Redis.from_url(sys.argv[2], socket_timeout=3).ping()
except Exception as exc:
    print(f"not answering: {exc}")
    sys.exit(1)
PYEOF
}

echo "== 1/3 unit tests: no database (an unreachable PostgreSQL URL), no broker =="
env -u CELERY_BROKER_URL -u REDIS_URL DATABASE_URL=postgres://nobody@127.0.0.1:1/unreachable \
  "$PY" -m pytest -m "unit" -q -p no:cacheprovider -n auto "$@"
unit=$?

# Pages render the same on either database: Chromium drives them once, in run 2.
embedded_markers="not unit and not integration and not slow"

echo "== 2/3 embedded mode: SQLite, eager Celery =="
# Each pytest-xdist worker has its own in-memory database; a file's tests stay on one worker.
# The schema fuzz runs on its own: it counts the requests of schemathesis' generated tests,
# which a worker does not see in full.
FUZZ=tests/core/test_api_fuzz.py
env -u DATABASE_URL -u CELERY_BROKER_URL -u REDIS_URL \
  "$PY" -m pytest -m "$embedded_markers" -q -p no:cacheprovider -n auto --dist loadfile \
  --ignore="$FUZZ" "$@"
embedded=$?
if [ "$ARGS" -eq 0 ]; then
  env -u DATABASE_URL -u CELERY_BROKER_URL -u REDIS_URL \
    "$PY" -m pytest -m "$embedded_markers" -q -p no:cacheprovider "$FUZZ"
  fuzz=$?
  [ "$fuzz" -eq 0 ] || embedded=$fuzz
fi

echo "== 3/3 production mode: PostgreSQL, Redis, real Celery workers =="
if services_up; then
  DATABASE_URL=$PG_URL CELERY_BROKER_URL=$REDIS_URL_TEST REDIS_URL=$REDIS_URL_TEST \
    "$PY" -m pytest -m "not unit and not browser" -q -p no:cacheprovider "$@"
  production=$?
elif [ "${VARIANTLAB_REQUIRE_SERVICES:-0}" = "1" ]; then
  echo "FAIL: PostgreSQL or Redis is not answering and VARIANTLAB_REQUIRE_SERVICES=1."
  production=1
else
  echo "SKIPPED: PostgreSQL ($PG_URL) or Redis ($REDIS_URL_TEST) is not answering;"
  echo "         integration tests did not run. Start them to run the full suite."
  production=0
fi

# With arguments (a file, a -k filter) a run may select no test (pytest's exit code 5): fine.
passed() { [ "$1" -eq 0 ] || { [ "$ARGS" -gt 0 ] && [ "$1" -eq 5 ]; }; }
passed "$unit" && passed "$embedded" && passed "$production"
