"""Every adapter module is found, whatever was imported first (a fresh interpreter per case)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = """
import os, sys
os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
import django; django.setup()
import gateway.providers.{first}  # imported directly, before anyone asked the registry
from gateway.providers import supported_endpoint_types
print(",".join(supported_endpoint_types()))
"""


def test_importing_one_adapter_first_does_not_hide_the_others():
    for first in ("anthropic_messages", "openai_chat"):
        done = subprocess.run(
            [sys.executable, "-c", SCRIPT.format(first=first)], cwd=ROOT, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip().split(",") == [
            "anthropic_messages",
            "azure_openai_v1_chat",
            "azure_openai_v1_responses",
            "google_vertex",
            "openai_chat",
            "openai_responses",
        ]
