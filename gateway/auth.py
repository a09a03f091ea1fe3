"""Workspace API key authentication for the gateway, answered from the snapshot.

A key missing from the snapshot (created in the last second, or unknown) is looked up once in
the database (in a thread); unknown or revoked hashes are remembered briefly so that a flood of
bad keys cannot turn into a flood of queries.
"""

from __future__ import annotations

import hashlib
import time
from typing import TYPE_CHECKING

from gateway.errors import GatewayError
from gateway.snapshot import KeyEntry, key_entry

if TYPE_CHECKING:
    from gateway.runtime import Runtime

NEGATIVE_TTL = 2.0
_negative: dict[str, float] = {}
_recent: dict[str, tuple[KeyEntry, float]] = {}  # found in the DB but not yet in the snapshot

BAD_KEY = "Incorrect API key provided. You can find your API keys in your Omixa workspace."


def _lookup(key_hash: str) -> KeyEntry | None:
    from django.db import close_old_connections

    from workspaces.models import ApiKey

    close_old_connections()  # a worker thread: no request cycle closes its connection

    row = ApiKey.objects.select_related("workspace").filter(key_hash=key_hash).first()
    return key_entry(row) if row is not None else None


async def authenticate(authorization: str | None, rt: Runtime) -> KeyEntry:
    if not authorization:
        raise GatewayError(
            401,
            "You didn't provide an API key. Send it as 'Authorization: Bearer omx_live_...'.",
            code="missing_api_key",
        )
    scheme, _, secret = authorization.partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret.startswith("omx_"):
        raise GatewayError(401, BAD_KEY, code="invalid_api_key")
    key_hash = hashlib.sha256(secret.encode()).hexdigest()
    now = time.time()
    entry = rt.snapshot.keys.get(key_hash)
    if entry is None:
        entry = await _miss(key_hash, now, rt)
    if entry.revoked:
        raise GatewayError(401, "This API key has been revoked.", code="invalid_api_key")
    if entry.expires_at is not None and entry.expires_at <= now:
        raise GatewayError(401, "This API key has expired.", code="expired_api_key")
    if entry.scope != "inference":
        raise GatewayError(
            403,
            "This is a management API key (omx_admin_…); use an inference key (omx_live_…).",
            code="wrong_key_scope",
        )
    return entry


async def _miss(key_hash: str, now: float, rt: Runtime) -> KeyEntry:
    cached = _recent.get(key_hash)
    if cached is not None and cached[1] > now:
        return cached[0]
    if _negative.get(key_hash, 0.0) > now:
        raise GatewayError(401, BAD_KEY, code="invalid_api_key")
    entry = await rt.db(_lookup, key_hash)
    if entry is None or entry.revoked:
        if len(_negative) > 10_000:
            _negative.clear()
        _negative[key_hash] = now + NEGATIVE_TTL
        raise GatewayError(401, "This API key has been revoked." if entry else BAD_KEY, code="invalid_api_key")
    if len(_recent) > 10_000:
        _recent.clear()
    # Until the next snapshot reload picks it up (within a second or two).
    _recent[key_hash] = (entry, now + NEGATIVE_TTL)
    return entry
