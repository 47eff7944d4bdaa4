"""WSGI entry point of the benchmark's baseline: config.wsgi's application, same settings and
middleware, with `benchmarks.bare_urls` as its URLconf so that `/bench/bare` answers a plain
Django JsonResponse. Served by gunicorn exactly like `config.wsgi` in `benchmarks/assign.py`.
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

from django.conf import settings

settings.ROOT_URLCONF = "benchmarks.bare_urls"

from config.wsgi import application  # noqa: E402

__all__ = ["application"]
