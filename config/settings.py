"""One settings module, driven by the environment.

With nothing set, Variantlab runs on SQLite with Celery in eager mode so that a first
`make demo` works on any machine. Set DATABASE_URL and CELERY_BROKER_URL (and REDIS_URL for
the shared config-version stamp) to run on PostgreSQL, Redis and real Celery workers.
"""

import warnings
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured
from kombu import Exchange, Queue

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DJANGO_DEBUG", default=False)
# The default key is only good for a laptop: anyone who knows it (it is in this file) can
# forge sessions and password-reset links. Production mode (DEBUG off and a DATABASE_URL:
# docs/api.md §11) refuses it, and the placeholder of the example env files; the embedded demo
# (no DATABASE_URL) keeps working without a key.
DEVELOPMENT_SECRET_KEY = "variantlab-insecure-development-key-change-me"
SECRET_KEY = env("DJANGO_SECRET_KEY", default=DEVELOPMENT_SECRET_KEY)
PRODUCTION_MODE = not DEBUG and bool(env("DATABASE_URL", default=""))
KNOWN_KEY = SECRET_KEY == DEVELOPMENT_SECRET_KEY or SECRET_KEY.startswith("change-me")
if PRODUCTION_MODE and KNOWN_KEY:
    raise ImproperlyConfigured(
        "DJANGO_SECRET_KEY is not set (or still the example's placeholder) while DJANGO_DEBUG "
        "is off and DATABASE_URL is set. Set it to a long random string, e.g. the output of "
        "`python -c 'import secrets; print(secrets.token_urlsafe(50))'`."
    )
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "core",
    "experiments",
    "assignment",
    "events",
    "analysis",
    "audit",
    "demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "core.parsers.NulInUrlMiddleware",
    # Serves the admin's, the dashboard's and Swagger UI's static files from the same process,
    # under gunicorn and under `runserver` with DEBUG off alike (no separate web server needed).
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Who acts, for the audit log: the admin user, or the API key once DRF authenticates it.
    "core.actors.ActorMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

# What apps call on their own request path (config/handlers.py): API-key only, no browser, so
# no sessions, CSRF, auth, audit actor, messages, static files or frame options. The security
# headers (nosniff, HSTS, referrer policy), host validation and the NUL check stay.
MACHINE_API_PATHS = (
    "/api/v1/assign",
    "/api/v1/config",
    "/api/v1/features",
    "/api/v1/events",
    "/api/features/",
)
MACHINE_API_MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "core.parsers.NulInUrlMiddleware",
    "django.middleware.common.CommonMiddleware",
]

# HTTPS: off by default so plain HTTP on the loopback works (demo, tests, a reverse proxy on
# the same host); docs/production.md and docker/.env.example switch all of it on for a site
# served over HTTPS. `manage.py check --deploy` is clean with those set.
# Behind a proxy that terminates TLS, trust its X-Forwarded-Proto (only if the proxy sets it
# and strips it from clients), or the redirect below loops.
if env.bool("DJANGO_SECURE_PROXY_SSL_HEADER", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=False)
# Exempt the probes: a load balancer's health check speaks plain HTTP to the process.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=False)
# Cookies follow the redirect unless set on their own: an HTTPS site wants both secure.
SESSION_COOKIE_SECURE = env.bool("DJANGO_SESSION_COOKIE_SECURE", default=SECURE_SSL_REDIRECT)
CSRF_COOKIE_SECURE = env.bool("DJANGO_CSRF_COOKIE_SECURE", default=SECURE_SSL_REDIRECT)

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The eager demo writes from request threads; wait for the lock instead of failing.
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 20

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# Find static files in the installed apps without a collectstatic step, so the two-command
# start works; a deployment may still run collectstatic (the Docker image does).
WHITENOISE_USE_FINDERS = True
# Without collectstatic, STATIC_ROOT does not exist; the finders above cover it.
warnings.filterwarnings("ignore", message="No directory at")

# Redis holds the config-version stamp that every web process polls; without it the stamp
# lives in the database (one indexed read about once a second per process).
REDIS_URL = env("REDIS_URL", default="")

CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="")
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
# A task is acknowledged only once it has run, so a killed worker's tasks are redelivered.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Tasks of a worker that died are redelivered after this many seconds. Tasks are idempotent,
# so a short timeout only risks a harmless replay of a slow task.
CELERY_VISIBILITY_TIMEOUT = env.int("CELERY_VISIBILITY_TIMEOUT", default=300)
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": CELERY_VISIBILITY_TIMEOUT,
    # Workers take a Redis mutex to restore orphaned tasks; one killed while holding it would
    # block every other worker's redelivery for kombu's default of 300 s. A restore takes
    # milliseconds, and a replay is harmless (tasks are idempotent), so let it lapse sooner.
    "unacked_mutex_expire": min(60, CELERY_VISIBILITY_TIMEOUT),
    # Look for such orphaned tasks every N seconds (one cheap sorted-set read each time).
    "unacked_restore_interval": env.int("CELERY_UNACKED_RESTORE_INTERVAL", default=10),
    "unacked_restore_throttle": 1,
    "socket_timeout": 2,
    "socket_connect_timeout": 2,
}
# When the broker is down, fail fast so /events can answer 503 and clients retry.
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.5,
}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A snapshot queued or running for longer than this is stuck (worker killed, task never
# published): beat and the next POST .../analyze recover it (docs/api.md §11: within 10
# minutes). Keep it well above the longest snapshot compute (docs/benchmarks.md).
VARIANTLAB_SNAPSHOT_RECOVERY_SECONDS = env.int("VARIANTLAB_SNAPSHOT_RECOVERY_SECONDS", default=300)
CELERY_BEAT_SCHEDULE = {
    # Each experiment has its own interval (analysis settings); this only checks who is due.
    "snapshots-due": {"task": "analysis.tasks.snapshots_due_task", "schedule": 60.0},
    # Guardrail-only looks every analysis.guardrail_check_minutes (docs/api.md §10).
    "guardrail-checks-due": {
        "task": "analysis.tasks.guardrail_checks_due_task",
        "schedule": 60.0,
    },
    # Recovery within VARIANTLAB_SNAPSHOT_RECOVERY_SECONDS + this interval (5 + 1 min).
    "snapshots-recover": {
        "task": "analysis.tasks.snapshots_recover_task",
        "schedule": env.float("VARIANTLAB_SNAPSHOT_RECOVERY_CHECK_SECONDS", default=60.0),
    },
}
# Tasks go straight to their queue through the broker's default (nameless) exchange: the
# Redis transport then skips a binding lookup, one round trip, on every publish.
CELERY_TASK_QUEUES = [Queue("celery", Exchange(""), routing_key="celery")]
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["core.auth.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["core.auth.HasScope"],
    "DEFAULT_THROTTLE_CLASSES": ["core.auth.ApiKeyRateThrottle"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["core.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "core.errors.api_exception_handler",
    "UNAUTHENTICATED_USER": None,
}
# The model core/auth.py reads API keys from (as AUTH_USER_MODEL names the user model): the keys
# are managed in `experiments`, and `core` imports no app.
VARIANTLAB_API_KEY_MODEL = "experiments.ApiKey"

SPECTACULAR_SETTINGS = {
    "TITLE": "Variantlab API",
    "DESCRIPTION": (
        "Assignment, events, experiments and statistics for A/B tests of ML features.\n\n"
        "The full reference, with examples, the evaluation algorithm, the error codes and the "
        "statistics, is `docs/api.md` in the Variantlab repository (section numbers such as "
        "§4 below refer to it). Every endpoint takes an API key as `Authorization: Bearer "
        "<key>`: press *Authorize* and paste one to try requests here."
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_AUTHENTICATION": [],
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    # Swagger UI is served from the installed sidecar package, not a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # One name for the experiment's analysis method in inputs and outputs (else a hashed name
    # and a check --deploy warning).
    "ENUM_NAME_OVERRIDES": {"AnalysisMethodEnum": "experiments.models.Method"},
    # Every operation documents the error shape (docs/api.md §4), so responses can be checked.
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "core.schema.error_responses_hook",
    ],
}

# How often a web process checks the config-version stamp (seconds).
VARIANTLAB_CONFIG_POLL_SECONDS = env.float("VARIANTLAB_CONFIG_POLL_SECONDS", default=1.0)

# > 0 (default 0.2): each web process batches /assign exposures and publishes them as one
# Celery task every N seconds and on a graceful stop. 0: one task per request, published
# before answering. See assignment/exposure_buffer.py for what each mode can lose.
VARIANTLAB_EXPOSURE_FLUSH_SECONDS = env.float("VARIANTLAB_EXPOSURE_FLUSH_SECONDS", default=0.2)

# Alerts (docs/api.md §10): JSON POSTs to these URLs (comma-separated), e-mail to owners that
# are addresses. VARIANTLAB_PUBLIC_URL is where alert links point (the admin's results page).
VARIANTLAB_ALERT_WEBHOOKS = env.list("VARIANTLAB_ALERT_WEBHOOKS", default=[])
VARIANTLAB_ALERT_TIMEOUT_SECONDS = env.float("VARIANTLAB_ALERT_TIMEOUT_SECONDS", default=5.0)
VARIANTLAB_PUBLIC_URL = env("VARIANTLAB_PUBLIC_URL", default="http://127.0.0.1:8000")
EMAIL_BACKEND = env("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="variantlab@localhost")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
}
