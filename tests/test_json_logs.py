"""Structured logs: one JSON object per line, the request id on every line of a gateway request, and
the redaction filter applied to the JSON output too (message, arguments, `extra` fields, tracebacks).
"""

from __future__ import annotations

import contextvars
import io
import json
import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.services import provider_key_add
from gateway.usage import write_batch
from omixa.logging import JsonFormatter, RedactSecretsFilter, RequestIdFilter, bind_request_id, request_id_var
from tests.gateway_fixtures import gateway, world  # noqa: F401
from tests.mocks.fixtures import mock_upstream  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]
OMX_LIVE = "omx_live_" + "Jq7_x-Y2" * 5
BODY = {"model": "codex-mini", "messages": [{"role": "user", "content": "hello"}]}


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """The root logger also writes, as configured in settings (JSON, redacted, request id), to a buffer."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactSecretsFilter())
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield stream
    finally:
        root.removeHandler(handler)


def parsed(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]  # every line is one JSON object


def test_a_line_is_json_with_the_bound_request_id_and_no_secret(json_lines):
    log = logging.getLogger("omixa.test")
    token = request_id_var.set(None)
    try:
        bind_request_id("req-123")
        log.warning("key %s refused", OMX_LIVE, extra={"headers": {"api-key": "provider-secret-0123456789"}})
        try:
            raise RuntimeError(f"boom with Authorization: Bearer {OMX_LIVE}")
        except RuntimeError:
            log.exception("failed for %s", OMX_LIVE)
        log.warning("from a thread without a request", extra={"request_id": "req-explicit", "color_message": "\x1b[1m"})
    finally:
        request_id_var.reset(token)
    contextvars.Context().run(log.warning, "outside any request")  # an empty context: nothing bound

    text = json_lines.getvalue()
    assert OMX_LIVE not in text and "provider-secret-0123456789" not in text
    first, second, third, fourth = parsed(json_lines)
    assert list(first)[:5] == ["timestamp", "level", "logger", "request_id", "message"]
    assert first["request_id"] == "req-123" and first["level"] == "WARNING" and first["logger"] == "omixa.test"
    assert first["message"] == "key omx_[REDACTED] refused"
    assert first["headers"] == {"api-key": "[REDACTED]"}
    assert second["request_id"] == "req-123"
    assert "RuntimeError" in second["exc_info"] and "[REDACTED]" in second["exc_info"]
    assert third["request_id"] == "req-explicit" and "color_message" not in third  # uvicorn's coloured copy
    assert fourth["request_id"] is None


def test_every_line_of_a_gateway_request_carries_its_request_id(gateway, world, mock_upstream, json_lines):
    # The first route's secret is wrong: the upstream's 401 takes it out of rotation (a warning logged
    # from inside the request), and the request fails over to the second.
    wrong_secret = "wrong-provider-secret-0123456789"
    for priority, secret in ((1, wrong_secret), (2, mock_upstream.azure_key)):
        provider_key_add(
            model_slug="codex-mini",
            provider="azure-openai",
            base_url=mock_upstream.url,
            api_key=secret,
            deployment="codex-mini",
            priority=priority,
        )
    gateway.refresh()
    response = httpx.post(
        gateway.api + "/chat/completions", headers={"Authorization": f"Bearer {world.key}"}, json=BODY, timeout=20
    )
    assert response.status_code == 200, response.text
    request_id = response.headers["x-request-id"]

    # And a bug of ours in another request: its traceback line carries that request's id.
    from gateway import pipeline

    async def broken(call):
        raise RuntimeError(f"internal failure with {world.key}")

    original, pipeline.run = pipeline.run, broken
    try:
        failed = httpx.post(
            gateway.api + "/chat/completions", headers={"Authorization": f"Bearer {world.key}"}, json=BODY, timeout=20
        )
    finally:
        pipeline.run = original
    assert failed.status_code == 500
    gateway.flush_usage()

    lines = parsed(json_lines)
    rotation = [line for line in lines if "taken out of rotation" in line["message"]]
    assert rotation and all(line["request_id"] == request_id for line in rotation), lines
    errors = [line for line in lines if "unexpected error" in line["message"]]
    assert errors and errors[0]["request_id"] == failed.headers["x-request-id"] != request_id
    assert "RuntimeError" in errors[0]["exc_info"]
    text = json_lines.getvalue()
    for secret in (world.key, wrong_secret, mock_upstream.azure_key):
        assert secret not in text


def test_the_usage_writer_logs_with_the_events_request_id(transactional_db, world, json_lines):
    request_id = str(uuid.uuid4())
    record = {
        "request_id": request_id,
        "created_at": 1_700_000_000.0,
        "workspace_id": world.workspace.id,
        "api_key_id": 987_654_321,  # a key deleted since: recorded without it, and said so
        "model_slug": "codex-mini",
        "outcome": "completed",
        "http_status": 200,
    }
    assert write_batch([record]) == [request_id]
    lines = [line for line in parsed(json_lines) if "no longer exists" in line["message"]]
    assert len(lines) == 1 and lines[0]["request_id"] == request_id


PROBE = """
import logging
import django
django.setup()
from omixa.logging import bind_request_id
bind_request_id("req-from-probe")
logging.getLogger("omixa.probe").warning("refused key %s", "{key}")
"""


def run_probe(tmp_path, **env) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OMIXA_", "DATABASE_URL", "REDIS_URL"))}
    clean.update(
        DJANGO_SETTINGS_MODULE="omixa.settings",
        OMIXA_VAR_DIR=str(tmp_path),
        OMIXA_SECRET_KEY="x" * 50,
        OMIXA_ENCRYPTION_KEY="5GgkfOdxmdTvCXkBg8hj7M6qwQmTr2WvkkNcTwqAZcY=",
        **env,
    )
    return subprocess.run(
        [sys.executable, "-c", PROBE.format(key=OMX_LIVE)], cwd=ROOT, env=clean, capture_output=True, text=True
    )


def test_production_logs_json_by_default_and_plain_on_request(tmp_path):
    done = run_probe(tmp_path)
    assert done.returncode == 0, done.stderr
    (line,) = done.stderr.strip().splitlines()
    record = json.loads(line)
    assert record["request_id"] == "req-from-probe" and record["message"] == "refused key omx_[REDACTED]"
    assert OMX_LIVE not in line

    plain = run_probe(tmp_path, OMIXA_LOG_FORMAT="plain")
    assert plain.returncode == 0, plain.stderr
    assert "WARNING omixa.probe refused key omx_[REDACTED]" in plain.stderr and OMX_LIVE not in plain.stderr

    debug = run_probe(tmp_path, OMIXA_DEBUG="1")  # development: plain unless asked
    assert debug.stderr.strip() and not debug.stderr.startswith("{")

    bad = run_probe(tmp_path, OMIXA_LOG_FORMAT="xml")
    assert bad.returncode != 0 and "OMIXA_LOG_FORMAT must be json or plain" in bad.stderr


@pytest.mark.parametrize("access_log", [False, True], ids=["--no-access-log", "access log on"])
def test_uvicorn_access_log_is_json_only_when_uvicorn_keeps_one(tmp_path, access_log):
    """`--no-access-log` must stay off: the JSON logging config may not switch it back on (it did: a
    formatted line per request, a fifth of the gateway's time under load)."""
    import socket
    import time

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OMIXA_", "DATABASE_URL", "REDIS_URL"))}
    clean.update(
        OMIXA_VAR_DIR=str(tmp_path),
        OMIXA_SECRET_KEY="x" * 50,
        OMIXA_ENCRYPTION_KEY="5GgkfOdxmdTvCXkBg8hj7M6qwQmTr2WvkkNcTwqAZcY=",
        OMIXA_ALLOWED_HOSTS="127.0.0.1",
    )
    args = [sys.executable, "-m", "uvicorn", "omixa.asgi:application", "--port", str(port), "--lifespan", "off"]
    if not access_log:
        args.append("--no-access-log")
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        server = subprocess.Popen(args, cwd=ROOT, env=clean, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline and server.poll() is None, log.read_text()
                    time.sleep(0.1)
            assert response.status_code == 200
            for _ in range(3):
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
        finally:
            server.terminate()
            server.wait(10)
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    access = [r for r in lines if r["logger"] == "uvicorn.access"]
    assert len(access) == (4 if access_log else 0), log.read_text()


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="a real Celery worker needs a broker (REDIS_URL)")
def test_celery_workers_log_json_through_the_same_config(tmp_path):
    """Workers do not hijack the root logger: their lines are the gateway's JSON, redaction included."""
    import time

    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OMIXA_", "DATABASE_URL"))}
    clean.update(
        OMIXA_VAR_DIR=str(tmp_path),
        OMIXA_SECRET_KEY="x" * 50,
        OMIXA_ENCRYPTION_KEY="5GgkfOdxmdTvCXkBg8hj7M6qwQmTr2WvkkNcTwqAZcY=",
    )
    queue = f"omixa-logs-{uuid.uuid4().hex[:12]}"
    args = [sys.executable, "-m", "celery", "-A", "omixa", "worker", "-Q", queue, "--pool", "solo", "-l", "info"]
    args += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        worker = subprocess.Popen(args, cwd=ROOT, env=clean, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 30
            while " ready." not in log.read_text():
                assert time.monotonic() < deadline and worker.poll() is None, log.read_text()
                time.sleep(0.1)
        finally:
            worker.terminate()
            worker.wait(20)
    records = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    assert any(r["logger"] == "celery.apps.worker" and r["message"].endswith(" ready.") for r in records)
    assert "INFO/MainProcess]" not in log.read_text()  # Celery's own format
