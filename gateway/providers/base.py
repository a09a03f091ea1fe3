"""The interface every provider family implements. Adapters are pure: no I/O, no ORM, no settings.

The pipeline (gateway/pipeline.py) does the I/O: it calls `prepare`, sends the UpstreamRequest,
then either `parse_completion` (non-stream 2xx), `parse_error` (any non-2xx), or feeds the body's
bytes to a `StreamDecoder` (stream 2xx).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from gateway.types import ChatRequest, Route, UpstreamError, UpstreamRequest, Usage


class StreamDecoder(Protocol):
    usage: Usage | None  # the upstream's reported usage, once it arrived (latest snapshot)
    finished: bool  # the upstream's terminal event arrived ([DONE], message_stop, ...)
    finish_reason: str | None

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        """Bytes from the upstream → OpenAI `chat.completion.chunk` dicts ready for the client.

        Never returns the usage-only chunk (the pipeline builds that one itself from `usage`, with
        the cost). Skips annotation-only events. Raises UpstreamError on an error event.
        """
        ...


class Adapter(Protocol):
    endpoint_type: str

    def prepare(self, request: ChatRequest, route: Route) -> UpstreamRequest:
        """Translate in. Raises RequestRejected when this route cannot take a field."""
        ...

    def parse_completion(self, request: ChatRequest, route: Route, data: bytes) -> tuple[dict[str, Any], Usage]:
        """Normalize a 2xx non-stream body → (OpenAI `chat.completion` dict without `usage`, usage)."""
        ...

    def parse_error(self, status: int, headers: Mapping[str, str], data: bytes) -> UpstreamError:
        """Classify a non-2xx answer (kind decides failover) and extract the provider's message."""
        ...

    def stream_decoder(self, request: ChatRequest, route: Route) -> StreamDecoder: ...
