"""Omixa settings, read from the environment (see README.md for every variable)."""

from __future__ import annotations

import logging
from pathlib import Path

import dj_database_url
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

from omixa.env import env_bool, env_float, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("OMIXA_VAR_DIR") or BASE_DIR / "var")
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env_bool("OMIXA_DEBUG", False)

DEV_SECRET_KEY = "omixa-development-secret-key-do-not-use-in-production"
SECRET_KEY = env_str("OMIXA_SECRET_KEY", DEV_SECRET_KEY)
if not DEBUG and SECRET_KEY == DEV_SECRET_KEY:
    raise ImproperlyConfigured(
        "OMIXA_SECRET_KEY is not set. Set it (a long random string), or set OMIXA_DEBUG=1 for development."
    )

ALLOWED_HOSTS = env_list("OMIXA_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"] if DEBUG else [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI / Redoc assets for /api/docs/, served locally (no CDN)
    "workspaces",
    "billing",
    "gateway",
    "audit",
    "api",
    "console",
    "modeldocs",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Static files (admin, pages, charts) served by Omixa itself: no CDN, no collectstatic step.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "omixa.urls"

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

WSGI_APPLICATION = "omixa.wsgi.application"
ASGI_APPLICATION = "omixa.asgi.application"

DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'omixa.sqlite3'}")
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60, conn_health_checks=True)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The gateway's usage writer and the admin share the file: wait for locks instead of failing.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {"timeout": 20, "transaction_mode": "IMMEDIATE"}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_str("REDIS_URL")
# Every Redis key Omixa writes (breaker state, limit counters) starts with this.
OMIXA_REDIS_PREFIX = env_str("OMIXA_REDIS_PREFIX", "omixa")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": OMIXA_REDIS_PREFIX,
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Celery: eager (in process) when no broker is configured, so `make run` works on a bare machine.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL)
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Workers log through LOGGING (JSON in production, the redaction filter, the request id), not Celery's own.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULE = {
    "price-pending-usage": {"task": "billing.tasks.price_pending_usage", "schedule": 60.0},
    "roll-up-invoices": {"task": "billing.tasks.roll_up_invoices", "schedule": crontab(minute="*/15")},
}

# Secrets at rest: a Fernet key, or a comma-separated list (the first encrypts, all decrypt).
OMIXA_ENCRYPTION_KEYS = env_list("OMIXA_ENCRYPTION_KEY", [])
if not OMIXA_ENCRYPTION_KEYS and not DEBUG:
    raise ImproperlyConfigured(
        "OMIXA_ENCRYPTION_KEY is not set. Generate one with "
        "`python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'`."
    )

# Upstream timeouts in seconds; a provider key may override each.
OMIXA_UPSTREAM_CONNECT_TIMEOUT = env_float("OMIXA_UPSTREAM_CONNECT_TIMEOUT", 5.0)
OMIXA_UPSTREAM_FIRST_BYTE_TIMEOUT = env_float("OMIXA_UPSTREAM_FIRST_BYTE_TIMEOUT", 300.0)
OMIXA_UPSTREAM_IDLE_TIMEOUT = env_float("OMIXA_UPSTREAM_IDLE_TIMEOUT", 120.0)
# Largest request body the gateway accepts (bytes); larger is a 413.
OMIXA_MAX_REQUEST_BYTES = env_int("OMIXA_MAX_REQUEST_BYTES", 32 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = OMIXA_MAX_REQUEST_BYTES
# The local simulated provider (offline demo upstream at /simulator/); on by default in DEBUG.
OMIXA_SIMULATOR = env_bool("OMIXA_SIMULATOR", DEBUG)
# Without a broker, the gateway process runs CELERY_BEAT_SCHEDULE itself (omixa/eager_beat.py).
OMIXA_EAGER_BEAT = env_bool("OMIXA_EAGER_BEAT", True)
# Where the gateway spools usage events before they reach the database.
OMIXA_USAGE_SPOOL_DIR = Path(env_str("OMIXA_USAGE_SPOOL_DIR") or VAR_DIR / "spool")
# Seconds a request's budget reservation lives if the request never settles (its worker died): above
# the upstream first-byte timeout, so a slow but live request keeps its reservation.
OMIXA_LIMITS_RESERVATION_TTL = env_float("OMIXA_LIMITS_RESERVATION_TTL", 900.0)
if OMIXA_LIMITS_RESERVATION_TTL <= 0:
    raise ImproperlyConfigured("OMIXA_LIMITS_RESERVATION_TTL must be a positive number of seconds")

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"  # only `collectstatic` fills it; WhiteNoise also serves from the finders
STATIC_ROOT.mkdir(exist_ok=True)
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"

REST_FRAMEWORK = {
    # A management key (Bearer omx_admin_…) first, so that a request without credentials gets 401.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "api.authentication.AdminKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "api.errors.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Omixa API",
    "DESCRIPTION": (
        "The management API (`/api/v1/workspaces/...`: keys, members, usage, requests, invoices, audit log), "
        "authenticated by a session or a management key (`Authorization: Bearer omx_admin_…`), and the "
        "OpenAI-compatible gateway (`/api/v1/chat/completions`, `/api/v1/responses`, `/api/v1/models`) with an "
        "inference key (`omx_live_…`). Errors use OpenAI's shape. Money is a decimal string. Lists are "
        "cursor-paginated: follow `next` / `previous`; `page_size` up to 200."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema and the reference page are public and the same for everyone: no credentials are read
    # (a client sending its inference key along must not get the management API's 403).
    "SERVE_AUTHENTICATION": [],
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    # The reference page's sections, in a reader's order.
    "TAGS": [
        {"name": "Workspaces"},
        {"name": "API keys"},
        {"name": "Members"},
        {"name": "Usage", "description": "Usage aggregates and each request's record."},
        {"name": "Invoices"},
        {"name": "Audit log"},
        {"name": "Gateway (OpenAI-compatible)", "description": "Authenticated by an inference key (omx_live_…)."},
    ],
    "PATH_CONVERTER_OVERRIDES": {
        "id": {"type": "integer", "minimum": 0, "maximum": 999_999_999_999_999_999},
        "slug": {"type": "string", "pattern": "^[-a-zA-Z0-9_]+$"},
    },
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "api.schema.add_gateway_and_errors",
    ],
}

if not DEBUG:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_CONTENT_TYPE_NOSNIFF = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = env_int("OMIXA_HSTS_SECONDS", 0)

# Metrics of several worker processes (uvicorn --workers N) are shared through files in this directory
# (prometheus-client's multiprocess mode; it reads the variable itself). Empty it before the server starts.
PROMETHEUS_MULTIPROC_DIR = env_str("PROMETHEUS_MULTIPROC_DIR")
if PROMETHEUS_MULTIPROC_DIR:
    Path(PROMETHEUS_MULTIPROC_DIR).mkdir(parents=True, exist_ok=True)

# `json`: one JSON object per line with the request id (for log collectors); `plain`: for people.
OMIXA_LOG_FORMAT = env_str("OMIXA_LOG_FORMAT", "plain" if DEBUG else "json")
if OMIXA_LOG_FORMAT not in ("json", "plain"):
    raise ImproperlyConfigured(f"OMIXA_LOG_FORMAT must be json or plain, got {OMIXA_LOG_FORMAT!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "redact": {"()": "omixa.logging.RedactSecretsFilter"},
        "request_id": {"()": "omixa.logging.RequestIdFilter"},
    },
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "omixa.logging.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": OMIXA_LOG_FORMAT,
            "filters": ["redact", "request_id"],
        },
    },
    "root": {"handlers": ["console"], "level": env_str("OMIXA_LOG_LEVEL", "INFO")},
    # httpx logs every upstream request at INFO: noise, and time on the hot path.
    "loggers": {
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
        # Django's own console handler would print every record a second time.
        "django": {"handlers": [], "level": "INFO", "propagate": True},
        # 4xx answers are the clients' business (and a flood of bad keys must not flood the logs);
        # usage events record every request. Server errors still log.
        "django.request": {"level": "ERROR"},
    },
}
if OMIXA_LOG_FORMAT == "json":
    # uvicorn's loggers do not propagate to the root: give them the same JSON handler. Not to "uvicorn"
    # itself: dictConfig resets a configured logger's children, and uvicorn.access would then log
    # through it even after `--no-access-log` (a formatted line per request). The access log gets the
    # JSON handler only when uvicorn has one (uvicorn configures logging before it imports the app).
    LOGGING["loggers"]["uvicorn.error"] = {"handlers": ["console"], "propagate": False}
    if logging.getLogger("uvicorn.access").handlers:
        LOGGING["loggers"]["uvicorn.access"] = {"handlers": ["console"], "propagate": False}
