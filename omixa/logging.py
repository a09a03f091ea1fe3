"""A log filter that redacts Omixa keys and provider secrets from every record."""

from __future__ import annotations

import logging
import re

# Omixa keys, bearer tokens, and header-style secrets (api-key, x-api-key, x-goog-api-key).
_PATTERNS = [
    re.compile(r"omx_(?:live|admin)_[A-Za-z0-9_-]+"),
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"),
    re.compile(r"(?i)((?:x-goog-|x-)?api[-_]key['\"]?\s*[:=]\s*['\"]?)[^\s'\",}]+"),
]
_known_secrets: set[str] = set()


def register_secret(secret: str) -> None:
    """Remember a decrypted provider secret so that it is redacted wherever it shows up."""
    if secret and len(secret) >= 6:
        _known_secrets.add(secret)


def redact(text: str) -> str:
    for secret in _known_secrets:
        if secret in text:
            text = text.replace(secret, "[REDACTED]")
    text = _PATTERNS[0].sub("omx_[REDACTED]", text)
    text = _PATTERNS[1].sub(r"\1[REDACTED]", text)
    return _PATTERNS[2].sub(r"\1[REDACTED]", text)


class RedactSecretsFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.msg = redact(message)
        record.args = None
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True
