"""The usage recorder never loses an event: database outages, dead processes, replays."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import orjson
import pytest

from billing.models import UsageEvent
from gateway import usage
from gateway.usage import UsageRecorder
from workspaces.services import api_key_issue, workspace_create


@pytest.fixture
def key(transactional_db):
    workspace = workspace_create(name="Spool")
    row, _ = api_key_issue(workspace=workspace, name="spool")
    return row


def event(key, **overrides) -> dict:
    return {
        "request_id": str(uuid.uuid4()),
        "client_request_id": "",
        "created_at": time.time(),
        "workspace_id": key.workspace_id,
        "api_key_id": key.id,
        "model_slug": "codex-mini",
        "route_id": 1,
        "route_name": "r",
        "provider": "azure-openai",
        "endpoint_type": "azure_openai_v1_chat",
        "stream": False,
        "outcome": "completed",
        "http_status": 200,
        "service_tier": "",
        "input_tokens": 10,
        "cached_input_tokens": 0,
        "cache_write_tokens": 0,
        "output_tokens": 5,
        "reasoning_tokens": 0,
        "estimated": False,
        "attempts": [],
        "latency_ms": 3,
        "first_byte_ms": 3,
        "error_code": "",
        **overrides,
    }


def test_events_reach_the_database_and_last_used_is_updated(key, tmp_path):
    recorder = UsageRecorder(tmp_path)
    recorder.start()
    try:
        ids = [event(key) for _ in range(20)]
        for item in ids:
            recorder.record(item)
        assert recorder.flush(10)
    finally:
        recorder.stop()
    assert UsageEvent.objects.count() == 20
    key.refresh_from_db()
    assert key.last_used_at is not None


def test_a_database_outage_loses_nothing(key, tmp_path, monkeypatch):
    real = usage.write_batch
    failing = {"on": True}

    def flaky(records):
        if failing["on"]:
            raise RuntimeError("database is down")
        return real(records)

    monkeypatch.setattr(usage, "write_batch", flaky)
    recorder = UsageRecorder(tmp_path)
    recorder.start()
    try:
        for _ in range(5):
            recorder.record(event(key))
        assert not recorder.flush(1.0)  # nothing can be written yet
        assert UsageEvent.objects.count() == 0
        failing["on"] = False  # the database is back
        assert recorder.flush(10)
    finally:
        recorder.stop()
    assert UsageEvent.objects.count() == 5


def test_replaying_a_segment_twice_records_each_event_once(key, tmp_path):
    items = [event(key) for _ in range(3)]
    segment = tmp_path / "usage-999999-deadbeef.jsonl"
    segment.write_bytes(b"".join(orjson.dumps(i) + b"\n" for i in items))
    usage.write_batch(items[:2])  # two were written before the process died, offset not saved
    recorder = UsageRecorder(tmp_path)
    recorder.start()
    try:
        deadline = time.monotonic() + 10
        while segment.exists():
            assert time.monotonic() < deadline, "the orphaned segment was not replayed"
            time.sleep(0.05)
    finally:
        recorder.stop()
    assert UsageEvent.objects.count() == 3


def test_segment_of_a_crashed_process_is_replayed_by_a_live_one(key, tmp_path):
    # A process spools an event and dies (os._exit: no flush, no clean shutdown).
    item = event(key)
    script = f"""
import os, sys
sys.path.insert(0, {str(Path.cwd())!r})
os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
import django; django.setup()
from gateway.usage import UsageRecorder
from pathlib import Path
recorder = UsageRecorder(Path({str(tmp_path)!r}))
recorder.record({item!r})
os._exit(9)
"""
    subprocess.run([sys.executable, "-c", script], check=False, timeout=60)
    assert list(tmp_path.glob("usage-*.jsonl"))
    recorder = UsageRecorder(tmp_path)
    recorder.start()
    try:
        deadline = time.monotonic() + 10
        while not UsageEvent.objects.filter(request_id=item["request_id"]).exists():
            assert time.monotonic() < deadline, "the dead process's event was not replayed"
            time.sleep(0.05)
    finally:
        recorder.stop()


def test_a_live_processs_segment_is_not_stolen(key, tmp_path):
    owner = UsageRecorder(tmp_path)  # holds the lock on its segment, never started
    owner.record(event(key))
    other = UsageRecorder(tmp_path)
    other.start()
    try:
        time.sleep(0.5)
        assert UsageEvent.objects.count() == 0
    finally:
        other.stop()
        os.close(owner._segment.fd)


def test_an_event_whose_key_was_deleted_is_kept(key, tmp_path):
    item = event(key, api_key_id=987654)
    usage.write_batch([item])
    row = UsageEvent.objects.get(request_id=item["request_id"])
    assert row.api_key_id is None and row.workspace_id == key.workspace_id
