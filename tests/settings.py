"""Test settings: the real settings, with the two secrets a production start requires set to test values."""

import os
import tempfile

os.environ.setdefault("OMIXA_SECRET_KEY", "omixa-test-secret-key-not-for-production-0123456789")
os.environ.setdefault("OMIXA_ENCRYPTION_KEY", "5GgkfOdxmdTvCXkBg8hj7M6qwQmTr2WvkkNcTwqAZcY=")
os.environ.setdefault("OMIXA_SIMULATOR", "1")
# One Redis namespace per test process: concurrent runs on one machine never see each other's keys.
os.environ.setdefault("OMIXA_REDIS_PREFIX", f"omixa-test-{os.getpid()}")
os.environ.setdefault("OMIXA_ALLOWED_HOSTS", "testserver,127.0.0.1,localhost")

from omixa.settings import *  # noqa: F403

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    # A file, not the shared-cache in-memory default: the gateway's threads (usage writer, route
    # disabling) then wait on locks instead of failing with "database table is locked".
    # One file per test process, so parallel runs never share (or delete) each other's database.
    DATABASES["default"]["TEST"] = {"NAME": os.path.join(tempfile.gettempdir(), f"omixa-test-{os.getpid()}.sqlite3")}  # noqa: F405

# Tasks run in process: a test run must not fill a shared Redis queue nobody consumes. The test of a
# real Celery worker configures its own broker and queue.
CELERY_TASK_ALWAYS_EAGER = True
# Nor may an in-process beat sweep pending usage behind a test's back (tests/test_eager_beat.py runs one).
OMIXA_EAGER_BEAT = False
