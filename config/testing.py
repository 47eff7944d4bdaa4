"""pytest plugin (pyproject `-p config.testing`): the environment every test run needs.

Production mode (DATABASE_URL set, DEBUG off) refuses the built-in development secret key, and
the suite runs in that mode against PostgreSQL. A plugin named with `-p` is imported before
pytest-django loads the settings, which a conftest.py is not; the gunicorn and Celery
processes the integration tests start inherit this environment.
"""

import os

os.environ.setdefault("DJANGO_SECRET_KEY", "variantlab-test-suite-key-" + "x" * 40)
