"""Settings of the baseline: two middlewares, no apps, no database."""

SECRET_KEY = "benchmark-baseline-only"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS: list[str] = []
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
]
ROOT_URLCONF = "bareproj.urls"
WSGI_APPLICATION = "bareproj.wsgi.application"
DATABASES: dict = {}
USE_TZ = True
LOGGING_CONFIG = None
