"""Test settings: the real settings, with the two secrets a production start requires set to test values."""

import os

os.environ.setdefault("OMIXA_SECRET_KEY", "omixa-test-secret-key-not-for-production-0123456789")
os.environ.setdefault("OMIXA_ENCRYPTION_KEY", "5GgkfOdxmdTvCXkBg8hj7M6qwQmTr2WvkkNcTwqAZcY=")
os.environ.setdefault("OMIXA_SIMULATOR", "1")
os.environ.setdefault("OMIXA_ALLOWED_HOSTS", "testserver,127.0.0.1,localhost")

from omixa.settings import *  # noqa: F403
