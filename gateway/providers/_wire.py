"""Small pieces every family's adapter needs when reading an upstream's bytes."""

from __future__ import annotations

from typing import Any

import orjson

from gateway.types import ErrorKind, UpstreamError


def load_json(data: bytes, what: str) -> Any:
    """Parse JSON from the upstream; a body that is not JSON is the upstream's fault (SERVER)."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise UpstreamError(ErrorKind.SERVER, f"upstream sent {what} that is not JSON") from exc


def load_object(data: bytes, what: str) -> dict[str, Any]:
    """Parse a JSON object from the upstream (SERVER error for anything else)."""
    obj = load_json(data, what)
    if not isinstance(obj, dict):
        raise UpstreamError(ErrorKind.SERVER, f"upstream sent {what} that is not a JSON object")
    return obj
