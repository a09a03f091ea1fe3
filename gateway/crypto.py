"""Provider secrets at rest: Fernet with key rotation (`OMIXA_ENCRYPTION_KEY`, comma-separated).

The first key encrypts; every key decrypts; `rotate_secrets` re-encrypts stored secrets under the
first key, so an operator rotates without re-entering any secret.
"""

from __future__ import annotations

import base64
import hashlib
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


class SecretDecryptionError(Exception):
    """No configured key can decrypt this secret."""


def _keys() -> tuple[str, ...]:
    keys = tuple(settings.OMIXA_ENCRYPTION_KEYS)
    if keys:
        return keys
    if settings.DEBUG:
        # Development only (settings refuse to start without a key when DEBUG is off).
        digest = hashlib.sha256(("omixa-dev-encryption:" + settings.SECRET_KEY).encode()).digest()
        return (base64.urlsafe_b64encode(digest).decode(),)
    raise ImproperlyConfigured("OMIXA_ENCRYPTION_KEY is not set")


@lru_cache(maxsize=4)
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    try:
        return MultiFernet([Fernet(key.encode()) for key in keys])
    except (ValueError, TypeError) as exc:
        raise ImproperlyConfigured("OMIXA_ENCRYPTION_KEY holds a value that is not a Fernet key") from exc


def encrypt_secret(secret: str) -> str:
    return _fernet(_keys()).encrypt(secret.encode()).decode()


def decrypt_secret(token: str) -> str:
    try:
        return _fernet(_keys()).decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise SecretDecryptionError("no configured OMIXA_ENCRYPTION_KEY decrypts this secret") from exc


def rotate_token(token: str) -> str:
    """Re-encrypt under the first key (a no-op in meaning; the ciphertext changes)."""
    try:
        return _fernet(_keys()).rotate(token.encode()).decode()
    except InvalidToken as exc:
        raise SecretDecryptionError("no configured OMIXA_ENCRYPTION_KEY decrypts this secret") from exc
