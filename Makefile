# The two commands of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install demo run test test-unit lint typecheck format worker beat bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# The server imports its assignment engine from the Python client (one implementation of
# docs/api.md §2), so the client is installed first; pip cannot take a relative path in pyproject.
$(VENV)/.installed: pyproject.toml clients/python/pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e './clients/python[test]'
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

## Embedded defaults (SQLite, eager Celery): seed demo data and serve on http://127.0.0.1:8000/
demo: install
	$(BIN)/python manage.py demo
	$(BIN)/python manage.py runserver $(HOST):$(PORT)

run: install
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/gunicorn config.wsgi --bind $(HOST):$(PORT) --workers 2

## The whole suite: embedded mode, then PostgreSQL + Redis + a real Celery worker when they answer.
test: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(MAKE) typecheck
	bash scripts/test.sh

## Only the tests marked `unit` (tests/markers.py), with a PostgreSQL URL nothing answers and no
## broker: proves they need no database and no service. The database and process tests run in
## `make test`.
UNIT_MARKERS ?= unit and not slow
test-unit: install
	env -u CELERY_BROKER_URL -u REDIS_URL DATABASE_URL=postgres://nobody@127.0.0.1:1/unreachable \
	  $(BIN)/python -m pytest -m "$(UNIT_MARKERS)" -q -p no:cacheprovider

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

## mypy: default everywhere, strict for core, assignment and analysis/stats (pyproject.toml);
## the Python client strictly on its own (it ships py.typed to apps).
typecheck: install
	$(BIN)/mypy
	cd clients/python && $(abspath $(BIN))/mypy --strict src

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

worker: install
	$(BIN)/celery -A config worker --loglevel=INFO

beat: install
	$(BIN)/celery -A config beat --loglevel=INFO

## Benchmarks (PostgreSQL + Redis on 127.0.0.1; see docs/benchmarks.md). Not part of `make test`.
## benchmarks/assign.py exits non-zero when one of its targets is missed (see docs/benchmarks.md).
bench: install
	$(BIN)/python benchmarks/stats.py
	-$(BIN)/python benchmarks/assign.py
	-$(BIN)/python benchmarks/assign.py --exposure-flush-seconds 0
	$(BIN)/python benchmarks/aggregate.py
	$(BIN)/python benchmarks/results.py
	$(BIN)/python benchmarks/client.py
