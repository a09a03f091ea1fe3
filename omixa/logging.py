"""Logging for Omixa: secret redaction, the request id on every line, and a JSON formatter.

`RedactSecretsFilter`, configured as a handler filter (settings.LOGGING), also installs the same
redaction at record creation (a log record factory), so that loggers whose handlers it is not on are
redacted too: uvicorn's own loggers (`uvicorn.error`, `uvicorn.access` do not propagate to the root),
Django's default handlers, or any handler a library or a test adds.

The request id lives in a context variable: the gateway binds it when it mints the id, and every
line logged by that request's task (its view, pipeline, stream and breaker calls) carries it.
Code outside the request's task (the usage writer thread) passes `extra={"request_id": ...}`.
"""

from __future__ import annotations

import logging
import re
import threading
from contextvars import ContextVar

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.orjson import OrjsonFormatter

# Omixa keys, bearer tokens, and header-style secrets (api-key, x-api-key, x-goog-api-key).
_PATTERNS = [
    re.compile(r"omx_(?:live|admin)_[A-Za-z0-9_-]+"),
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"),
    re.compile(r"(?i)((?:x-goog-|x-)?api[-_]key['\"]?\s*[:=]\s*['\"]?)[^\s'\",}]+"),
]
# Replaced, never mutated: registration happens in the snapshot loader's thread while other threads
# log (iterating a set that another thread grows raises "Set changed size during iteration").
_known_secrets: frozenset[str] = frozenset()
_register_lock = threading.Lock()


def register_secret(secret: str) -> None:
    """Remember a decrypted provider secret so that it is redacted wherever it shows up."""
    global _known_secrets
    if secret and len(secret) >= 6 and secret not in _known_secrets:
        with _register_lock:
            _known_secrets = _known_secrets | {secret}


def redact(text: str) -> str:
    for secret in _known_secrets:
        if secret in text:
            text = text.replace(secret, "[REDACTED]")
    text = _PATTERNS[0].sub("omx_[REDACTED]", text)
    text = _PATTERNS[1].sub(r"\1[REDACTED]", text)
    return _PATTERNS[2].sub(r"\1[REDACTED]", text)


class _Redacted:
    """An argument shown through `%s` / `%r` with its secrets redacted."""

    __slots__ = ("value",)

    def __init__(self, value: object) -> None:
        self.value = value

    def __str__(self) -> str:
        return redact(str(self.value))

    def __repr__(self) -> str:
        return redact(repr(self.value))


def redact_record(record: logging.LogRecord) -> None:
    """Redact a record in place: message, arguments and exception text.

    A tuple of arguments keeps its shape where it can (formatters such as uvicorn's access formatter
    unpack `record.args`); otherwise the message is formatted and the arguments dropped.
    """
    try:
        message = record.getMessage()
    except Exception:  # a broken format string: the handler reports it; keep its text out of reach
        message = redact(str(record.msg))
        record.msg, record.args = message, None
    else:
        if redact(message) != message:
            args = record.args
            kept = False
            if isinstance(args, tuple) and isinstance(record.msg, str) and redact(record.msg) == record.msg:
                safe = tuple(
                    a
                    if a is None or isinstance(a, bool | int | float)
                    else redact(a)
                    if isinstance(a, str)
                    else _Redacted(a)
                    for a in args
                )
                try:
                    shown = record.msg % safe
                    kept = redact(shown) == shown
                except Exception:
                    kept = False
                if kept:
                    record.args = safe
            if not kept:
                record.msg, record.args = redact(message), None
    if record.exc_info and not record.exc_text:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    if record.exc_text:
        record.exc_text = redact(record.exc_text)


_factory_installed = False


def install_record_redaction() -> None:
    """Redact every record when it is created, whichever handler will print it. Idempotent."""
    global _factory_installed
    with _register_lock:
        if _factory_installed:
            return
        previous = logging.getLogRecordFactory()

        def factory(*args, **kwargs) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            try:
                redact_record(record)
            except Exception:  # never let redaction break the caller's logging call
                record.msg, record.args = "[log message withheld: redaction failed]", None
                record.exc_info, record.exc_text = None, None
            return record

        logging.setLogRecordFactory(factory)
        _factory_installed = True


class RedactSecretsFilter(logging.Filter):
    def __init__(self, name: str = "") -> None:
        super().__init__(name)
        install_record_redaction()

    def filter(self, record: logging.LogRecord) -> bool:
        redact_record(record)
        return True


# ---- the request id ---------------------------------------------------------------------------------

request_id_var: ContextVar[str | None] = ContextVar("omixa_request_id", default=None)


def bind_request_id(request_id: str | None) -> None:
    """Stamp every later log line of the current task (and the tasks it starts) with this id."""
    request_id_var.set(request_id)


class RequestIdFilter(logging.Filter):
    """Sets `record.request_id`: the caller's `extra={"request_id": ...}`, else the bound one (or None)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id_var.get()
        return True


class JsonFormatter(OrjsonFormatter):
    """One JSON object per line: timestamp, level, logger, message, request_id, then any `extra`
    fields and the exception. The whole line goes through `redact` once more, so a secret passed in
    an `extra` field (which the record filter does not see) never reaches the output either."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("rename_fields", {"levelname": "level", "name": "logger"})
        kwargs.setdefault("timestamp", True)
        # uvicorn repeats each message with terminal colour codes in `color_message`: not for a log file.
        kwargs.setdefault("reserved_attrs", [*RESERVED_ATTRS, "color_message"])
        super().__init__("%(levelname)s %(name)s %(message)s", *args, **kwargs)

    def add_fields(self, log_data: dict, record: logging.LogRecord, message_dict: dict) -> None:
        # Placeholders fix the order of the first keys (a dict keeps a key's place when it is updated).
        log_data.update(timestamp=None, level=None, logger=None, request_id=None, message=None)
        super().add_fields(log_data, record, message_dict)
        if log_data.get("request_id") is None:
            log_data["request_id"] = request_id_var.get()

    def serialize_log_record(self, log_data: dict) -> str:
        return redact(super().serialize_log_record(log_data))
