"""The settings read from the environment, read back (a typo in a setting's name cannot pass
silently), and the production start refused without its secrets. Each case imports the real
settings module in a fresh interpreter with exactly the environment given."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
KEY = "5GgkfOdxmdTvCXkBg8hj7M6qwQmTr2WvkkNcTwqAZcY="
PROBE = """
import json
from django.conf import settings
import django
django.setup()
print(json.dumps({
    "DEBUG": settings.DEBUG,
    "ENGINE": settings.DATABASES["default"]["ENGINE"],
    "DB_NAME": str(settings.DATABASES["default"]["NAME"]),
    "CACHE": settings.CACHES["default"]["BACKEND"],
    "EAGER": settings.CELERY_TASK_ALWAYS_EAGER,
    "BROKER": settings.CELERY_BROKER_URL,
    "BEAT": sorted(e["task"] for e in settings.CELERY_BEAT_SCHEDULE.values()),
    "ALLOWED_HOSTS": settings.ALLOWED_HOSTS,
    "SESSION_COOKIE_SECURE": getattr(settings, "SESSION_COOKIE_SECURE", False),
    "CSRF_COOKIE_SECURE": getattr(settings, "CSRF_COOKIE_SECURE", False),
    "KEYS": settings.OMIXA_ENCRYPTION_KEYS,
    "TIMEOUTS": [settings.OMIXA_UPSTREAM_CONNECT_TIMEOUT, settings.OMIXA_UPSTREAM_FIRST_BYTE_TIMEOUT,
                 settings.OMIXA_UPSTREAM_IDLE_TIMEOUT],
    "VAR_DIR": str(settings.VAR_DIR),
}))
"""


def settings_with(tmp_path, **env) -> subprocess.CompletedProcess:
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("OMIXA_", "DATABASE_URL", "REDIS_URL", "CELERY_"))
    }
    clean.update(DJANGO_SETTINGS_MODULE="omixa.settings", OMIXA_VAR_DIR=str(tmp_path), **env)
    return subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=120
    )


def read(tmp_path, **env) -> dict:
    done = settings_with(tmp_path, **env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_nothing_set_in_debug_is_the_embedded_default(tmp_path):
    values = read(tmp_path, OMIXA_DEBUG="1")
    assert values["DEBUG"] is True
    assert values["ENGINE"] == "django.db.backends.sqlite3"
    assert values["DB_NAME"] == str(tmp_path / "omixa.sqlite3")
    assert values["CACHE"].endswith("LocMemCache")
    assert values["EAGER"] is True and not values["BROKER"]
    assert values["TIMEOUTS"] == [5.0, 300.0, 120.0]
    assert "127.0.0.1" in values["ALLOWED_HOSTS"]


def test_services_configured_means_postgresql_redis_and_real_workers(tmp_path):
    values = read(
        tmp_path,
        OMIXA_DEBUG="1",
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/omixa",
        REDIS_URL="redis://127.0.0.1:6379/3",
    )
    assert values["ENGINE"] == "django.db.backends.postgresql"
    assert values["CACHE"] == "django.core.cache.backends.redis.RedisCache"
    assert values["EAGER"] is False and values["BROKER"] == "redis://127.0.0.1:6379/3"
    assert "billing.tasks.price_pending_usage" in values["BEAT"]


def test_broker_can_differ_from_redis(tmp_path):
    values = read(tmp_path, OMIXA_DEBUG="1", CELERY_BROKER_URL="amqp://guest@127.0.0.1:5672//")
    assert values["EAGER"] is False and values["BROKER"].startswith("amqp://")


def test_production_refuses_to_start_without_a_secret_key(tmp_path):
    done = settings_with(tmp_path, OMIXA_ENCRYPTION_KEY=KEY)
    assert done.returncode != 0 and "OMIXA_SECRET_KEY" in done.stderr


def test_production_refuses_to_start_without_an_encryption_key(tmp_path):
    done = settings_with(tmp_path, OMIXA_SECRET_KEY="x" * 50)
    assert done.returncode != 0 and "OMIXA_ENCRYPTION_KEY" in done.stderr


def test_production_is_secure_by_default(tmp_path):
    values = read(
        tmp_path,
        OMIXA_SECRET_KEY="x" * 50,
        OMIXA_ENCRYPTION_KEY=f"{KEY},{KEY[:-2]}A=",
        OMIXA_ALLOWED_HOSTS="api.example.com, gw.example.com",
        OMIXA_UPSTREAM_CONNECT_TIMEOUT="2.5",
        OMIXA_UPSTREAM_FIRST_BYTE_TIMEOUT="600",
        OMIXA_UPSTREAM_IDLE_TIMEOUT="30",
    )
    assert values["DEBUG"] is False
    assert values["SESSION_COOKIE_SECURE"] is True and values["CSRF_COOKIE_SECURE"] is True
    assert values["ALLOWED_HOSTS"] == ["api.example.com", "gw.example.com"]
    assert values["KEYS"] == [KEY, f"{KEY[:-2]}A="]
    assert values["TIMEOUTS"] == [2.5, 600.0, 30.0]


@pytest.mark.parametrize(
    ("name", "value"),
    [("OMIXA_DEBUG", "maybe"), ("OMIXA_UPSTREAM_CONNECT_TIMEOUT", "soon"), ("OMIXA_UPSTREAM_IDLE_TIMEOUT", "-1")],
)
def test_a_bad_value_fails_loudly_naming_the_variable(tmp_path, name, value):
    env = {"OMIXA_DEBUG": "1", name: value}
    done = settings_with(tmp_path, **env)
    assert done.returncode != 0 and name in done.stderr
