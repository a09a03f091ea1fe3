"""Secrets never reach the logs: Omixa keys (valid or not) and provider secrets.

Unit tests of `omixa.logging.RedactSecretsFilter`, then real traffic with failures (bad keys, a wrong
provider secret, upstream 500s, unreachable upstreams, broken streams, a bug of ours) with every
logger captured at DEBUG, including uvicorn's own (which do not propagate to the root logger).
"""

from __future__ import annotations

import logging
import secrets
import sys
from collections.abc import Iterator

import httpx
import pytest

from gateway.services import provider_key_add
from omixa.logging import RedactSecretsFilter, redact, register_secret
from tests.gateway_fixtures import free_port, gateway, world  # noqa: F401
from tests.mocks.fixtures import mock_upstream  # noqa: F401
from tests.mocks.upstream import Scenario, broken_stream, error_mid_stream, server_error
from workspaces.services import api_key_issue

# --- the filter --------------------------------------------------------------------------------------


def _record(msg: str, *args, exc_info=None) -> logging.LogRecord:
    return logging.LogRecord("omixa.test", logging.WARNING, __file__, 1, msg, args or None, exc_info)


def _filtered(msg: str, *args, exc_info=None) -> str:
    record = _record(msg, *args, exc_info=exc_info)
    assert RedactSecretsFilter().filter(record) is True  # redacts, never drops
    return logging.Formatter("%(message)s").format(record)


OMX_LIVE = "omx_live_" + "Ab3_dE-9" * 5
OMX_ADMIN = "omx_admin_" + "Zz9_yY-8" * 5


@pytest.mark.parametrize(
    ("template", "secret"),
    [
        ("Authorization: Bearer {s}", "sk-proj-abcdefghijklmnop0123456789"),
        ("authorization: bearer {s}", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig_nature-xx"),
        ("{{'authorization': 'Bearer {s}'}}", "sk-test-openai-key-0123456789"),
        ("headers={{'api-key': '{s}', 'x': 1}}", "0123456789abcdef0123456789abcdef"),
        ('{{"api-key": "{s}"}}', "0123456789abcdef0123456789abcdef"),
        ("api_key={s} next", "abcdef0123456789abcdef"),
        ("x-api-key: {s}", "anthropic-secret-0123456789"),
        ("X-Goog-Api-Key: {s}", "AIzaSyD-0123456789abcdefghijklmnopqrs"),
        ("key {s} was refused", OMX_LIVE),
        ("key={s}", OMX_ADMIN),
        ("GET /api/v1/models?api_key={s} HTTP/1.1", OMX_LIVE),
        ("token:{s}.", OMX_LIVE),
    ],
)
def test_filter_redacts_bearer_tokens_api_key_headers_and_omixa_keys(template, secret):
    text = _filtered(template.format(s=secret))
    assert secret not in text
    assert "[REDACTED]" in text


def test_filter_redacts_registered_provider_secrets_anywhere():
    secret = "prov-" + secrets.token_hex(12)
    register_secret(secret)
    for text in (
        f"upstream said: key {secret} is invalid",
        f"https://example.invalid/v1beta/models/x:generateContent?key={secret}&alt=sse",
        f"{secret}",
        f"('api-key', '{secret}')",  # a raw header tuple: no ':' or '=' for the header patterns
    ):
        out = _filtered(text)
        assert secret not in out, out
    # A secret too short to register safely is left alone (it would redact ordinary words).
    register_secret("abc")
    assert _filtered("abc def") == "abc def"


def test_filter_redacts_printf_args_and_keeps_the_message():
    out = _filtered("route %s failed with %r (key %s)", "primary", {"api-key": "s3cr3t-s3cr3t-s3cr3t"}, OMX_LIVE)
    assert out.startswith("route primary failed with ")
    assert "s3cr3t-s3cr3t-s3cr3t" not in out and OMX_LIVE not in out


def test_filter_redacts_exception_text_and_traceback():
    secret = "prov-" + secrets.token_hex(12)
    register_secret(secret)
    try:
        raise RuntimeError(f"upstream refused Bearer {secret} and {OMX_LIVE}")
    except RuntimeError:
        exc_info = sys.exc_info()
    out = _filtered("boom", exc_info=exc_info)
    assert "Traceback" in out and "RuntimeError" in out
    assert secret not in out and OMX_LIVE not in out


def test_filter_redacts_precomputed_exc_text():
    record = _record("failure")
    record.exc_text = f"Traceback ...\nValueError: bad key {OMX_ADMIN}"
    RedactSecretsFilter().filter(record)
    assert OMX_ADMIN not in logging.Formatter().format(record)


def test_redact_is_idempotent_and_leaves_plain_text_alone():
    plain = "POST /api/v1/chat/completions 200 in 12 ms (route 3, attempts 3:ok)"
    assert redact(plain) == plain
    once = redact(f"Bearer {OMX_LIVE}")
    assert redact(once) == once


# --- real traffic ------------------------------------------------------------------------------------

LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "django", "django.request", "django.server", "httpx",
           "httpcore", "aiohttp", "asyncio", "gateway", "omixa", "workspaces", "billing")  # fmt: skip


@pytest.fixture
def all_logs(caplog, gateway) -> Iterator[pytest.LogCaptureFixture]:
    """Every logger at DEBUG (after uvicorn configured its own), captured; also the loggers that do not
    propagate to the root logger (uvicorn's), which the root's handlers never see."""
    caplog.set_level(logging.DEBUG)
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    attached = []
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if isinstance(logger, logging.Logger) and not logger.propagate and caplog.handler not in logger.handlers:
            if logger.level and logger.level > logging.DEBUG:
                caplog.set_level(logging.DEBUG, logger=name)
            logger.addHandler(caplog.handler)
            attached.append(logger)
    try:
        yield caplog
    finally:
        for logger in attached:
            logger.removeHandler(caplog.handler)


def _logged_text(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Each record as a handler would print it: message, exception text and stack."""
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    return [formatter.format(record) for record in caplog.records]


def test_traffic_with_failures_logs_no_secret(all_logs, gateway, world, mock_upstream, monkeypatch):
    wrong_azure = "azure-WRONG-" + secrets.token_hex(12)
    wrong_openai = "sk-WRONG-" + secrets.token_hex(12)
    unreachable_secret = "azure-DOWN-" + secrets.token_hex(12)
    mock_upstream.add_deployment("codex-mini-backup", reasoning=True)
    down = f"http://127.0.0.1:{free_port()}"
    routes = [
        ("unreachable", down, "azure-openai", unreachable_secret, "codex-mini", 0),
        ("wrong-azure", mock_upstream.url, "azure-openai", wrong_azure, "codex-mini", 1),
        ("wrong-openai", mock_upstream.url, "openai", wrong_openai, "codex-mini", 2),
        ("good-azure", mock_upstream.url, "azure-openai", mock_upstream.azure_key, "codex-mini-backup", 3),
        ("good-openai", mock_upstream.url, "openai", mock_upstream.openai_key, "codex-mini", 4),
    ]
    for name, base_url, provider, secret, deployment, priority in routes:
        provider_key_add(
            model_slug="codex-mini",
            provider=provider,
            base_url=base_url,
            api_key=secret,
            deployment=deployment,
            priority=priority,
            name=name,
            connect_timeout=1,
        )
    _, admin_key = api_key_issue(workspace=world.workspace, name="mgmt", scope="admin")
    gateway.refresh()

    bad_keys = [
        "omx_live_" + secrets.token_urlsafe(30),
        "omx_admin_" + secrets.token_urlsafe(30),
        "omx_live_" + secrets.token_urlsafe(12),
    ]
    omixa_secrets = [world.key, world.other_key, admin_key, *bad_keys]
    provider_secrets = [
        wrong_azure,
        wrong_openai,
        unreachable_secret,
        mock_upstream.azure_key,
        mock_upstream.openai_key,
    ]
    body = {"model": "codex-mini", "messages": [{"role": "user", "content": "hello"}]}
    answers: list[httpx.Response] = []
    with httpx.Client(base_url=gateway.api, timeout=30) as http:

        def send(key: str | None, payload=None, *, path="/chat/completions", authorization=None, **kw):
            headers = {"Authorization": authorization or f"Bearer {key}"} if (key or authorization) else {}
            response = http.post(path, json=payload or body, headers=headers, **kw)
            answers.append(response)
            return response

        # Bad keys: unknown, malformed scheme, admin scope, a key in the query string, on every endpoint.
        for key in bad_keys:
            assert send(key).status_code == 401
            answers.append(http.get("/models", headers={"Authorization": f"Bearer {key}"}))
            answers.append(http.get(f"/models?api_key={key}"))
            answers.append(http.post(f"/chat/completions?key={key}", json=body))
        assert send(None, authorization=f"Token {world.key}").status_code == 401
        assert send(None, authorization=f"Basic {world.key}").status_code == 401
        assert send(admin_key).status_code == 403

        # Unreachable route, then a wrong Azure secret (401), then a wrong OpenAI secret (401): both taken out
        # of rotation; the good Azure route serves.
        first = send(world.key)
        assert first.status_code == 200, first.text
        outcomes = first.headers["x-omixa-attempts"]
        assert ":auth" in outcomes, outcomes

        # Upstream 500s on every remaining route: a 502 whose message quotes the provider.
        mock_upstream.always(server_error(500))
        for _ in range(2):
            assert send(world.key).status_code in (502, 503)
        mock_upstream.reset()
        mock_upstream.add_deployment("codex-mini-backup", reasoning=True)

        # Broken streams: cut after bytes were sent, and an in-stream error event.
        mock_upstream.script(broken_stream(after=3))
        assert send(world.key, {**body, "stream": True}).status_code == 200
        mock_upstream.script(error_mid_stream(after=2))
        assert send(world.other_key, {**body, "stream": True}).status_code == 200
        # An upstream 400 whose message quotes a secret back: passed on to the client, but redacted.
        mock_upstream.script(
            Scenario(
                status=400,
                body={"error": {"message": f"bad header api-key: {mock_upstream.azure_key}", "type": "x"}},
            )
        )
        send(world.key)

        # A bug of ours whose exception carries secrets: the traceback is logged, redacted.
        from gateway import pipeline

        async def broken(call):
            raise RuntimeError(f"internal failure with {world.key} for upstream api-key={mock_upstream.azure_key}")

        monkeypatch.setattr(pipeline, "run", broken)
        assert send(world.key).status_code == 500
        monkeypatch.undo()

    gateway.flush_usage()

    records = _logged_text(all_logs)
    # The capture is not vacuous: it saw the failures and the server's own loggers.
    joined = "\n".join(records)
    assert "taken out of rotation" in joined
    assert "Traceback" in joined and "RuntimeError" in joined
    assert any(r.name.startswith("uvicorn") for r in all_logs.records)
    for secret in omixa_secrets + provider_secrets:
        leaks = [line for line in records if secret in line]
        assert not leaks, f"a secret reached the logs:\n{leaks[0][:2000]}"
    # Nor the answers the clients got (error messages and headers).
    for response in answers:
        shown = response.text + repr(dict(response.headers))
        for secret in provider_secrets + [k for k in omixa_secrets if k != admin_key]:
            assert secret not in shown, (response.status_code, shown[:500])


# --- redaction reaches every logger, whatever its handlers --------------------------------------------


def test_a_logger_with_its_own_handler_is_redacted_too():
    # Like uvicorn's loggers: its own handler (without the filter), not propagating to the root.
    import io

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("omixa.test.isolated")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    try:
        logger.debug("GET /v1/models?key=%s", OMX_LIVE)
        try:
            raise ValueError(f"bad {OMX_ADMIN}")
        except ValueError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    out = stream.getvalue()
    assert "GET /v1/models?key=omx_[REDACTED]" in out and "ValueError" in out
    assert OMX_LIVE not in out and OMX_ADMIN not in out


def test_uvicorn_access_records_keep_their_shape():
    # uvicorn's AccessFormatter unpacks record.args: redaction must keep the 5-tuple.
    from uvicorn.logging import AccessFormatter

    logger = logging.getLogger("uvicorn.access")
    record = logger.makeRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", f"/api/v1/models?api_key={OMX_LIVE}", "1.1", 401),
        None,
    )
    RedactSecretsFilter().filter(record)
    out = AccessFormatter('%(client_addr)s - "%(request_line)s" %(status_code)s', use_colors=False).format(record)
    assert OMX_LIVE not in out
    assert out.startswith('127.0.0.1:5000 - "GET /api/v1/models?api_key=[REDACTED] HTTP/1.1" 401')


def test_a_broken_format_string_does_not_break_logging_or_leak():
    record = _record("key %s and %s", OMX_LIVE)  # one argument short
    RedactSecretsFilter().filter(record)
    assert OMX_LIVE not in str(record.msg) and record.args is None


def test_registering_secrets_while_other_threads_log_is_safe(monkeypatch):
    import threading

    import omixa.logging as omixa_logging

    monkeypatch.setattr(omixa_logging, "_known_secrets", type(omixa_logging._known_secrets)())
    errors: list[BaseException] = []
    done = threading.Event()

    def log_forever() -> None:
        while not done.is_set():
            try:
                redact("an ordinary log line with nothing secret in it")
            except BaseException as exc:
                errors.append(exc)
                return

    thread = threading.Thread(target=log_forever)
    thread.start()
    try:
        for i in range(20_000):  # the snapshot loader registers provider secrets in its own thread
            register_secret(f"provider-secret-{i:08d}")
    finally:
        done.set()
        thread.join()
    assert errors == []
    assert "provider-secret-00019999" not in redact("x provider-secret-00019999 y")
